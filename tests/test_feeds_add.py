"""`digest feeds add` and `remove` as a user types them: real feeds from the shared
corpus and HTML pages naming them, served over loopback HTTP, and a real config.toml
whose comments must survive byte for byte outside the entry that changes."""

from __future__ import annotations

import difflib
import json
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from digest.cli import cli
from digest.collect.parse import parse_feed
from digest.models import Feed
from tests.conftest import CORPUS
from tests.peers import FeedServer

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
CBS, WAPO, NPR = "0c1cef22da7ddc10", "4bf53cb602417030", "7be307059415227d"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="the shared corpus is missing")


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer(CORPUS) as s:
        yield s


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes((REPO / "config.toml").read_bytes())
    return path


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "feeds", *args])


def page(server: FeedServer, path: str, head: str) -> None:
    """An HTML page at ``path`` with ``head`` in its <head>."""
    html = f"<!DOCTYPE html><html><head><title>A site</title>{head}</head><body>x</body></html>"
    server.routes[path] = lambda _: (200, {"Content-Type": "text/html; charset=utf-8"},
                                     html.encode())


def items(name: str) -> int:
    return len(parse_feed((CORPUS / name).read_bytes(), Feed("u", ""), now=NOW))


def outside_the_new_entry(old: bytes, new: bytes) -> bytes:
    """``new`` without the lines it adds to ``old``, which must be one contiguous run:
    a blank line and one [[feeds]] entry."""
    a, b = old.decode().splitlines(keepends=True), new.decode().splitlines(keepends=True)
    ops = [op for op in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes()
           if op[0] != "equal"]
    assert len(ops) == 1 and ops[0][0] == "insert", ops
    added = b[ops[0][3]:ops[0][4]]
    assert added[0] == "\n" and added[1] == "[[feeds]]\n", added
    assert all(" = " in line for line in added[2:]), added
    return "".join(b[:ops[0][3]] + b[ops[0][4]:]).encode()


def test_add_from_a_page_takes_its_first_rss_link_and_names_the_others(
        server: FeedServer, config: Path) -> None:
    # Relative hrefs and <base>, the way sites write them; the first RSS link wins over
    # an earlier JSON Feed, and a javascript: link is not a feed at all.
    page(server, "/blog/", '<base href="/">'
         '<link rel="alternate" type="application/feed+json" href="feed.json" title="JSON">'
         '<link rel="alternate" type="application/atom+xml" href="javascript:alert(1)">'
         f'<link rel="alternate" type="application/rss+xml" href="{CBS}" title="World">'
         f'<link rel="alternate" type="application/atom+xml" href="/{WAPO}" title="Comments">')
    old = config.read_bytes()
    result = run(config, "add", server.url("/blog/"))
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0] == (
        f'added "CBSNews.com" {server.url(CBS)} ({items(CBS)} items) to {config}')
    assert f"found on {server.url('/blog/')}" in result.output
    assert f"also names: {server.url('feed.json')} (JSON), {server.url(WAPO)} (Comments)" \
        in result.output
    listed = tomllib.loads(config.read_text())["feeds"][-1]
    assert listed == {"url": server.url(CBS), "name": "CBSNews.com",
                      "site": "https://www.cbsnews.com/"}
    assert outside_the_new_entry(old, config.read_bytes()) == old
    assert [p for p, _ in server.requests] == ["/blog/", f"/{CBS}"]  # fetched once


