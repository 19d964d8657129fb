"""Feed parsing in worker processes (``digest.parse_worker``).

lxml and nh3 are fast, but a cold collect still sanitizes megabytes of HTML. In a
thread of the collector that work holds the GIL against the event loop: every
socket call of every fetch then waits for the parser's switch interval, and a
cold collect measured twice the CPU of the same parses done one after another.
Worker processes parse in parallel while this process only fetches and writes to
SQLite.

The workers start with the first document (one interpreter, forked once per
worker), so their imports overlap the fetches. A worker that dies (a parser crash
on a hostile document) costs that one feed, not the run: the next document gets a
fresh process. With one core, or
``parse_workers = 0``, documents are parsed in a thread instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
from collections.abc import Set
from datetime import datetime

from digest.errors import FeedError
from digest.feedparse import parse_new
from digest.models import Article, Feed
from digest.parse_worker import frame
from digest.worker_process import start_worker, usable_cores

log = logging.getLogger(__name__)


def default_workers() -> int:
    """One worker per core this process may use, up to 4; none on a single core,
    where a process would only add pickling to the same CPU time."""
    cores = usable_cores()
    return 0 if cores < 2 else min(4, cores)


class _WorkerDied(Exception):
    pass


class _Worker:
    """One parsing process at the end of a socket; a dead one is replaced on the
    next ask."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.spawned: list[asyncio.subprocess.Process] = []  # replacements it started
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def attach(self, sock: socket.socket) -> None:
        self._reader, self._writer = await asyncio.open_unix_connection(sock=sock)
        self.pid = pickle.loads(await self._read())  # the worker's hello

    async def _read(self) -> bytes:
        assert self._reader is not None
        size = int.from_bytes(await self._reader.readexactly(4), "big")
        return await self._reader.readexactly(size)

    async def ask(self, request: bytes) -> bytes:
        try:
            if self._writer is None:
                self.spawned.append(await _spawn([self]))
            assert self._writer is not None
            self._writer.write(frame(request))
            await self._writer.drain()
            return await self._read()
        except (asyncio.IncompleteReadError, OSError):  # died, or could not start
            self.kill()
            raise _WorkerDied from None
        except BaseException:
            # Cancelled mid-frame: the socket is out of step, so this process is done.
            self.kill()
            raise

    def kill(self) -> None:
        """Stop this process for good; the next ask starts another."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(self.pid, signal.SIGKILL)
        self.close()

    def close(self) -> None:
        """Hang up: the worker ends when its socket closes."""
        writer, self._writer, self._reader, self.pid = self._writer, None, None, None
        if writer is not None:
            writer.close()


async def _spawn(workers: list[_Worker]) -> asyncio.subprocess.Process:
    """One process for all of ``workers``: it imports the parser once and forks."""
    pairs = [socket.socketpair() for _ in workers]
    try:
        proc = await start_worker("digest.parse_worker", *(theirs.fileno() for _, theirs in pairs))
    finally:
        for _, theirs in pairs:
            theirs.close()
    try:
        for worker, (ours, _) in zip(workers, pairs, strict=True):
            await worker.attach(ours)
    except BaseException:  # it died before saying hello: hang up on every worker
        for ours, _ in pairs:
            ours.close()
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    return proc


class ParsePool:
    """Parses feed documents off the event loop; ``parse``, then ``await close()``."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self._all = [_Worker() for _ in range(self.workers)]
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._procs: list[asyncio.subprocess.Process] = []
        self._starting: asyncio.Task[None] | None = None

    async def _start(self) -> None:
        # On the first document, not before: a collect where every feed answers
        # 304 starts no process at all.
        log.debug("parsing with %d worker processes", self.workers)
        self._procs.append(await _spawn(self._all))
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
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        try:
            await asyncio.shield(self._starting)
        except (asyncio.IncompleteReadError, OSError) as e:
            if self._all:  # the first document to hear of it says so
                log.warning("no parse worker processes (%s); parsing in a thread", e)
                for worker in self._all:
                    worker.close()
                self._all = []
            return await self.parse(body, feed, now=now, known=known, base_url=base_url,
                                    content_type=content_type)
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
        if self._starting is not None:
            with contextlib.suppress(Exception):
                await self._starting
        for worker in self._all:
            worker.close()
        for proc in self._procs + [p for w in self._all for p in w.spawned]:
            try:
                await asyncio.wait_for(proc.wait(), 5)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
