"""Helper threads for clustering's numpy work, which lets go of the GIL while
the embedding worker's core would otherwise sit idle."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work()`` in a helper thread; the answer waits for it (and raises
    its error, if any)."""
    answer: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(work())
        except BaseException as error:  # handed to the caller below
            failed.append(error)

    helper = threading.Thread(target=run, name="digest-cluster")
    helper.start()

    def result() -> T:
        helper.join()
        if failed:
            raise failed[0]
        return answer[0]

    return result


def in_two_threads(work: Callable[[int, int], None], size: int, step: int) -> None:
    """``work(first, last)`` over range(size), the second half (cut at a
    multiple of ``step``) in a helper thread."""
    half = size // 2 // step * step
    if not half:
        work(0, size)
        return
    second = in_thread(lambda: work(half, size))
    try:
        work(0, half)
    finally:
        second()
