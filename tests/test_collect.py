"""collect: real HTTP (FeedServer on loopback), a real SQLite store, real feeds."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import feedparser
import pytest

from digest import __version__, config
from digest import console as report
from digest.collect.collector import collect, collect_for, collect_sync
from digest.models import Article, Feed, FeedResult
from digest.store.facade import FeedOutcome, Store
from tests.conftest import REPO
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
    # A relative link in an item resolves against the item's page (on the feed's site),
    # as it was written there: not against where the feed happened to be fetched from.
    assert 'href="https://harbour-herald.example/documents/lisbon-text"' in summit.content_html
    assert feed_server.url("documents") not in summit.content_html
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


async def test_permanent_redirect_updates_the_stored_url(feed_server: FeedServer,
                                                         store: Store) -> None:
    feed_server.routes["/moved"] = route(301, b"", Location="/via-308")
    feed_server.routes["/via-308"] = route(308, b"", Location="/byte-street.xml")
    feed_server.routes["/temporary"] = route(302, b"", Location="/civic-wire.rdf")
    feeds = [Feed(feed_server.url("moved"), "Moved"), Feed(feed_server.url("temporary"), "Temp")]
    first = await collect(feeds, store, now=NOW)
    new_home = feed_server.url("byte-street.xml")
    assert (first[0].status, first[0].items, first[0].moved_to) == ("ok", 10, new_home)
    assert (first[1].status, first[1].items, first[1].moved_to) == ("ok", 9, None)
    assert store.feed_state(feeds[0].url).moved_to == new_home
    assert "Moved -> " + new_home in report.collect_summary(first)  # and says so

    feed_server.requests.clear()
    second = await collect(feeds, store, now=NOW)
    paths = [p for p, _ in feed_server.requests]
    assert "/moved" not in paths and "/byte-street.xml" in paths  # straight to the new URL
    assert "/temporary" in paths  # a temporary redirect changes nothing
    assert (second[0].status, second[0].new, second[0].moved_to) == ("ok", 0, new_home)


async def test_concurrency_is_bounded_globally_and_per_host(feed_server: FeedServer,
                                                            store: Store) -> None:
    lock = threading.Lock()
    now_in, peak = [0], [0]
    body = (REPO / "feeds" / "civic-wire.rdf").read_bytes()

    def slow(_: BaseHTTPRequestHandler) -> tuple[int, dict[str, str], bytes]:
        with lock:
            now_in[0] += 1
            peak[0] = max(peak[0], now_in[0])
        threading.Event().wait(0.1)  # hold the slot so overlaps can happen
        with lock:
            now_in[0] -= 1
        return 200, {}, body

    for i in range(6):
        feed_server.routes[f"/f{i}"] = slow
    feeds = [Feed(feed_server.url(f"f{i}"), f"F{i}") for i in range(6)]
    results = await collect(feeds, store, now=NOW, per_host=2)
    assert [r.status for r in results] == ["ok"] * 6
    assert peak[0] == 2
    now_in[0] = peak[0] = 0
    await collect(feeds, store, now=NOW, concurrency=1, per_host=4)
    assert peak[0] == 1


# -- feed health ------------------------------------------------------------------------

async def test_gone_feed_is_marked_dead_and_skipped(feed_server: FeedServer,
                                                    store: Store) -> None:
    feed_server.routes["/gone"] = route(410, b"gone")
    feed = Feed(feed_server.url("gone"), "Gone")
    (first,) = await collect([feed], store, now=NOW)
    assert (first.status, first.error) == ("error", "HTTP 410 Gone: the feed was removed")
    assert store.feed_state(feed.url).dead_since == NOW

    feed_server.requests.clear()
    (second,) = await collect([feed], store, now=NOW)
    assert feed_server.requests == []  # not asked again
    assert second.status == "error" and second.error is not None
    assert second.error.startswith("gone since 2026-11-27 (HTTP 410), not fetched")
    assert store.feed_state(feed.url).failures == 1  # a skip is not another failure

    assert store.forget_feed_state(feed.url)
    feed_server.routes["/gone"] = route(200, (REPO / "feeds" / "civic-wire.rdf").read_bytes())
    (third,) = await collect([feed], store, now=NOW)
    assert (third.status, third.items) == ("ok", 9)
    state = store.feed_state(feed.url)
    assert (state.dead_since, state.failures, state.last_success) == (None, 0, NOW)


@pytest.mark.parametrize(("status", "header"), [
    (429, "120"), (503, "Fri, 27 Nov 2026 19:00:00 GMT")])
async def test_retry_after_is_honoured(feed_server: FeedServer, store: Store, status: int,
                                       header: str) -> None:
    feed_server.routes["/busy"] = route(status, b"busy", Retry_After=header)
    feed = Feed(feed_server.url("busy"), "Busy")
    (first,) = await collect([feed], store, now=NOW)
    assert first.status == "error" and first.error is not None
    assert first.error.startswith(f"HTTP {status} ")
    state = store.feed_state(feed.url)
    assert state.retry_after is not None and state.retry_after > NOW

    feed_server.requests.clear()
    (second,) = await collect([feed], store, now=NOW)
    assert feed_server.requests == [] and second.error is not None
    assert "asked us to wait until" in second.error
    later = state.retry_after.replace(hour=23)
    (third,) = await collect([feed], store, now=later)
    assert len(feed_server.requests) == 1 and third.status == "error"
    assert store.feed_state(feed.url).failures == 2


async def test_failures_count_until_a_success(feed_server: FeedServer, store: Store) -> None:
    feed_server.routes["/flaky"] = route(500, b"")
    feed = Feed(feed_server.url("flaky"), "Flaky")
    for _ in range(3):
        await collect([feed], store, now=NOW)
    state = store.feed_state(feed.url)
    assert (state.failures, state.last_error, state.last_success) == (
        3, "HTTP 500 Internal Server Error", None)
    feed_server.routes["/flaky"] = route(200, (REPO / "feeds" / "civic-wire.rdf").read_bytes())
    await collect([feed], store, now=NOW)
    state = store.feed_state(feed.url)
    assert (state.failures, state.last_success, state.last_items) == (0, NOW, 9)
    assert state.last_error == "HTTP 500 Internal Server Error"  # kept, for the record


# -- broken feeds ------------------------------------------------------------------

HTML_PAGE = b"""<!DOCTYPE html><html><head><title>Harbour Herald</title>
<link rel="stylesheet" href="/style.css">
<link rel="alternate" type="application/rss+xml" title="RSS" href="/harbour-herald.xml">
</head><body><h1>Harbour Herald</h1><p>Welcome!</p></body></html>"""


async def test_broken_feeds_are_reported_and_skipped(feed_server: FeedServer,
                                                     store: Store) -> None:
    feed_server.routes["/index.html"] = route(200, HTML_PAGE, Content_Type="text/html")
    feed_server.routes["/garbage"] = route(200, bytes(range(256)) * 8)
    feeds = [
        Feed(feed_server.url("missing.xml"), "Missing"),
        Feed(feed_server.url("index.html"), "Homepage"),
        Feed(feed_server.url("garbage"), "Garbage"),
        Feed(f"http://127.0.0.1:{free_port()}/feed.xml", "Nobody home"),
        Feed(feed_server.url("byte-street.xml"), "Byte Street"),
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




# -- pruning, the CLI ---------------------------------------------------------------------

async def test_old_articles_are_pruned_and_never_come_back(feed_server: FeedServer,
                                                           store: Store) -> None:
    feed = Feed(feed_server.url("civic-wire.rdf"), "Civic Wire")
    await collect([feed], store, now=NOW)
    assert store.count_articles() == 9
    assert store.prune_articles(NOW) == 0  # first seen now: not old yet
    later = NOW.replace(year=2027)
    assert store.prune_articles(later, now=later) == 9
    assert store.count_articles() == 0
    # The feed still carries them; they are not news again.
    (again,) = await collect([feed], store, now=later)
    assert (again.status, again.items, again.new) == ("ok", 9, 0)
    assert store.count_articles() == 0


def _project(tmp_path: Path, feed_server: FeedServer, keep_days: int = 30) -> Path:
    feeds = "".join(f'[[feeds]]\nurl = "{feed_server.url(f)}"\nname = "{n}"\n\n'
                    for f, (n, _) in DEMO.items())
    feeds += f'[[feeds]]\nurl = "{feed_server.url("gone.xml")}"\nname = "Gone"\n\n'
    path = tmp_path / "config.toml"
    path.write_text(f'[storage]\npath = "digest.db"\nkeep_days = {keep_days}\n\n'
                    f'[collect]\nper_host = 4\ntimeout = 30\nmax_mb = 5\n\n{feeds}')
    return path


def test_cli_collect_json_and_feeds_table(tmp_path: Path, feed_server: FeedServer) -> None:
    from click.testing import CliRunner

    from digest.cli import cli

    feed_server.routes["/gone.xml"] = route(410, b"")
    config_path = _project(tmp_path, feed_server)
    runner = CliRunner()
    got = runner.invoke(cli, ["--config", str(config_path), "collect", "--json"])
    assert got.exit_code == 0, got.output
    rows = json.loads(got.stdout)
    assert [set(r) for r in rows] == [{"feed", "url", "status", "items", "new", "error"}] * 6
    assert [r["status"] for r in rows] == ["ok"] * 5 + ["error"]

    table = runner.invoke(cli, ["--config", str(config_path), "feeds"])
    assert table.exit_code == 0, table.output
    assert "Harbour Herald" in table.stdout and "gone" in table.stdout
    assert "HTTP 410 Gone" in table.stdout
    assert "6 feeds: 5 healthy, 1 failing or gone" in table.stdout

    health = json.loads(runner.invoke(
        cli, ["--config", str(config_path), "feeds", "--json"]).stdout)
    assert [h["state"] for h in health] == ["ok"] * 5 + ["gone"]
    assert health[0]["items"] == 11 and health[0]["failures"] == 0
    assert health[0]["last_success"] is not None
    assert (health[5]["failures"], health[5]["last_error"]) == (
        1, "HTTP 410 Gone: the feed was removed")

    revived = runner.invoke(cli, ["--config", str(config_path), "feeds", "--revive", "Gone"])
    assert revived.exit_code == 0 and "revived" in revived.stdout
    unknown = runner.invoke(cli, ["--config", str(config_path), "feeds", "--revive", "nope"])
    assert unknown.exit_code == 1 and "error: no feed 'nope'" in unknown.output

    summary = runner.invoke(cli, ["--config", str(config_path), "collect"])
    text = " ".join(summary.stdout.split())  # rich wraps at the terminal width
    assert "collected 6 feeds: 5 ok, 0 not modified, 1 failed; 0 new articles" in text
    # The error is in the table, once; the summary names the feed, on stderr.
    assert summary.output.count("HTTP 410 Gone") == 1, summary.output
    assert summary.stderr == "warning: 1 of 6 feeds failed: Gone (history: digest feeds)\n"
    assert summary.exit_code == 0


def test_dedup_by_guid_url_and_source_title(store: Store) -> None:
    def art(guid: str, url: str, title: str, day: int, feed: str = "https://a.example/rss",
            summary: str = "The vote was 51 to 49.") -> Article:
        return Article(feed_url=feed, source="A", guid=guid, url=url, title=title,
                       summary=summary, published=datetime(2026, 11, day, 9, 0, tzinfo=UTC))

    assert store.add_articles([art("1", "https://a.example/1", "Budget passes", 20)], NOW) == 1
    assert store.add_articles([
        art("1", "https://a.example/other", "Another title", 20),  # same guid, same feed
        art("2", "https://a.example/1", "Yet another", 20,  # same URL, any feed
            feed="https://b.example/rss"),
        art("3", "https://a.example/1-updated-slug", "Budget  PASSES", 21),  # republished
        art("4", "https://a.example/4", "Weekly roundup", 13),
        art("5", "https://a.example/5", "Weekly roundup", 20),  # a series: a week apart
        art("6", "https://a.example/6", "Budget passes", 20,  # another source's headline
            feed="https://b.example/rss"),
        art("7", "https://a.example/7", "Budget passes", 21,  # same title, other news
            summary="The senate now takes it up."),
    ], NOW) == 4
    assert sorted(a.guid for a in store.articles_since(None)) == ["1", "4", "5", "6", "7"]


def test_outcomes_saved_together_count_new_articles_per_feed(store: Store) -> None:
    """The collector commits several feeds at once: each feed's own new count still
    comes back, a URL two feeds share is new only for the first, and a failed feed's
    health is recorded in the same transaction."""
    def art(feed: str, guid: str, url: str) -> Article:
        return Article(feed_url=feed, source=feed, guid=guid, url=url, title=f"Story {guid}",
                       summary=f"What happened in story {guid}.",
                       published=datetime(2026, 11, 20, 9, 0, tzinfo=UTC))

    a, b = "https://a.example/rss", "https://b.example/rss"
    new = store.save_outcomes([
        FeedOutcome(a, "A", "ok", [art(a, "1", "https://x.example/1"),
                                   art(a, "2", "https://x.example/2")], etag='"a1"', items=2),
        FeedOutcome(b, "B", "ok", [art(b, "1", "https://x.example/2"),  # A's URL
                                   art(b, "3", "https://x.example/3")], items=2),
        FeedOutcome("https://c.example/rss", "C", "error", error="HTTP 500"),
    ], NOW)
    assert new == [2, 1, 0]
    states = {s.url: s for s in store.feed_states()}
    assert states[a].etag == '"a1"' and states[a].last_items == 2
    assert states["https://c.example/rss"].failures == 1
    assert states["https://c.example/rss"].last_error == "HTTP 500"
    assert store.save_outcomes([FeedOutcome(a, "A", "ok", [art(a, "1", "https://x.example/1")])],
                               NOW) == [0]


async def test_collect_for_prunes_after_keep_days(tmp_path: Path, feed_server: FeedServer,
                                                  store: Store) -> None:
    config_path = _project(tmp_path, feed_server, keep_days=7)
    cfg = config.load(config_path)
    old = datetime(2026, 10, 1, tzinfo=UTC)
    store.add_articles([Article(feed_url="https://old.example/rss", source="Old", guid="o1",
                                url="https://old.example/1", title="Old news", summary="",
                                published=old)], old)
    feed_server.routes["/gone.xml"] = route(410, b"")
    results = await asyncio.to_thread(collect_for, cfg, store, now=NOW)
    assert [r.status for r in results][:5] == ["ok"] * 5
    assert "Old news" not in {a.title for a in store.articles_since(None)}
    assert store.count_articles() == 49


def test_a_version_1_database_gains_the_health_columns(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE meta (key VARCHAR(64) PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('schema', '1');
            CREATE TABLE feeds (url TEXT PRIMARY KEY, name TEXT NOT NULL, etag TEXT,
                last_modified TEXT, last_status VARCHAR(16), last_success VARCHAR(32),
                last_error TEXT, last_error_at VARCHAR(32), failures INTEGER NOT NULL);
            INSERT INTO feeds VALUES ('https://x.example/rss', 'X', '"e"', NULL, 'ok',
                '2026-11-01T00:00:00+00:00', NULL, NULL, 0);
        """)
    s = Store.open(path)
    try:
        state = s.feed_state("https://x.example/rss")
        assert (state.etag, state.moved_to, state.dead_since) == ('"e"', None, None)
        s.record_feed(state.url, "X", "error", error="HTTP 410 Gone", dead=True, now=NOW)
        assert s.feed_state(state.url).dead_since == NOW
    finally:
        s.close()
