"""collect: real HTTP (FeedServer on loopback), a real SQLite store, real feeds."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import feedparser
import pytest

from digest import __version__, config
from digest.collect import collect, collect_sync, parse_feed
from digest.feedparse import canonical_url, shorten
from digest.models import Feed, FeedResult
from digest.store import Store
from tests.conftest import CORPUS, REPO
from tests.peers import FeedServer, Route, free_port

NOW = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
DEMO = {  # file -> (name, items)
    "harbour-herald.xml": ("Harbour Herald", 11),
    "northern-ledger.atom": ("Northern Ledger", 10),
    "civic-wire.rdf": ("Civic Wire", 9),
    "byte-street.xml": ("Byte Street", 10),
    "meridian-science.atom": ("Meridian Science", 9),
}
# Inside a tag only: nh3 escapes every '<' in text, so prose about "onClick" or
# "JavaScript:" in a code sample cannot match.
UNSAFE = re.compile(r"<script|<iframe|<style|<[^>]*\son\w+\s*=|<[^>]*=\s*\"?\s*javascript:", re.I)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    yield s
    s.close()


def demo_feeds(server: FeedServer) -> list[Feed]:
    return [Feed(url=server.url(file), name=name) for file, (name, _) in DEMO.items()]


def route(status: int, body: bytes, **headers: str) -> Route:
    def serve(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        return status, {k.replace("_", "-"): v for k, v in headers.items()}, body
    return serve


# -- the demo feeds ------------------------------------------------------------

async def test_demo_feeds_collect_into_store(feed_server: FeedServer, store: Store) -> None:
    feeds = demo_feeds(feed_server)
    seen: list[FeedResult] = []
    results = await collect(feeds, store, now=NOW, on_result=seen.append)

    assert [r.url for r in results] == [f.url for f in feeds]  # input order kept
    assert sorted(seen, key=lambda r: r.url) == sorted(results, key=lambda r: r.url)
    for r, (file, (name, items)) in zip(results, DEMO.items(), strict=True):
        body = (REPO / "feeds" / file).read_bytes()
        assert (r.feed, r.status, r.error) == (name, "ok", None)
        assert r.items == items == len(feedparser.parse(body).entries)
        assert r.new == items
    assert store.count_articles() == 49

    again = await collect(feeds, store, now=NOW)
    assert [(r.status, r.items, r.new) for r in again] == [("ok", r.items, 0) for r in results]
    assert store.count_articles() == 49

    agents = {headers.get("User-Agent") for _, headers in feed_server.requests}
    assert agents == {f"digest/{__version__} (+https://github.com/digest)"}


def test_config_file_feeds_read_from_disk(store: Store) -> None:
    feeds = config.load(REPO / "config.toml").feeds
    assert all(f.url.startswith("file://") for f in feeds)
    results = collect_sync(feeds, store, now=NOW)
    assert [(r.feed, r.status, r.items) for r in results] == [
        (name, "ok", items) for name, items in DEMO.values()]
    # From a local file, a relative link can only mean the site the feed names.
    summit = next(a for a in store.articles_since(None) if "lisbon-climate-summit" in a.url)
    assert 'href="https://harbour-herald.example/documents/lisbon-text"' in summit.content_html


async def test_demo_articles_are_clean(feed_server: FeedServer, store: Store) -> None:
    await collect(demo_feeds(feed_server), store, now=NOW)
    articles = store.articles_since(None)
    assert len(articles) == 49
    for a in articles:
        assert not UNSAFE.search(a.content_html), a.title
        assert 0 < len(a.summary) <= 310 and "<" not in a.summary
        assert "utm_" not in a.url and a.url.startswith("https://")
        assert a.published.tzinfo is not None and a.published <= NOW
        assert a.image is None or a.image.startswith("https://img.")
    by_title = {a.title: a for a in articles}
    tallyfox = by_title["Startup Tallyfox launches app that splits bills inside group chats"]
    assert "tracker.example" not in tallyfox.content_html  # the <script> went with its body
    assert 'href="https://tallyfox.example/download"' in tallyfox.content_html
    assert tallyfox.image == "https://img.byte-street.example/thumbs/tallyfox.jpg"
    assert tallyfox.categories == ("Startups", "Apps") and tallyfox.author == "Jo Lindqvist"
    summit = by_title["Lisbon climate summit ends with deal to cut methane and triple "
                      "adaptation finance"]
    assert summit.url == "https://harbour-herald.example/world/2026/11/27/lisbon-climate-summit-deal"
    # Over HTTP, a relative link resolves against where the feed was fetched from.
    assert f'href="{feed_server.url("documents/lisbon-text")}"' in summit.content_html
    rate = by_title["Valdoria's central bank cuts interest rate to 3.25% as inflation cools"]
    assert rate.url == "https://harbour-herald.example/world/2026/11/27/valdoria-central-bank-cuts-rate"
    assert rate.published == datetime(2026, 11, 27, 16, 40, tzinfo=UTC)


# -- politeness ------------------------------------------------------------------

async def test_conditional_get_gives_not_modified(feed_server: FeedServer, store: Store) -> None:
    body = (REPO / "feeds" / "civic-wire.rdf").read_bytes()
    etag, modified = '"cw-42"', "Fri, 27 Nov 2026 15:30:00 GMT"

    def serve(req: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        if req.headers.get("If-None-Match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, {"ETag": etag, "Last-Modified": modified}, body

    feed_server.routes["/cw.rdf"] = serve
    feed = Feed(url=feed_server.url("cw.rdf"), name="Civic Wire")
    first = await collect([feed], store, now=NOW)
    second = await collect([feed], store, now=NOW)

    assert (first[0].status, first[0].items) == ("ok", 9)
    assert (second[0].status, second[0].items, second[0].new) == ("not_modified", 0, 0)
    (_, h1), (_, h2) = feed_server.requests
    assert "If-None-Match" not in h1
    assert (h2["If-None-Match"], h2["If-Modified-Since"]) == (etag, modified)
    state = store.feed_state(feed.url)
    assert (state.etag, state.last_modified, state.last_status) == (etag, modified, "not_modified")


async def test_redirects_are_followed_within_bounds(feed_server: FeedServer, store: Store) -> None:
    feed_server.routes["/moved"] = route(301, b"", Location="/byte-street.xml")
    feed_server.routes["/loop"] = route(302, b"", Location="/loop")
    results = await collect([Feed(feed_server.url("moved"), "Moved"),
                             Feed(feed_server.url("loop"), "Loop")], store, now=NOW)
    assert (results[0].status, results[0].items) == ("ok", 10)
    assert (results[1].status, results[1].error) == ("error", "too many redirects (more than 5)")


# -- broken feeds ------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html><html><head><title>Harbour Herald</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="RSS" href="/harbour-herald.xml">
</head><body><h1>Harbour Herald</h1><p>Welcome!</p></body></html>"""


