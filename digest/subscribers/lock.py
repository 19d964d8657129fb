"""One writer of the subscriber files at a time, across processes and threads: an
advisory lock the OS releases when the process dies."""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from digest.errors import BusyError

# How long a writer waits for another digest process to finish editing the subscriber
# files before giving up with one line. An edit takes milliseconds; ten seconds covers
# a queue of a hundred one-click unsubscribes arriving at once.
LOCK_WAIT_SECONDS = 10.0
_POLL_FIRST, _POLL_MAX = 0.002, 0.05


class LockBusy(BusyError):
    """Another process held the lock for longer than the caller was willing to wait."""


_held = threading.local()


def _depths() -> dict[str, int]:
    depths: dict[str, int] | None = getattr(_held, "depths", None)
    if depths is None:
        depths = _held.depths = {}
    return depths


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Exclusive flock on the folder itself: one writer of its files at a time.

    The lock is on the directory, not on a file inside it: the files are replaced by
    rename on every write, so a lock on one of them would be a lock on an inode that
    is about to go away. Every open gets its own lock, so threads of one process
    exclude each other like separate processes do; a thread that already holds the
    lock may take it again (the outer holder releases it). Waits up to ``timeout``
    seconds, then raises LockBusy; ``timeout=0`` tries once.
    """
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    depths = _depths()
    if depths.get(key):
        depths[key] += 1
        try:
            yield
        finally:
            depths[key] -= 1
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        _acquire(fd, folder, timeout)
        depths[key] = 1
        try:
            yield
        finally:
            depths[key] = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, folder: Path, timeout: float) -> None:
    # flock has no timeout of its own; polling with a short, growing pause is what
    # keeps the wait bounded without a signal (which threads cannot use).
    deadline = time.monotonic() + timeout
    pause = _POLL_FIRST
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockBusy(
                    f"{folder}: another digest process kept the subscriber files locked for "
                    f"more than {timeout:g} s; nothing written",
                    hint="run the command again; if this repeats, look for a stuck "
                         "digest process") from None
            time.sleep(min(pause, left))
            pause = min(pause * 2, _POLL_MAX)