def test_add_a_feed_by_its_own_address_with_options_as_json(server: FeedServer,
                                                           config: Path) -> None:
    result = run(config, "add", server.url(NPR), "--name", "NPR", "--weight", "1.3",
                 "--topic", "world", "--topic", "science", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert (out["name"], out["url"], out["items"], out["page"], out["feeds"]) == (
        "NPR", server.url(NPR), items(NPR), None, 6)
    assert out["title"] == "NPR Topics: World" and out["topics"] == ["world", "science"]
    listed = tomllib.loads(config.read_text())["feeds"][-1]
    assert (listed["weight"], listed["topics"]) == (1.3, ["world", "science"])
    # The config still loads, and the new feed is one of the run's feeds.
    from digest.config import load

    assert load(config).feeds[-1].name == "NPR"


def test_a_feed_that_moved_for_good_is_listed_at_its_new_home(server: FeedServer,
                                                             config: Path) -> None:
    server.routes["/old-feed"] = lambda _: (301, {"Location": f"/{WAPO}"}, b"")
    result = run(config, "add", server.url("/old-feed"), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["moved"] is True
    assert tomllib.loads(config.read_text())["feeds"][-1]["url"] == server.url(WAPO)


def test_duplicates_are_refused_with_one_line_and_nothing_written(server: FeedServer,
                                                                 config: Path) -> None:
    assert run(config, "add", server.url(CBS)).exit_code == 0
    before = config.read_bytes()
    server.routes["/moved"] = lambda _: (302, {"Location": f"/{CBS}"}, b"")
    page(server, "/", f'<link rel="alternate" type="application/rss+xml" href="/{CBS}">')
    for again in (server.url(CBS), server.url(CBS) + "/", server.url(CBS).upper()
                  .replace("HTTP://", "https://").replace(CBS.upper(), CBS),
                  server.url("/moved"), server.url("/")):
        result = run(config, "add", again)
        assert result.exit_code == 1, (again, result.output)
        lines = result.output.splitlines()
        assert len(lines) == 1 and "already listed in" in lines[0] and str(config) in lines[0]
        assert server.url(CBS) in lines[0]
        assert config.read_bytes() == before
    assert "leads to" in run(config, "add", server.url("/moved")).output


@pytest.mark.parametrize(("route", "expected"), [
    ("/plain", "a web page that names no feed"),
    ("/scripted", "a web page that names no feed"),
    ("/missing", "HTTP 404"),
    ("/page-to-page", "is an HTML page, not a feed"),
    ("/not-xml", "not a feed"),
])
def test_what_is_not_a_feed_is_refused_with_one_line(server: FeedServer, config: Path,
                                                     route: str, expected: str) -> None:
    page(server, "/plain", '<link rel="stylesheet" href="/style.css">')
    page(server, "/scripted", '<link rel="alternate" type="application/rss+xml" '
         'href="javascript:fetch(1)">')
    page(server, "/page-to-page", '<link rel="alternate" type="application/rss+xml" '
         'href="/plain">')
    server.routes["/not-xml"] = lambda _: (200, {"Content-Type": "text/plain"}, b"hello")
    before = config.read_bytes()
    result = run(config, "add", server.url(route))
    assert result.exit_code == 1
    assert len(result.output.splitlines()) == 1 and expected in result.output, result.output
    assert result.output.startswith("error: http://127.0.0.1:")
    assert config.read_bytes() == before


@pytest.mark.parametrize(("address", "expected"), [
    ("javascript:alert(1)", "not a web address (javascript:)"),
    ("file:///etc/passwd", "a local path"),
    ("/etc/passwd", "a local path"),
    ("example.org/feed", "did you mean https://example.org/feed?"),
])
def test_addresses_that_are_not_web_addresses_are_refused_before_any_fetch(
        server: FeedServer, config: Path, address: str, expected: str) -> None:
    result = run(config, "add", address)
    assert result.exit_code == 1 and expected in result.output
    assert server.requests == []


def test_an_unknown_topic_is_refused_naming_the_known_ones(server: FeedServer,
                                                          config: Path) -> None:
    result = run(config, "add", server.url(CBS), "--topic", "sport")
    assert result.exit_code == 1
    assert "unknown topic 'sport'" in result.output and "world, business, tech" in result.output
    assert server.requests == []


def test_remove_by_url_or_name_keeps_every_comment(server: FeedServer, config: Path) -> None:
    original = config.read_bytes()
    assert run(config, "add", server.url(CBS)).exit_code == 0
    assert run(config, "add", server.url(WAPO)).exit_code == 0
    removed = run(config, "remove", "CBSNews.com")
    assert removed.exit_code == 0, removed.output
    assert removed.output == (f'removed "CBSNews.com" {server.url(CBS)} from {config} '
                              "(6 feeds left)\n")
    gone = json.loads(run(config, "remove", server.url(WAPO), "--json").output)
    assert gone["removed"]["name"] == "washingtonpost.com" and gone["feeds"] == 5
    assert config.read_bytes() == original
    # A shipped entry: its header and keys go, the comment above it stays.
    assert run(config, "remove", "Harbour Herald").exit_code == 0
    text = config.read_text()
    assert "harbour-herald" not in text
    assert [ln for ln in text.splitlines() if ln.startswith("#")] == \
        [ln for ln in original.decode().splitlines() if ln.startswith("#")]


def test_remove_refuses_an_ambiguous_or_unknown_name(server: FeedServer, config: Path) -> None:
    assert run(config, "add", server.url(CBS), "--name", "Twin").exit_code == 0
    second = run(config, "add", server.url(WAPO), "--name", "Twin")
    assert 'named "Twin" and count as one outlet' in second.output
    before = config.read_bytes()
    both = run(config, "remove", "Twin")
    assert both.exit_code == 1 and len(both.output.splitlines()) == 1
    assert "'Twin' matches 2 feeds" in both.output
    # The line of the entry's [[feeds]] header, as an editor's "go to line" finds it.
    lines = config.read_text().splitlines()
    url_at = lines.index(f'url = "{server.url(CBS)}"')
    line = max(i for i in range(url_at) if lines[i].strip() == "[[feeds]]") + 1
    assert f"{server.url(CBS)} (line {line})" in both.output and server.url(WAPO) in both.output
    unknown = run(config, "remove", "Nope")
    assert unknown.exit_code == 1 and "no feed in" in unknown.output
    assert config.read_bytes() == before


def test_every_corpus_feed_is_added_or_refused_in_one_line(server: FeedServer,
                                                           tmp_path: Path) -> None:
    """The 50 real feeds, each added by URL alone to an empty feed list."""
    config = tmp_path / "config.toml"
    config.write_text("# my feeds\n[newsletter]\nname = \"N\"\n")
    names = sorted(p.name for p in CORPUS.iterdir())
    for name in names:
        result = run(config, "add", server.url(name), "--json")
        assert result.exit_code == 0, (name, result.output)
        out = json.loads(result.output)
        assert out["name"].strip() and "\n" not in out["name"], name
    listed = tomllib.loads(config.read_text())["feeds"]
    assert len(listed) == len(names) and config.read_text().startswith("# my feeds\n")
    # Named by their own titles: the outlets are told apart, not all "127.0.0.1".
    assert len({f["name"] for f in listed}) >= len(names) - 1


def test_a_page_offering_only_a_json_feed_gets_it(server: FeedServer, config: Path) -> None:
    feed = {"version": "https://jsonfeed.org/version/1.1", "title": "  Json\tOutlet ",
            "home_page_url": "https://json.example/",
            "items": [{"id": "1", "url": "https://json.example/1", "title": "One",
                       "content_text": "x", "date_published": "2026-02-18T06:00:00Z"}]}
    server.routes["/feed.json"] = lambda _: (200, {"Content-Type": "application/feed+json"},
                                             json.dumps(feed).encode())
    page(server, "/", '<LINK REL="Alternate" TYPE="application/feed+json" HREF="feed.json">')
    out = json.loads(run(config, "add", server.url("/"), "--json").output)
    assert (out["name"], out["url"], out["items"], out["site"]) == (
        "Json Outlet", server.url("feed.json"), 1, "https://json.example/")


def test_the_feeds_group_keeps_its_own_options_and_lists_its_commands(config: Path) -> None:
    feeds = cli.commands["feeds"]
    assert sorted(feeds.commands) == ["add", "export", "import", "remove"]  # type: ignore[attr-defined]
    for command in ("add", "remove", "import", "export"):
        help_text = run(config, command, "--help").output
        assert "Example:" in help_text and "Exit codes:" in help_text, command


@pytest.mark.parametrize(("doc", "expected"), [
    (b'<rss xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"><channel>'
     b"<itunes:title>Not this</itunes:title><title> Right\n one </title>"
     b"<link>https://r.example/</link></channel></rss>", ("Right one", "https://r.example/")),
    (b'<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">Tom &amp;amp; '
     b'&lt;b&gt;Jerry&lt;/b&gt;</title><link rel="self" href="https://t.example/feed"/>'
     b'<link rel="alternate" type="text/html" href="https://t.example/"/></feed>',
     ("Tom & Jerry", "https://t.example/")),
    (b'\xef\xbb\xbf{"version": "https://jsonfeed.org/version/1", "title": "J", '
     b'"home_page_url": "https://j.example/"}', ("J", "https://j.example/")),
    (b"<html><body>not a feed</body></html>", ("", "")),
])
def test_a_feeds_own_title_and_site(doc: bytes, expected: tuple[str, str]) -> None:
    from digest.collect.discover import feed_meta

    assert feed_meta(doc) == expected


def test_the_real_day_added_by_page_or_url_is_collected_under_its_own_names(
        tmp_path: Path) -> None:
    """The fourteen feeds of tests/data/realday, each added the way a new user would
    (half by a page that names the feed), then collected at the day's clock."""
    from digest import pipeline
    from digest.config import load

    realday = Path(__file__).parent / "data" / "realday" / "feeds"
    config = tmp_path / "config.toml"
    config.write_text('[newsletter]\nname = "N"\n\n[storage]\npath = "var/digest.db"\n')
    with FeedServer(realday) as server:
        for i, name in enumerate(sorted(p.name for p in realday.iterdir())):
            url = server.url(name)
            if i % 2:
                page(server, f"/site-{i}/", '<link rel="alternate" type="application/rss+xml"'
                     f' href="../{name}">')
                url = server.url(f"/site-{i}/")
            assert run(config, "add", url).exit_code == 0, name
        loaded = load(config)
        store = pipeline.open_store(loaded)
        try:
            results = pipeline.collect(loaded, store, now=NOW)
        finally:
            store.close()
    assert [r.status for r in results] == ["ok"] * 14
    names = {f.name for f in loaded.feeds}
    assert len(names) == 14 and "127.0.0.1" not in names
    assert {"CBSNews.com", "NPR", "TheWeek", "washingtonpost.com"} <= names
