"""Feed parsing in worker processes.

lxml and nh3 are fast, but a cold collect still sanitizes megabytes of HTML, and
under one GIL that work would queue behind itself and behind the event loop that
fetches the other feeds. Worker processes parse in parallel while this process
fetches and writes to SQLite. Small documents are parsed in a thread instead: for
them, shipping the bytes to a worker costs more than the parse.

Workers come from a fork server preloaded with the parser modules (safe with the
threads this process runs; each worker starts in a few milliseconds). A worker
that dies (a parser crash on a hostile document) costs that one feed, not the run.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from collections.abc import Set
from concurrent.futures import Executor, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime

from digest.errors import FeedError
from digest.feedparse import parse_new
from digest.models import Article, Feed

log = logging.getLogger(__name__)

# Below this a document is parsed in a thread (a few milliseconds of work).
PROCESS_THRESHOLD = 128 * 1024


def default_workers() -> int:
    """One worker per idle core, up to 4; none on a busy machine.

    Worker processes only pay off on cores nobody else is using: on a loaded
    machine they add pickling and process switches to the same CPU time, and
    measured slower than threads (the lxml parse releases the GIL either way).
    """
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        busy = 0.0
    return max(0, min(4, int(cores - busy)))


class ParsePool:
    """Parses feed documents off the event loop; worker processes start on first need."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        log.debug("parsing with %d worker processes", self.workers)
        self._pool: ProcessPoolExecutor | None = None

    async def parse(self, body: bytes, feed: Feed, *, now: datetime, known: Set[str],
                    base_url: str | None, content_type: str | None
                    ) -> tuple[int, list[Article]]:
        loop = asyncio.get_running_loop()
        if self.workers < 1 or len(body) < PROCESS_THRESHOLD:
            return await asyncio.to_thread(parse_new, body, feed, now=now, known=known,
                                           base_url=base_url, content_type=content_type)
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, _parse, body, feed, now, frozenset(known),
                                              base_url, content_type)
        except BrokenProcessPool:
            self._pool = None  # the next feed gets a fresh pool
            pool.shutdown(wait=False, cancel_futures=True)
            raise FeedError("the parser crashed on this document") from None

    def _executor(self) -> Executor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=_context())
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _parse(body: bytes, feed: Feed, now: datetime, known: frozenset[str],
           base_url: str | None, content_type: str | None) -> tuple[int, list[Article]]:
    return parse_new(body, feed, now=now, known=known, base_url=base_url,
                     content_type=content_type)


_CONTEXT: multiprocessing.context.BaseContext | None = None


def _context() -> multiprocessing.context.BaseContext:
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            ctx = multiprocessing.get_context("forkserver")
            # Preloaded once in the server: each worker forks with lxml, nh3 and
            # feedparser already imported.
            ctx.set_forkserver_preload(["digest.feedparse", "digest.parsepool"])
            _CONTEXT = ctx
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT
