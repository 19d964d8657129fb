"""The parse worker processes: same articles as in-process parsing, a dead worker
costs one document, and no process outlives the pool."""

from __future__ import annotations

import os
import pickle
import signal
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.errors import FeedError
from digest.feedparse import parse_new
from digest.models import Feed
from digest.parse_worker import answer
from digest.parsepool import ParsePool

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
        assert worker.proc is not None
        first = worker.proc.pid
        # Killed with no await in between: the pool has not seen it die, so the
        # next document goes to it, as one would when a worker dies mid-parse.
        os.kill(first, signal.SIGKILL)
        with pytest.raises(FeedError, match="the parser crashed on this document"):
            await pool.parse(body, feed, now=NOW, known=set(), base_url=None,
                             content_type=None)
        entries, articles = await pool.parse(body, feed, now=NOW, known=set(),
                                             base_url=None, content_type=None)
        assert (entries, len(articles)) == (10, 10)
        assert worker.proc is not None and worker.proc.pid != first
    finally:
        await pool.close()
    assert worker.proc is None


async def test_no_process_without_a_document_and_none_after_close() -> None:
    idle = ParsePool(2)
    await idle.close()  # a collect where every feed answered 304
    assert all(w.proc is None for w in idle._all)

    body, feed = _doc()
    pool = ParsePool(2)
    await pool.parse(body, feed, now=NOW, known=set(), base_url=None, content_type=None)
    procs = [w.proc for w in pool._all]
    assert all(p is not None and p.returncode is None for p in procs)
    await pool.close()
    for p in procs:
        assert p is not None and p.returncode == 0
        with pytest.raises(ProcessLookupError):
            os.kill(p.pid, 0)


def test_a_parser_bug_is_a_reply_not_a_dead_worker() -> None:
    feed = Feed(url="https://x.example/feed.xml", name="X")
    reply = pickle.loads(answer(pickle.dumps((None, feed, NOW, frozenset(), None, None))))
    assert reply[0] == "crash" and "TypeError" in reply[1]
    not_a_feed = pickle.loads(answer(pickle.dumps(
        (b"<html><body>hello</body></html>", feed, NOW, frozenset(), None, "text/html"))))
    assert not_a_feed == ("error", "not a feed: the server sent an HTML page")
