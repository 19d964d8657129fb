"""The real-world corpus (../shared/corpus/feeds), served on loopback, collected in
one run, with feedparser as the reference for what each document holds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import feedparser
import pytest

from digest.collect.collector import collect
from digest.collect.parse import parse_feed
from digest.models import Feed
from digest.store.facade import Store
from tests.conftest import CORPUS
from tests.peers import FeedServer

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus missing at {CORPUS}")

# Unsafe only inside a tag: nh3 escapes every '<' in text, so prose about "onClick"
# or "JavaScript:" cannot match.
UNSAFE = (r"<script|<iframe|<style|<[^>]*\son\w+\s*=|<[^>]*=\s*\"?\s*javascript:")

HTML_PAGE = b"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>A blog</title><link rel="stylesheet" href="/site.css">
<link rel="alternate" type="application/atom+xml" title="Atom" href="/blog/atom.xml">
</head><body><h1>A blog</h1><p>Where the feed should have been.</p></body></html>"""


@pytest.fixture(scope="module")
def reference() -> dict[str, tuple[str, int]]:
    """feedparser's reading of every corpus document: (version, entries).

    Its sanitizer and relative-URI pass are off: they change no count and would
    triple the time.
    """
    out = {}
    for path in sorted(CORPUS.iterdir()):
        d = feedparser.parse(path.read_bytes(), sanitize_html=False,
                             resolve_relative_uris=False)
        out[path.name] = (str(d.get("version") or ""), len(d.entries))
    return out


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    yield s
    s.close()


async def test_corpus_collects_every_item(store: Store,
                                          reference: dict[str, tuple[str, int]]) -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert len(files) == 50
    with FeedServer(CORPUS) as server:
        def html(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
            return 200, {"Content-Type": "text/html; charset=utf-8"}, HTML_PAGE

        server.routes["/blog/"] = html
        feeds = [Feed(url=server.url(name), name=name) for name in files]
        feeds.append(Feed(url=server.url("blog/"), name="not-a-feed"))
        results = await collect(feeds, store, now=NOW)

    by_name = {r.feed: r for r in results}
    page = by_name.pop("not-a-feed")
    assert (page.status, page.error) == (
        "error", "not a feed: the server sent an HTML page "
                 f"(it advertises a feed at {server.url('blog/atom.xml')})")
    assert [r.error for r in by_name.values() if r.status != "ok"] == []
    # Before de-duplication, every document yields what feedparser finds in it.
    assert {n: r.items for n, r in by_name.items()} == {n: c for n, (_, c) in reference.items()}
    assert sum(r.items for r in by_name.values()) == 2442

    stored = store.articles_since(None)
    assert len(stored) == store.count_articles() == sum(r.new for r in results)
    assert len(stored) >= 2300  # de-duplication folds republished items, not distinct ones
    import re
    unsafe = re.compile(UNSAFE, re.I)
    tag = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?>")
    for a in stored:
        assert not unsafe.search(a.content_html), a.url
        assert len(a.summary) <= 310 and not tag.search(a.summary), a.summary
        assert a.title and a.published.tzinfo is not None and a.published <= NOW
        assert a.url.startswith("http") and "utm_" not in a.url
    # Every format of the corpus is there (33 RSS 2.0, 17 Atom 1.0).
    assert Counter(v for v, _ in reference.values()) == {"rss20": 33, "atom10": 17}
    assert sum(1 for a in stored if a.image) > 500
    assert sum(1 for a in stored if a.author) > 500
    assert sum(1 for a in stored if a.categories) > 500


def test_fast_path_agrees_with_feedparser_on_the_corpus() -> None:
    """lxml reads the whole corpus; where it does, it must read what feedparser reads."""
    fields = ("url", "title", "published", "author", "categories", "image")
    compared = differ = 0
    for path in sorted(CORPUS.iterdir()):
        if path.stat().st_size > 300_000:  # the big ones cost seconds in feedparser
            continue
        body = path.read_bytes()
        url = f"http://127.0.0.1/{path.name}"
        feed = Feed(url, path.name)
        fast = parse_feed(body, feed, now=NOW, base_url=url)
        slow = parse_feed(body, feed, now=NOW, base_url=url, reader="feedparser")
        assert len(fast) == len(slow), path.name
        for a, b in zip(fast, slow, strict=True):
            compared += 1
            differ += any(getattr(a, f) != getattr(b, f) for f in fields)
    assert compared > 500
    assert differ == 0


@pytest.mark.parametrize("workers", [0, 2])
async def test_worker_processes_and_threads_give_the_same_articles(
        tmp_path: Path, workers: int) -> None:
    """Big documents go to worker processes when cores are idle; the result must not
    depend on where they were parsed."""
    big = sorted((p for p in CORPUS.iterdir() if p.stat().st_size > 300_000),
                 key=lambda p: p.name)[:4]
    s = Store.open(tmp_path / f"w{workers}.db")
    try:
        with FeedServer(CORPUS) as server:
            feeds = [Feed(url=server.url(p.name), name=p.name) for p in big]
            results = await collect(feeds, s, now=NOW, parse_workers=workers)
        assert [r.status for r in results] == ["ok"] * len(big)
        stored = sorted((a.url, a.title, a.summary) for a in s.articles_since(None))
    finally:
        s.close()
    expected = sorted(
        (a.url, a.title, a.summary) for p in big
        for a in parse_feed(p.read_bytes(), Feed(server.url(p.name), p.name), now=NOW,
                            base_url=server.url(p.name)))
    assert len(stored) > 100
    assert set(stored) <= set(expected)