async def test_broken_feeds_are_reported_and_skipped(feed_server: FeedServer,
                                                     store: Store) -> None:
    feed_server.routes["/index.html"] = route(200, HTML_PAGE, Content_Type="text/html")
    feed_server.routes["/garbage"] = route(200, bytes(range(256)) * 8)
    feed_server.routes["/gone"] = route(410, b"gone")
    feeds = [
        Feed(feed_server.url("missing.xml"), "Missing"),
        Feed(feed_server.url("index.html"), "Homepage"),
        Feed(feed_server.url("garbage"), "Garbage"),
        Feed(f"http://127.0.0.1:{free_port()}/feed.xml", "Nobody home"),
        Feed(feed_server.url("byte-street.xml"), "Byte Street"),
        Feed(feed_server.url("gone"), "Gone"),
        Feed("file:///nonexistent/feed.xml", "No file"),
    ]
    results = await collect(feeds, store, now=NOW)
    errors = {r.feed: r.error or "" for r in results if r.status == "error"}

    assert errors == {
        "Missing": "HTTP 404 Not Found",
        "Homepage": "not a feed: the server sent an HTML page (it advertises a feed at "
                    f"{feed_server.url('harbour-herald.xml')})",
        "Garbage": errors["Garbage"],
        "Nobody home": "connection refused",
        "Gone": "HTTP 410 Gone",
        "No file": "file not found: /nonexistent/feed.xml",
    }
    assert errors["Garbage"].startswith("not a feed: could not parse XML (")
    assert all("\n" not in e for e in errors.values())
    assert (results[4].status, results[4].items) == ("ok", 10)
    state = store.feed_state(feed_server.url("missing.xml"))
    assert (state.last_status, state.last_error, state.failures) == (
        "error", "HTTP 404 Not Found", 1)


