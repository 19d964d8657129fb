"""Feed parsing in worker processes (``digest.parse_worker``).

lxml and nh3 are fast, but a cold collect still sanitizes megabytes of HTML. In a
thread of the collector that work holds the GIL against the event loop: every
socket call of every fetch then waits for the parser's switch interval, and a
cold collect measured twice the CPU of the same parses done one after another.
Worker processes parse in parallel while this process only fetches and writes to
SQLite.

The workers start with the first document, so their imports overlap the fetches.
A worker that dies (a parser crash on a hostile document) costs that one feed,
not the run: the next document gets a fresh process. With one core, or
``parse_workers = 0``, documents are parsed in a thread instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
from collections.abc import Set
from datetime import datetime

from digest.errors import FeedError
from digest.feedparse import parse_new
from digest.models import Article, Feed
from digest.parse_worker import frame
from digest.worker_process import start_worker

log = logging.getLogger(__name__)


def default_workers() -> int:
    """One worker per core this process may use, up to 4; none on a single core,
    where a process would only add pickling to the same CPU time."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cores = os.cpu_count() or 1
    return 0 if cores < 2 else min(4, cores)


class _WorkerDied(Exception):
    pass


class _Worker:
    """One parsing process, started again when it has died."""

    def __init__(self) -> None:
        self.proc: asyncio.subprocess.Process | None = None
        self._starting = asyncio.Lock()

    async def start(self) -> None:
        async with self._starting:  # the pool's warm-up and a first ask may overlap
            if self.proc is None or self.proc.returncode is not None:
                self.proc = await start_worker("digest.parse_worker")

    async def ask(self, request: bytes) -> bytes:
        await self.start()
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(frame(request))
            await proc.stdin.drain()
            size = int.from_bytes(await proc.stdout.readexactly(4), "big")
            return await proc.stdout.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.kill()
            await proc.wait()
            raise _WorkerDied from None
        except BaseException:
            # Cancelled mid-frame: the pipes are out of step, so this process is done.
            self.kill()
            raise

    def kill(self) -> None:
        """Stop this process for good; the next ask starts another."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()

    async def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.returncode is None and proc.stdin is not None:
            proc.stdin.close()  # the worker ends at EOF
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class ParsePool:
    """Parses feed documents off the event loop; ``parse``, then ``await close()``."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._all = [_Worker() for _ in range(self.workers)]
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._started = False

    def _start(self) -> None:
        # On the first document, not before: a collect where every feed answers
        # 304 starts no process at all. Then all of them at once, so their
        # imports overlap the fetches still going on.
        self._started = True
        log.debug("parsing with %d worker processes", self.workers)
        for worker in self._all:
            self._idle.put_nowait(worker)

    async def parse(self, body: bytes, feed: Feed, *, now: datetime, known: Set[str],
                    base_url: str | None, content_type: str | None
                    ) -> tuple[int, list[Article]]:
        if not self._all:
            return await asyncio.to_thread(parse_new, body, feed, now=now, known=known,
                                           base_url=base_url, content_type=content_type)
        request = pickle.dumps((body, feed, now, frozenset(known), base_url, content_type),
                               protocol=pickle.HIGHEST_PROTOCOL)
        if not self._started:
            self._start()
            await asyncio.gather(*(w.start() for w in self._all))
        worker = await self._idle.get()
        try:
            reply = await worker.ask(request)
        except _WorkerDied:
            raise FeedError("the parser crashed on this document") from None
        finally:
            self._idle.put_nowait(worker)
        kind, value = pickle.loads(reply)
        if kind == "ok":
            entries, articles = value
            return int(entries), list(articles)
        if kind == "crash":
            log.error("%s: the parser failed: %s", feed.url, value)
            raise FeedError("the parser failed on this document")
        raise FeedError(str(value))

    async def close(self) -> None:
        await asyncio.gather(*(worker.close() for worker in self._all))
