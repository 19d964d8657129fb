"""The parse worker processes: same articles as in-process parsing, a dead worker
costs one document, and no process outlives the pool."""

from __future__ import annotations

import os
import pickle
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.collect import pool as parsepool
from digest.collect.parse import parse_new
from digest.collect.pool import ParsePool
from digest.collect.worker import answer
from digest.errors import FeedError
from digest.models import Feed

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
FEEDS = Path(__file__).resolve().parent.parent / "feeds"  # the bundled demo feeds


def _doc() -> tuple[bytes, Feed]:
    path = FEEDS / "byte-street.xml"
    return path.read_bytes(), Feed(url="https://byte-street.example/feed.xml", name="Byte Street")


async def test_workers_parse_what_the_parser_parses() -> None:
    body, feed = _doc()
    pool = ParsePool(2)
    try:
        got = await pool.parse(body, feed, now=NOW, known=set(), base_url=feed.url,
                               content_type="application/rss+xml")
    finally:
        await pool.close()
    assert got == parse_new(body, feed, now=NOW, known=set(), base_url=feed.url,
                            content_type="application/rss+xml")
    assert got[0] == 10


async def test_a_killed_worker_costs_one_document_and_is_replaced() -> None:
    body, feed = _doc()
    pool = ParsePool(1)
    try:
        await pool.parse(body, feed, now=NOW, known=set(), base_url=None, content_type=None)
        (worker,) = pool._all
        assert worker.pid is not None
        first = worker.pid
        # Killed with no await in between: the pool has not seen it die, so the
        # next document goes to it, as one would when a worker dies mid-parse.
        os.kill(first, signal.SIGKILL)
        with pytest.raises(FeedError, match="the parser crashed on this document"):
            await pool.parse(body, feed, now=NOW, known=set(), base_url=None,
                             content_type=None)
        parsed = await pool.parse(body, feed, now=NOW, known=set(), base_url=None,
                                  content_type=None)
        assert (parsed.entries, len(parsed.articles)) == (10, 10)
        assert worker.pid is not None and worker.pid != first
        second = worker.pid
    finally:
        await pool.close()
    assert worker.pid is None
    _gone(second)


async def test_no_process_without_a_document_and_none_after_close() -> None:
    idle = ParsePool(2)
    await idle.close()  # a collect where every feed answered 304
    assert idle.forked == [] and all(w.pid is None for w in idle._all)

    body, feed = _doc()
    pool = ParsePool(3)
    await pool.parse(body, feed, now=NOW, known=set(), base_url=None, content_type=None)
    pids = [w.pid for w in pool._all]
    assert len(set(pids)) == 3 and all(_alive(p) for p in pids if p is not None)
    assert all(_parent(p) == os.getpid() for p in pids if p is not None)  # forks of ours
    await pool.close()
    for pid in pids:
        assert pid is not None
        _gone(pid)


async def test_a_worker_keeps_none_of_the_collectors_descriptors(tmp_path: Path) -> None:
    """The collector's files and sockets close when it closes them, not when the
    workers end: a fork that kept a copy would hold a connection (or the store's
    file) open behind its back."""
    body, feed = _doc()
    held = (tmp_path / "store.db").open("w")
    pool = ParsePool(2)
    try:
        pool.start()
        await pool.parse(body, feed, now=NOW, known=set(), base_url=None, content_type=None)
        for pid in pool.forked:
            fds = {int(n) for n in os.listdir(f"/proc/{pid}/fd")}
            assert held.fileno() not in fds
            assert len(fds - {0, 1, 2}) == 1  # its own socket only
    finally:
        held.close()
        await pool.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent's bookkeeping remains


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _gone(pid: int) -> None:
    """The forked workers end on their own once their socket closes."""
    deadline = time.monotonic() + 10
    while _alive(pid):
        assert time.monotonic() < deadline, f"worker {pid} outlived the pool"
        time.sleep(0.02)


def test_a_parser_bug_is_a_reply_not_a_dead_worker() -> None:
    feed = Feed(url="https://x.example/feed.xml", name="X")
    reply = pickle.loads(answer(pickle.dumps((None, feed, NOW, frozenset(), None, None))))
    assert reply[0] == "crash" and "TypeError" in reply[1]
    not_a_feed = pickle.loads(answer(pickle.dumps(
        (b"<html><body>hello</body></html>", feed, NOW, frozenset(), None, "text/html"))))
    assert not_a_feed == ("error", "not a feed: the server sent an HTML page")


async def test_workers_that_cannot_start_leave_parsing_to_a_thread(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def no_processes(fd: int) -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(parsepool, "fork_worker", no_processes)
    body, feed = _doc()
    pool = ParsePool(2)
    try:
        got = [await pool.parse(body, feed, now=NOW, known=set(), base_url=None,
                                content_type=None) for _ in range(2)]
    finally:
        await pool.close()
    assert [p.entries for p in got] == [10, 10]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "parsing in a thread" in warnings[0]


async def test_a_worker_runs_none_of_the_collectors_signal_handlers(tmp_path: Path) -> None:
    """A handler the collector set (a daemon's SIGTERM, say) is its own: a worker
    told to stop just stops, and Ctrl-C (SIGINT) is left to the collector."""
    ran = tmp_path / "handler-ran"
    previous = signal.signal(signal.SIGTERM, lambda *_: ran.write_text(str(os.getpid())))
    body, feed = _doc()
    pool = ParsePool(1)
    try:
        await pool.parse(body, feed, now=NOW, known=set(), base_url=None, content_type=None)
        (pid,) = pool.forked
        os.kill(pid, signal.SIGINT)  # ignored: the next document is parsed
        got = await pool.parse(body, feed, now=NOW, known=set(), base_url=None,
                               content_type=None)
        assert got[0] == 10 and pool.forked == [pid]
        os.kill(pid, signal.SIGTERM)
        _gone(pid)
    finally:
        signal.signal(signal.SIGTERM, previous)
        await pool.close()
    assert not ran.exists()
