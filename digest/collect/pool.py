"""Feed parsing in worker processes (``digest.collect.worker``).

lxml and nh3 are fast, but a cold collect still sanitizes megabytes of HTML. In a
thread of the collector that work holds the GIL against the event loop: every
socket call of every fetch then waits for the parser's switch interval, and a
cold collect measured twice the CPU of the same parses done one after another.
Worker processes parse in parallel while this process only fetches and writes to
SQLite.

The workers are forks of this process, started by ``start()`` (the collector
calls it before fetching when some feed will likely send a document) or else
with the first document: a collect where every feed answers 304 starts none. A
worker that dies (a parser crash on a hostile document) costs that one feed, not
the run: the next document gets a fresh process. With one core, or
``parse_workers = 0``, or when the system cannot fork, documents are parsed in a
thread instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import os
import pickle
import signal
import socket
from collections.abc import Set
from datetime import datetime

from digest.collect.parse import Parsed, parse_new
from digest.collect.worker import fork_worker, frame
from digest.errors import FeedError
from digest.models import Feed
from digest.worker_process import usable_cores

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

    def __init__(self, forked: list[int]) -> None:
        self.pid: int | None = None
        self._forked = forked  # every pid the pool started, to reap at close
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._sock: socket.socket | None = None  # ours, until the event loop takes it

    def start(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            self.pid = fork_worker(theirs.fileno())
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._forked.append(self.pid)
        self._sock = ours

    async def _attach(self) -> None:
        if self._writer is None:
            if self.pid is None:
                self.start()
            sock, self._sock = self._sock, None
            self._reader, self._writer = await asyncio.open_unix_connection(sock=sock)

    async def _read(self) -> bytes:
        assert self._reader is not None
        size = int.from_bytes(await self._reader.readexactly(4), "big")
        return await self._reader.readexactly(size)

    async def ask(self, request: bytes) -> bytes:
        try:
            await self._attach()
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
        sock, self._sock = self._sock, None
        if writer is not None:
            writer.close()
        if sock is not None:
            sock.close()


class ParsePool:
    """Parses feed documents off the event loop; ``parse``, then ``await close()``."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = default_workers() if workers is None else workers
        self.forked: list[int] = []
        self._all = [_Worker(self.forked) for _ in range(self.workers)]
        self._idle: list[_Worker] | None = None
        # Documents waiting for a worker, largest first: the 2 MB feed that comes in
        # mid-run would otherwise be parsed last, by one worker, while the other idles.
        self._waiting: list[tuple[int, int, asyncio.Future[_Worker]]] = []
        self._arrivals = itertools.count()

    def start(self) -> None:
        """Fork the workers now (else the first document does). When the system
        cannot fork, parsing falls back to a thread, with one warning."""
        if self._idle is not None:
            return
        self._idle = []
        try:
            for worker in self._all:
                worker.start()
        except OSError as e:
            log.warning("no parse worker processes (%s); parsing in a thread", e)
            for worker in self._all:
                worker.kill()
            self._all = []
        log.debug("parsing with %d worker processes", len(self._all))
        self._idle.extend(self._all)

    async def parse(self, body: bytes, feed: Feed, *, now: datetime, known: Set[str],
                    base_url: str | None, content_type: str | None) -> Parsed:
        self.start()
        if not self._all:
            return await asyncio.to_thread(parse_new, body, feed, now=now, known=known,
                                           base_url=base_url, content_type=content_type)
        assert self._idle is not None
        worker = await self._acquire(len(body))
        try:
            # Pickled once a worker is free: a copy of every waiting document would
            # double what the waiting costs in memory.
            reply = await worker.ask(pickle.dumps(
                (body, feed, now, frozenset(known), base_url, content_type),
                protocol=pickle.HIGHEST_PROTOCOL))
        except _WorkerDied:
            raise FeedError("the parser crashed on this document") from None
        finally:
            self._release(worker)
        kind, value = pickle.loads(reply)
        if kind == "ok":
            return Parsed(*value)
        if kind == "crash":
            log.error("%s: the parser failed: %s", feed.url, value)
            raise FeedError("the parser failed on this document")
        raise FeedError(str(value))

    async def _acquire(self, size: int) -> _Worker:
        assert self._idle is not None
        if self._idle:
            return self._idle.pop()
        turn: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (-size, next(self._arrivals), turn))
        try:
            return await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():  # handed a worker, then cancelled
                self._release(turn.result())
            raise

    def _release(self, worker: _Worker) -> None:
        assert self._idle is not None
        while self._waiting:
            turn = heapq.heappop(self._waiting)[2]
            if not turn.done():  # not cancelled meanwhile
                turn.set_result(worker)
                return
        self._idle.append(worker)

    async def close(self) -> None:
        """Hang up on every worker and reap them all (a worker ends when its socket
        closes; one still running after 5 s is killed)."""
        for worker in self._all:
            worker.close()
        for pid in self.forked:
            await _reap(pid)
        self.forked.clear()


async def _reap(pid: int, grace: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while True:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # reaped already (by a child watcher of someone's)
            return
        if done:
            return
        if loop.time() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            return
        # A worker exits within milliseconds of its hang-up: look that often.
        await asyncio.sleep(0.001)