async def test_oversized_body_is_cut_off(feed_server: FeedServer, store: Store) -> None:
    small = b"""<?xml version="1.0"?><rss version="2.0"><channel><title>Tiny</title>
<item><title>One</title><link>https://tiny.example/1</link></item></channel></rss>"""
    feed_server.routes["/tiny.xml"] = route(200, small)
    results = await collect([Feed(feed_server.url("harbour-herald.xml"), "Harbour Herald"),
                             Feed(feed_server.url("tiny.xml"), "Tiny")],
                            store, now=NOW, max_bytes=4096)
    assert (results[0].status, results[0].error) == ("error", "response larger than 4 KB")
    assert (results[1].status, results[1].items) == ("ok", 1)


async def test_a_server_that_never_answers_times_out(feed_server: FeedServer,
                                                     store: Store) -> None:
    release = threading.Event()

    def hang(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        release.wait(10)
        return 200, {}, b""

    feed_server.routes["/hang"] = hang
    # The late answer hits a closed socket; that is expected, not worth a traceback.
    feed_server.httpd.handle_error = lambda *_: None  # type: ignore[method-assign]
    try:
        results = await collect([Feed(feed_server.url("hang"), "Hang")], store, now=NOW,
                                timeout=0.3)
    finally:
        release.set()
    assert (results[0].status, results[0].error) == ("error", "timed out after 0.3 s")


# -- parsing details -----------------------------------------------------------------

def test_parse_feed_normalises_entries() -> None:
    body = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/"><channel>
<title>T</title><link>https://site.example/</link>
<item><title>R&amp;amp;D   spending
  <![CDATA[rises]]></title><link>/a/1?utm_source=x&amp;id=7#comments</link>
  <description>&lt;p&gt;Hello &lt;img src="/i.png" width="1" height="1"&gt;
    &lt;img src="/big.jpg"&gt;&lt;/p&gt;</description></item>
<item><description>No title and no link: skipped.</description></item>
<item><title>No link</title><guid isPermaLink="false">x-1</guid>
  <pubDate>Thu, 26 Nov 2026 23:30:00 -0500</pubDate></item>
<item><title>Comment</title><link>https://site.example/p#c-1</link><guid>https://site.example/?p=1#c-1</guid></item>
<item><title>Comment</title><link>https://site.example/p#c-2</link><guid>https://site.example/?p=1#c-2</guid></item>
<item><title>Status</title><pubDate>Wed, 25 Nov 2026 10:00:00 GMT</pubDate></item>
<item><title>Status</title><pubDate>Thu, 26 Nov 2026 10:00:00 GMT</pubDate></item>
</channel></rss>"""
    feed = Feed("https://site.example/rss", "Site")
    a, b, c1, c2, s1, s2 = parse_feed(body, feed, now=NOW, base_url="https://site.example/rss")
    assert a.title == "R&D spending rises"
    assert a.url == "https://site.example/a/1?id=7"
    assert a.guid == "https://site.example/a/1?utm_source=x&id=7#comments"
    assert a.image == "https://site.example/big.jpg"  # the 1x1 pixel is not an image
    assert a.published == NOW  # no date: first seen
    assert b.published == datetime(2026, 11, 27, 4, 30, tzinfo=UTC)
    assert b.url == "https://site.example/#item-x-1" and b.guid == "x-1"
    # Anchors that are the items themselves keep their fragment.
    assert (c1.url, c2.url) == ("https://site.example/p#c-1", "https://site.example/p#c-2")
    assert s1.guid != s2.guid and s1.url != s2.url  # same title, different days


def test_parse_feed_reads_json_feed() -> None:
    body = b"""{"version": "https://jsonfeed.org/version/1.1", "title": "J",
      "home_page_url": "https://j.example/", "items": [
        {"id": "1", "url": "https://j.example/1?fbclid=abc", "title": "First",
         "content_html": "<p onclick='x()'>Hi <script>bad()</script>there</p>",
         "date_published": "2026-11-27T10:00:00+01:00", "tags": ["a", "b"],
         "authors": [{"name": "Ann"}], "image": "https://img.j.example/1.jpg"}]}"""
    (a,) = parse_feed(body, Feed("https://j.example/feed.json", "J"), now=NOW)
    assert (a.url, a.title, a.summary) == ("https://j.example/1", "First", "Hi there")
    assert a.content_html == "<p>Hi there</p>"
    assert a.published == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert (a.author, a.categories, a.image) == ("Ann", ("a", "b"), "https://img.j.example/1.jpg")


@pytest.mark.parametrize(("url", "expected"), [
    ("https://A.example/x?utm_source=rss&utm_medium=feed", "https://a.example/x"),
    ("https://a.example/x?id=3&fbclid=1&gclid=2&mc_cid=3&mc_eid=4", "https://a.example/x?id=3"),
    ("https://a.example/x#section-2", "https://a.example/x"),
    ("https://a.example/app#!/story/9", "https://a.example/app#!/story/9"),
    ("https://a.example", "https://a.example/"),
])
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


def test_shorten_cuts_at_sentence_or_word() -> None:
    sentences = "The first sentence is here. " * 20
    cut = shorten(sentences)
    assert len(cut) <= 302 and cut.endswith("here. …")
    words = "word " * 100
    assert shorten(words).endswith("word…") and len(shorten(words)) <= 301
    assert shorten("short.") == "short."


# -- the real-world corpus -------------------------------------------------------------

# len(feedparser.parse(body).entries) minus entries with neither title nor link, per
# document, from feedparser 6.0.14. Frozen here because a second full feedparser pass
# over the corpus would cost ~14 s; test_corpus_counts_match_live_feedparser re-derives
# the small ones live.
CORPUS_ITEMS = {
    "01b5e6081cb62f3d": 92, "03db8affb53e2a2f": 15, "0c1cef22da7ddc10": 30,
    "14333881097406c7": 12, "16dc10cf98d1ee82": 50, "18d1bc71cc221963": 10,
    "1a6a99410a2b58f2": 10, "1cc034d2831f54bb": 100, "1e4ab389e139d659": 15,
    "25f0d733068a3446": 10, "2b665d9e4b6bb33a": 25, "2fdd6727be89a7ea": 10,
    "35d239094642a61f": 46, "3ac543065ca0ef7d": 59, "4059f23db954f1b5": 16,
    "454280b7f9e592d2": 20, "49ea3c9d52b08d80": 15, "4bf53cb602417030": 9,
    "4fa0b1b8f5681301": 25, "5532f16828c3b094": 15, "59990f9eb0e3b46d": 10,
    "5da3b20f957be51d": 100, "5ed469fb5a05348d": 10, "68e950f671d2e5e0": 10,
    "6d28cf55da15a12d": 235, "703cc817824470a0": 10, "73c63ac29e5d1dc8": 10,
    "7be307059415227d": 10, "818f59b753411031": 20, "87232eca4263cf8c": 9,
    "8eae48a98c3d5f31": 9, "92f267815335c9ef": 30, "95c748e927f3182f": 10,
    "995fa12531de4aa0": 14, "9ffe5a284356888f": 25, "a4046954d16bd5a6": 25,
    "aaf373a6337e5efa": 3, "ad4dc6d7d1aebb18": 10, "b3984eb318f226e3": 15,
    "bf73c33ba409c416": 10, "c5ab9fd6c5c3ee86": 120, "cc314ce5dfbb3adc": 1044,
    "d2c8db248dba593b": 12, "d67b477b329c0a8a": 8, "db0e953a472b88b8": 10,
    "dbd9c7a29dcccb19": 68, "e24bdf846b71fa0f": 5, "e8203fee50c570d8": 3,
    "ef194bf7a34b8c3f": 4, "f8b7e5d26c45a31e": 7,
}
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"corpus missing at {CORPUS}")


def _feedparser_items(body: bytes) -> int:
    entries = feedparser.parse(body).entries
    return sum(1 for e in entries if e.get("title") or e.get("link"))


@needs_corpus
def test_corpus_counts_match_live_feedparser() -> None:
    small = [p for p in sorted(CORPUS.iterdir()) if p.stat().st_size < 50_000]
    assert len(small) >= 20
    for path in small:
        assert _feedparser_items(path.read_bytes()) == CORPUS_ITEMS[path.name], path.name


@needs_corpus
async def test_corpus_collects_every_item(store: Store) -> None:
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file())
    assert set(files) == set(CORPUS_ITEMS)
    with FeedServer(CORPUS) as server:
        feeds = [Feed(url=server.url(name), name=name) for name in files]
        results = await collect(feeds, store, now=NOW)

    got = {r.feed: r.items for r in results}
    assert [r.error for r in results if r.status != "ok"] == []
    assert got == CORPUS_ITEMS
    assert sum(got.values()) == 2440
    # Every item is distinct: anchors on one page and link-less items with repeated
    # titles (both present in the corpus) must not be folded together.
    assert store.count_articles() == sum(r.new for r in results) == 2440
    for a in store.articles_since(None):
        assert not UNSAFE.search(a.content_html), a.url
        assert len(a.summary) <= 310 and a.title and a.published.tzinfo is not None
