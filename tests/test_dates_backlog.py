"""Undated items: dated by when digest first saw them; those already in a feed at its
first successful collect are backlog and never ranked. Real collects from a loopback
FeedServer into a real SQLite file, at injected clocks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from digest import config as configuration
from digest import console as report
from digest.collect.collector import collect_sync
from digest.collect.dates import news_date
from digest.models import Article
from digest.rank import explain
from digest.rank import select as ranker
from digest.store.facade import Store
from tests.peers import FeedServer

NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
HUGO_ZERO = "Mon, 01 Jan 0001 00:00:00 +0000"  # Go's zero time, as Hugo writes it


def _item(title: str, pub: str | None) -> str:
    date_el = f"<pubDate>{pub}</pubDate>" if pub is not None else ""
    slug = title.lower().replace(" ", "-")
    return f"<item><title>{title}</title><link>https://site.example/{slug}</link>{date_el}</item>"


class Site:
    """One feed whose items a test changes between collects."""

    def __init__(self, server: FeedServer, path: str, title: str) -> None:
        self.items: list[str] = []
        self.status = 200
        self.title = title
        server.routes[f"/{path}"] = lambda _: (
            self.status, {"Content-Type": "application/rss+xml"}, self.body())
        self.url = server.url(path)

    def body(self) -> bytes:
        return (f'<rss version="2.0"><channel><title>{self.title}</title>'
                f"<link>https://site.example/</link>{''.join(self.items)}</channel></rss>"
                ).encode()


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with FeedServer() as s:
        yield s


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    yield s
    s.close()


def _config(tmp_path: Path, *urls: str) -> configuration.Config:
    feeds = "".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls)
    (tmp_path / "config.toml").write_text(
        f"{feeds}[selection]\nmax_age_hours = 36\nper_source = 20\nmax_stories = 20\n"
        "[[selection.sections]]\ntitle = \"Top stories\"\nmax_stories = 20\n")
    return configuration.load(tmp_path / "config.toml")


def _stored(store: Store) -> dict[str, Article]:
    return {a.title: a for a in store.articles_since(None)}


def _rss_date(when: datetime) -> str:
    return format_datetime(when, usegmt=True)


def test_news_date_rules() -> None:
    assert news_date(None, NOW) is None
    assert news_date(datetime(1, 1, 1, tzinfo=UTC), NOW) is None
    assert news_date(datetime(1970, 1, 1, tzinfo=UTC), NOW) is None
    assert news_date(NOW - timedelta(days=3), NOW) == NOW - timedelta(days=3)
    assert news_date(NOW + timedelta(hours=2), NOW) == NOW  # a clock off: clamped
    assert news_date(NOW + timedelta(hours=26), NOW) == NOW
    assert news_date(NOW + timedelta(hours=27), NOW) is None  # not a publication date


def test_first_collect_is_backlog_later_undated_items_are_news(
        tmp_path: Path, server: FeedServer, store: Store) -> None:
    site = Site(server, "hugo.xml", "Hugo Site")
    site.items = [
        _item("Fresh post", _rss_date(NOW - timedelta(hours=1))),
        _item("About", HUGO_ZERO),
        _item("Projects", None),
        _item("Conference 2031", _rss_date(NOW + timedelta(days=5 * 365))),
        _item("Garbled", "sometime soon"),
        _item("Clock skew", _rss_date(NOW + timedelta(hours=2))),
    ]
    cfg = _config(tmp_path, site.url)
    (first,) = collect_sync(cfg.feeds, store, now=NOW, parse_workers=0)
    assert (first.new, first.undated, first.backlog) == (6, 4, 4)
    assert (first.as_json()["undated"], first.as_json()["backlog"]) == (4, 4)
    assert report.collect_summary([first]).endswith(
        "6 new articles (4 undated, dated by first sight; 4 of them backlog, never ranked)")
    got = _stored(store)
    for title in ("About", "Projects", "Conference 2031", "Garbled"):
        assert (got[title].dated, got[title].backlog, got[title].published) == (
            False, True, NOW), title
    assert (got["Clock skew"].dated, got["Clock skew"].backlog,
            got["Clock skew"].published) == (True, False, NOW)
    assert (got["Fresh post"].dated, got["Fresh post"].backlog) == (True, False)

    # Three hours on, the site publishes two undated pages: new to the feed, so news,
    # dated by when digest first saw them.
    later = NOW + timedelta(hours=3)
    site.items += [_item("New page", None), _item("Setup", HUGO_ZERO)]
    (second,) = collect_sync(cfg.feeds, store, now=later, parse_workers=0)
    assert (second.new, second.undated, second.backlog) == (2, 2, 0)
    assert "backlog" not in second.as_json()
    assert report.collect_summary([second]).endswith(
        "2 new articles (2 undated, dated by first sight)")
    got = _stored(store)
    for title in ("New page", "Setup"):
        assert (got[title].dated, got[title].backlog, got[title].published) == (
            False, False, later)

    # Seen again later: still dated by the FIRST sight.
    (third,) = collect_sync(cfg.feeds, store, now=later + timedelta(hours=2),
                            parse_workers=0)
    assert third.new == 0 and _stored(store)["New page"].published == later

    ranked = ranker.rank(store.articles_since(None), cfg, now=later + timedelta(hours=2),
                         day=later.date())
    titles = {a.title for s in ranked.stories for a in s.articles}
    assert titles == {"Fresh post", "Clock skew", "New page", "Setup"}
    assert ranked.backlog == 4
    assert {j["title"] for j in explain.rank_json(ranked, every=True)} == titles


def test_the_first_successful_collect_counts_per_feed(
        tmp_path: Path, server: FeedServer, store: Store) -> None:
    """A feed added to a store other feeds filled long ago, and a feed whose first
    attempt failed: their first successful collect is still their first."""
    old = Site(server, "old.xml", "Old Site")
    old.items = [_item("Old about", None)]
    late = Site(server, "late.xml", "Late Site")
    late.items = [_item("Late about", None)]
    late.status = 500
    collect_sync(_config(tmp_path, old.url, late.url).feeds, store, now=NOW,
                 parse_workers=0)
    added = Site(server, "added.xml", "Added Site")
    added.items = [_item("Added about", None)]
    late.status = 200
    later = NOW + timedelta(hours=4)
    results = collect_sync(_config(tmp_path, old.url, late.url, added.url).feeds, store,
                           now=later, parse_workers=0)
    assert [(r.status, r.backlog) for r in results] == [("ok", 0), ("ok", 1), ("ok", 1)]
    got = _stored(store)
    assert {t: got[t].backlog for t in got} == {
        "Old about": True, "Late about": True, "Added about": True}


def test_explain_names_undated_reports_and_backlog(
        tmp_path: Path, server: FeedServer, store: Store,
        capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(server, "s.xml", "Site")
    site.items = [_item("About", HUGO_ZERO)]
    cfg = _config(tmp_path, site.url)
    collect_sync(cfg.feeds, store, now=NOW, parse_workers=0)
    site.items.append(_item("Launch notes", None))
    collect_sync(cfg.feeds, store, now=NOW + timedelta(hours=1), parse_workers=0)
    ranked = ranker.rank(store.articles_since(None), cfg, now=NOW + timedelta(hours=2),
                         day=NOW.date())
    explain.show(ranked, explain=True)
    out = " ".join(capsys.readouterr().out.split())  # rich wraps at the terminal width
    assert "Launch notes" in out and "About" not in out
    assert "(undated: first seen)" in out
    assert "undated: 1 of 1 report had no usable date" in out
    assert "left out 1 backlog item" in out
    (story,) = explain.rank_json(ranked)
    assert story["articles"][0]["dated"] is False and story["components"]["undated"] == 1


def test_a_schema_3_file_learns_which_items_were_undated(tmp_path: Path) -> None:
    """An older digest stamped an undated item with the collect time: published equal to
    first_seen. Those of a feed's first collect become backlog, a later one news."""
    path = tmp_path / "digest.db"
    s = Store.open(path)
    feed = "https://hugo.example/index.xml"

    def art(title: str, published: datetime) -> Article:
        return Article(feed_url=feed, source="hugo.example", guid=title, title=title,
                       url=f"https://hugo.example/{title}", summary="", published=published)

    s.add_articles([art("post", NOW - timedelta(days=2)), art("about", NOW)], NOW)
    s.add_articles([art("new-page", NOW + timedelta(hours=5))], NOW + timedelta(hours=5))
    s.close()
    with sqlite3.connect(path) as db:  # back to schema 3: none of the new columns
        db.executescript("ALTER TABLE articles DROP COLUMN dated;"
                         "ALTER TABLE articles DROP COLUMN backlog;"
                         "ALTER TABLE feeds DROP COLUMN title;"
                         "ALTER TABLE feeds DROP COLUMN site;"
                         "UPDATE meta SET value = '3' WHERE key = 'schema';")
    s = Store.open(path)
    try:
        got = {a.title: (a.dated, a.backlog) for a in s.articles_since(None)}
        assert got == {"post": (True, False), "about": (False, True),
                       "new-page": (False, False)}
    finally:
        s.close()


def test_ranked_day_never_leads_with_backlog(tmp_path: Path, server: FeedServer,
                                            store: Store) -> None:
    """Backlog is left out even when it is the newest thing in the window."""
    site = Site(server, "s.xml", "Site")
    site.items = [_item("Yesterday's news", _rss_date(NOW - timedelta(hours=20))),
                  _item("About me", HUGO_ZERO), _item("My projects", None)]
    cfg = _config(tmp_path, site.url)
    collect_sync(cfg.feeds, store, now=NOW, parse_workers=0)
    ranked = ranker.rank(store.articles_since(None), cfg, now=NOW, day=date(2026, 2, 18))
    assert [s.lead.title for s in ranked.selection.stories] == ["Yesterday's news"]
