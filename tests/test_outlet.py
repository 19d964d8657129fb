"""Outlet names (digest.collect.outlet) on the 50 real feeds of the shared corpus, and
through a real collect: what variety caps and coverage count is the publisher."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from digest import config as configuration
from digest.collect.collector import collect_sync
from digest.collect.outlet import outlet_name
from digest.collect.parse import read_document
from digest.rank import select as ranker
from digest.store.facade import Store
from tests.peers import FeedServer, Route

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "feeds"
if not CORPUS.is_dir():  # a worktree beside the shared folder, or the main checkout
    CORPUS = Path("/work/shared/corpus/feeds")
NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)

# Every corpus feed: (file, its own title, the outlet). Checked by hand: the publisher
# a reader knows, never a section ("World", "Tech", "RSS") nor a tagline.
CORPUS_OUTLETS = [
    ("01b5e6081cb62f3d", "Elijah Potter's Blog", "Elijah Potter's Blog"),
    ("03db8affb53e2a2f", "Lunar Phase", "Lunar Phase"),
    ("0c1cef22da7ddc10", "World - CBSNews.com", "CBSNews.com"),
    ("14333881097406c7", "Rest of World -", "Rest of World"),
    ("16dc10cf98d1ee82", "TheWeek feed", "TheWeek"),
    ("18d1bc71cc221963", "Comments on: Battlefield Anomalies – Home", "Battlefield Anomalies"),
    ("1a6a99410a2b58f2", "Rémi Mercier", "Rémi Mercier"),
    ("1cc034d2831f54bb", "dkg's blog", "dkg's blog"),
    ("1e4ab389e139d659", "ReallyBigMonkey1", "ReallyBigMonkey1"),
    ("25f0d733068a3446", "David duChemin – Photographer, Author, Creative Instigator",
     "David duChemin"),
    ("2b665d9e4b6bb33a", "J-F Gagné's MySQL Blog", "J-F Gagné's MySQL Blog"),
    ("2fdd6727be89a7ea", "a farshad blog", "a farshad blog"),
    ("35d239094642a61f", "Dylan Paulus' Blog", "Dylan Paulus' Blog"),
    ("3ac543065ca0ef7d", "KittenLabs", "KittenLabs"),
    ("4059f23db954f1b5", "Canadian entrepreneur and software developer on Alex Blackie",
     "Alex Blackie"),
    ("454280b7f9e592d2", "RailsApps", "RailsApps"),
    ("49ea3c9d52b08d80", "Ray Woodcock's Latest", "Ray Woodcock's Latest"),
    ("4bf53cb602417030", "World", "washingtonpost.com"),
    ("4fa0b1b8f5681301", "alexwlchan", "alexwlchan"),
    ("5532f16828c3b094", "Tuesdays with Stories!", "Tuesdays with Stories!"),
    ("59990f9eb0e3b46d", "Herman's blog", "Herman's blog"),
    ("5da3b20f957be51d", "Tech – TIME", "TIME"),
    ("5ed469fb5a05348d", "Collective Action in Tech", "Collective Action in Tech"),
    ("68e950f671d2e5e0", "the singularity is nearer", "the singularity is nearer"),
    ("6d28cf55da15a12d", "Jessica Temporal", "Jessica Temporal"),
    ("703cc817824470a0", "Not Even Wrong", "Not Even Wrong"),
    ("73c63ac29e5d1dc8", "Stratechery by Ben Thompson", "Stratechery by Ben Thompson"),
    ("7be307059415227d", "NPR Topics: World", "NPR"),
    ("818f59b753411031", "oceanbites", "oceanbites"),
    ("87232eca4263cf8c", "RSS", "explog.in"),
    ("8eae48a98c3d5f31", "Thomas Honeyman", "Thomas Honeyman"),
    ("92f267815335c9ef", "ThatSoftwareDude.com", "ThatSoftwareDude.com"),
    ("95c748e927f3182f", "Stan Carney", "Stan Carney"),
    ("995fa12531de4aa0", "Pooria Taghdiri", "Pooria Taghdiri"),
    ("9ffe5a284356888f", "Every Day Is Like Wednesday", "Every Day Is Like Wednesday"),
    ("a4046954d16bd5a6", "Salmon Run", "Salmon Run"),
    ("aaf373a6337e5efa", "", "willpatrick.xyz"),
    ("ad4dc6d7d1aebb18", "swanchime", "swanchime"),
    ("b3984eb318f226e3", "Journal J", "Journal J"),
    ("bf73c33ba409c416", "Web • Tech • Audio", "morningtempo.com"),
    ("c5ab9fd6c5c3ee86",
     "TechTinkering - Retro Computers, Programming, General Technical Tinkering",
     "TechTinkering"),
    ("cc314ce5dfbb3adc", "AreWeAntiCheatYet", "AreWeAntiCheatYet"),
    ("d2c8db248dba593b", "MahdyTech", "MahdyTech"),
    ("d67b477b329c0a8a", "Our Technical Narrative", "Our Technical Narrative"),
    ("db0e953a472b88b8", "Nithin Bekal", "Nithin Bekal"),
    ("dbd9c7a29dcccb19", "mishadoff thoughts", "mishadoff thoughts"),
    ("e24bdf846b71fa0f", "Technobabble", "Technobabble"),
    ("e8203fee50c570d8", "Don't Code Tired", "Don't Code Tired"),
    ("ef194bf7a34b8c3f", "mridul.io", "mridul.io"),
    ("f8b7e5d26c45a31e", "Ray", "Ray"),
]


def test_the_table_covers_every_corpus_feed() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == [f for f, _, _ in CORPUS_OUTLETS]


@pytest.mark.parametrize(("file", "title", "outlet"), CORPUS_OUTLETS)
def test_corpus_feed_titles_name_their_outlet(file: str, title: str, outlet: str) -> None:
    doc = read_document((CORPUS / file).read_bytes(), base_url=f"http://127.0.0.1/{file}")
    assert doc.title == title  # what the feed says, as read (both readers)
    assert outlet_name(doc.title, doc.site, f"http://127.0.0.1/{file}") == outlet


@pytest.mark.parametrize(("title", "site", "outlet"), [
    ("Fox News – Breaking News, World News and Video from Fox News",
     "https://feeds.feedburner.com/foxnews", "Fox News"),
    ("CNN.com - Breaking News, U.S., World, Weather, Entertainment & Video News",
     "http://www.cnn.com/", "CNN.com"),
    ("BBC News - World", "https://www.bbc.co.uk/news/world", "BBC News"),
    ("Recent content on Jane Doe", "https://jane.example/", "Jane Doe"),
    ("Notes on Programming", "https://notes.example/", "Notes on Programming"),
    ("A few notes on software design", "https://notes.example/",
     "A few notes on software design"),
    ("Writing about the web on Ada Byron", "https://adabyron.example/", "Ada Byron"),
    ("Politics | The Guardian", "https://www.theguardian.com/politics", "The Guardian"),
    ("Tech &amp; Science – Example", "https://example.org/", "Example"),
    # The part that matches the site's host names the outlet, wherever it stands.
    ("Science Stories &amp; Analysis | Meridian", "https://www.meridian.example/",
     "Meridian"),
    ("Comments on: Ada's Notes", "https://blog.example/", "Ada's Notes"),
    ("", "", "feeds.example"),  # nothing at all: the feed's own host
    ("World", "/", "feeds.example"),  # a relative site link names no host
    ("x" * 80, "https://long.example/", "long.example"),  # a sentence, not a name
    # Markup, line breaks and control characters never reach a byline.
    ("&lt;b&gt;Harbour&lt;/b&gt; Herald\r\nBcc: x@evil.example\x00", "",
     "Harbour Herald Bcc"),
    ("Ha\u200brbour\u2028Herald", "", "Harbour Herald"),
    ("https://www.example.org/feed.xml", "https://www.example.org/", "example.org"),
    ("Nachrichten - Harbour Herald", "https://hh.example/", "Harbour Herald"),
])
def test_titles_of_the_wild(title: str, site: str, outlet: str) -> None:
    assert outlet_name(title, site, "https://www.feeds.example/rss") == outlet


def _rss(title: str, site: str, items: list[tuple[str, str]]) -> bytes:
    body = "".join(f"<item><title>{t}</title><link>{link}</link>"
                   f"<pubDate>Wed, 18 Feb 2026 0{n}:00:00 GMT</pubDate></item>"
                   for n, (t, link) in enumerate(items, start=1))
    return (f'<rss version="2.0"><channel><title>{title}</title><link>{site}</link>'
            f"{body}</channel></rss>").encode()


def _route(body: bytes) -> Route:
    return lambda _: (200, {"Content-Type": "application/rss+xml"}, body)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


def _config(tmp_path: Path, server: FeedServer, paths: list[str], names: list[str],
            per_source: int = 1) -> configuration.Config:
    feeds = "".join(f'[[feeds]]\nurl = "{server.url(p)}"\n' + (f'name = "{n}"\n' if n else "")
                    for p, n in zip(paths, names, strict=True))
    (tmp_path / "config.toml").write_text(
        f"{feeds}[selection]\nmax_age_hours = 36\nper_source = {per_source}\n")
    return configuration.load(tmp_path / "config.toml")


def test_two_outlets_on_one_host_are_two_and_keep_their_names(
        tmp_path: Path, server: FeedServer) -> None:
    """Both feeds are served by 127.0.0.1 and neither is named in config.toml: the
    host would make them one outlet, and per_source = 1 one story."""
    server.routes["/a.xml"] = _route(_rss("World - Alpha Daily", "https://alpha.example/", [
        ("Alpha reports a bridge reopening", "https://alpha.example/1"),
        ("Alpha reports a harvest record", "https://alpha.example/2")]))
    server.routes["/b.xml"] = _route(_rss("Beta Times", "https://beta.example/", [
        ("Beta covers a chess final", "https://beta.example/1")]))
    cfg = _config(tmp_path, server, ["a.xml", "b.xml"], ["", ""])
    store = Store.open(tmp_path / "digest.db")
    try:
        results = collect_sync(cfg.feeds, store, now=NOW, parse_workers=0)
        assert [r.feed for r in results] == ["Alpha Daily", "Beta Times"]
        assert {a.source for a in store.articles_since(None)} == {"Alpha Daily", "Beta Times"}
        ranked = ranker.rank(store.articles_since(None), cfg, now=NOW, day=date(2026, 2, 18))
        assert sorted(s.lead.source for s in ranked.selection.stories) == [
            "Alpha Daily", "Beta Times"]
        # Again, at a later hour: one stable name, in the store's feed table too.
        again = collect_sync(cfg.feeds, store, now=NOW.replace(hour=8), parse_workers=0)
        assert [r.feed for r in again] == ["Alpha Daily", "Beta Times"]
        assert [(s.name, s.title) for s in store.feed_states()] == [
            ("Alpha Daily", "World - Alpha Daily"), ("Beta Times", "Beta Times")]
    finally:
        store.close()


def test_a_configured_name_wins_and_renames_what_is_stored(
        tmp_path: Path, server: FeedServer) -> None:
    server.routes["/a.xml"] = _route(_rss("World - Alpha Daily", "https://alpha.example/", [
        ("Alpha reports a bridge reopening", "https://alpha.example/1")]))
    store = Store.open(tmp_path / "digest.db")
    try:
        collect_sync(_config(tmp_path, server, ["a.xml"], [""]).feeds, store, now=NOW,
                     parse_workers=0)
        assert [a.source for a in store.articles_since(None)] == ["Alpha Daily"]
        named = _config(tmp_path, server, ["a.xml"], ["The Alpha"]).feeds
        (result,) = collect_sync(named, store, now=NOW.replace(hour=8), parse_workers=0)
        assert result.feed == "The Alpha"
        # The article stored before the rename carries the outlet's name now.
        assert [a.source for a in store.articles_since(None)] == ["The Alpha"]
    finally:
        store.close()


def test_a_file_from_before_titles_learns_them_with_one_full_get(
        tmp_path: Path, server: FeedServer) -> None:
    """A feed an older digest collected has validators but no title: its next collect
    asks without them once, and the outlet's name reaches its stored articles."""
    import sqlite3

    body = _rss("Tech – Gazette", "https://gazette.example/", [
        ("Gazette story", "https://gazette.example/1")])
    asked: list[str | None] = []

    def conditional(handler: Any) -> tuple[int, dict[str, str], bytes]:
        asked.append(handler.headers.get("If-None-Match"))
        if handler.headers.get("If-None-Match") == '"v1"':
            return 304, {"ETag": '"v1"'}, b""
        return 200, {"ETag": '"v1"', "Content-Type": "application/rss+xml"}, body

    server.routes["/g.xml"] = conditional
    cfg = _config(tmp_path, server, ["g.xml"], [""])
    path = tmp_path / "digest.db"
    store = Store.open(path)
    collect_sync(cfg.feeds, store, now=NOW, parse_workers=0)
    store.close()
    with sqlite3.connect(path) as db:  # as an older digest left it: named by the host
        db.executescript("UPDATE feeds SET title = NULL, site = NULL, name = '127.0.0.1';"
                         "UPDATE articles SET source = '127.0.0.1';")
    store = Store.open(path)
    try:
        (again,) = collect_sync(cfg.feeds, store, now=NOW.replace(hour=8), parse_workers=0)
        assert (again.status, again.feed) == ("ok", "Gazette")
        assert [a.source for a in store.articles_since(None)] == ["Gazette"]
        (third,) = collect_sync(cfg.feeds, store, now=NOW.replace(hour=9), parse_workers=0)
        assert (third.status, third.feed) == ("not_modified", "Gazette")
        assert asked == [None, None, '"v1"']
    finally:
        store.close()
