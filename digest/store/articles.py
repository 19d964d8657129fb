"""Articles and feeds: each feed's health and validators, the articles collected
(new ones told from known by guid, URL and headline), and the tombstones pruned
articles leave behind so they never come back as new."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from digest.models import Article
from digest.store.base import Base, utc_now
from digest.store.dialect import Dialect
from digest.store.schema import article_tombstones, articles, feeds, stored_time


@dataclass(frozen=True)
class FeedState:
    url: str
    name: str = ""
    etag: str | None = None
    last_modified: str | None = None
    last_status: str | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    failures: int = 0
    last_error_at: datetime | None = None
    moved_to: str | None = None
    retry_after: datetime | None = None
    dead_since: datetime | None = None
    last_checked: datetime | None = None
    last_items: int | None = None
    title: str | None = None  # the feed's own title, as last parsed
    site: str | None = None  # its link to its site, as last parsed


@dataclass(frozen=True)
class FeedOutcome:
    """One feed's fetch to record: its health, its validators, its new articles."""

    url: str
    name: str  # the outlet: every article of the feed is renamed to it
    status: str  # "ok", "not_modified" or "error"
    articles: Sequence[Article] = ()
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    retry_after: datetime | None = None
    dead: bool = False
    items: int | None = None
    title: str | None = None  # the feed's own title and site link, when parsed
    site: str | None = None


class Articles(Base):
    """Feeds, articles and tombstones."""

    # -- feeds -------------------------------------------------------------
    def feed_state(self, url: str) -> FeedState:
        with self.begin() as conn:
            row = conn.execute(select(feeds).where(feeds.c.url == url)).mappings().first()
        if row is None:
            return FeedState(url=url)
        return FeedState(**{k: row[k] for k in FeedState.__dataclass_fields__})

    def feed_states(self) -> list[FeedState]:
        with self.begin() as conn:
            rows = conn.execute(select(feeds).order_by(feeds.c.name)).mappings().all()
        return [FeedState(**{k: r[k] for k in FeedState.__dataclass_fields__}) for r in rows]

    def record_feed(
        self,
        url: str,
        name: str,
        status: str,
        *,
        error: str | None = None,
        etag: str | None = None,
        last_modified: str | None = None,
        now: datetime | None = None,
        moved_to: str | None = None,
        retry_after: datetime | None = None,
        dead: bool = False,
        items: int | None = None,
    ) -> None:
        """Remember the outcome of one fetch (and the validators for the next one).

        ``moved_to``: a permanent redirect's target, fetched instead from now on.
        ``retry_after``: the server asked us not to come back before then (429/503).
        ``dead``: the server said 410 Gone; the feed is not fetched again.
        """
        self.save_outcomes([FeedOutcome(
            url, name, status, error=error, etag=etag, last_modified=last_modified,
            moved_to=moved_to, retry_after=retry_after, dead=dead, items=items)], now)

    def save_outcomes(self, outcomes: Sequence[FeedOutcome],
                      now: datetime | None = None) -> list[int]:
        """Record several feeds' fetches and store their articles in one transaction;
        return how many articles of each were new.

        A cold collect finishes dozens of feeds within milliseconds of each other:
        one commit for all of them instead of two per feed is most of its store time.
        """
        now = now or utc_now()
        with self.begin() as conn:
            new = _add_articles(conn, self.dialect, [a for o in outcomes for a in o.articles], now)
            _record_feeds(conn, self.dialect, outcomes, now)
        return [sum(new.get(id(a), 0) for a in o.articles) for o in outcomes]

    # -- articles ----------------------------------------------------------
    def add_articles(self, items: Iterable[Article], now: datetime | None = None) -> int:
        """Store new articles; return how many were new.

        An article is not new when its feed already gave the same guid, or any
        feed already gave the same URL.
        """
        batch = list(items)
        if not batch:
            return 0
        with self.begin() as conn:
            return len(_add_articles(conn, self.dialect, batch, now or utc_now()))

    def known_guids(self, feed_url: str) -> set[str]:
        """Every guid this feed gave before (stored or pruned): items not to rework."""
        with self.begin() as conn:
            got = {r[0] for r in conn.execute(
                select(articles.c.guid).where(articles.c.feed_url == feed_url))}
            got.update(r[0] for r in conn.execute(select(article_tombstones.c.guid).where(
                article_tombstones.c.feed_url == feed_url)))
        return got

    def forget_feed_state(self, url: str) -> bool:
        """Clear a feed's health (dead, moved, Retry-After) so the next collect tries
        it afresh. False when the store has no such feed."""
        with self.begin() as conn:
            res = conn.execute(update(feeds).where(feeds.c.url == url).values(
                dead_since=None, moved_to=None, retry_after=None, failures=0, etag=None,
                last_modified=None))
            return bool(res.rowcount)

    def prune_articles(self, before: datetime, now: datetime | None = None) -> int:
        """Delete articles published and first seen before ``before``; return how many.

        Each leaves a tombstone (feed, guid, url) so it never comes back as new.
        Tombstones themselves go after a year.
        """
        now = now or utc_now()
        old = (articles.c.published < before) & (articles.c.first_seen < before)
        with self.begin() as conn:
            gone = conn.execute(select(articles.c.feed_url, articles.c.guid, articles.c.url)
                                .where(old)).all()
            if not gone:
                return 0
            conn.execute(self.dialect.insert(article_tombstones).on_conflict_do_nothing(), [
                {"feed_url": f, "guid": g, "url": u, "pruned": now} for f, g, u in gone])
            conn.execute(articles.delete().where(old))
            year_ago = datetime.fromtimestamp(now.timestamp() - 366 * 86400, UTC)
            conn.execute(article_tombstones.delete().where(
                article_tombstones.c.pruned < year_ago))
        return len(gone)

    def articles_since(self, since: datetime | None) -> list[Article]:
        q = select(articles).order_by(articles.c.published.desc(), articles.c.id)
        if since is not None:
            q = q.where(articles.c.published >= since)
        with self.begin() as conn:
            return [_article(r) for r in conn.execute(q).mappings()]

    def count_articles(self) -> int:
        with self.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(articles)).scalar_one())


def _record_feeds(conn: Connection, dialect: Dialect, outcomes: Sequence[FeedOutcome],
                  now: datetime) -> None:
    """Each feed's fetch in one upsert: a first sighting inserts, later ones update
    (failures counted). Plain SQL, one executemany per shape of outcome: SQLAlchemy
    built each upsert in about a millisecond, for fifty feeds a cold collect's
    largest store cost after the articles themselves."""
    shapes: dict[str, list[tuple[Any, ...]]] = {}
    for o in outcomes:
        values = _feed_values(o, now)
        cols = list(values)
        sql = dialect.feed_upsert(cols, o.status == "error")
        shapes.setdefault(sql, []).append(
            (o.url, *values.values(), 1 if o.status == "error" else 0))
    for sql, rows in shapes.items():
        conn.exec_driver_sql(sql, rows)
    conn.exec_driver_sql(dialect.rename_source, [(o.name, o.url, o.name) for o in outcomes])


def _feed_values(o: FeedOutcome, now: datetime) -> dict[str, Any]:
    """The columns one outcome sets (but failures), as stored."""
    stamp = stored_time(now)
    values: dict[str, Any] = {"name": o.name, "last_status": o.status, "last_checked": stamp,
                              "retry_after": stored_time(o.retry_after)}
    if o.moved_to is not None:
        values["moved_to"] = o.moved_to
    if o.title is not None:
        values |= {"title": o.title, "site": o.site}
    if o.dead:
        values["dead_since"] = stamp
    if o.status == "error":
        values |= {"last_error": o.error, "last_error_at": stamp}
    else:
        values |= {"last_success": stamp, "dead_since": None}
        if o.status == "ok":
            values |= {"etag": o.etag, "last_modified": o.last_modified,
                       "last_items": o.items}
    return values


def _add_articles(conn: Connection, dialect: Dialect, batch: Sequence[Article],
                  now: datetime) -> dict[int, int]:
    """Insert the new ones of ``batch``; {id(article): 1} for each one inserted."""
    if not batch:
        return {}
    known = _Known.load(conn, dialect, batch)
    fresh = [a for a in batch if known.add(a)]
    if fresh:
        # One plain executemany, not a query and an insert per article nor
        # SQLAlchemy's per-row parameter processing: a 1,000-item feed is
        # stored in milliseconds.
        stamp = stored_time(now)
        conn.exec_driver_sql(dialect.insert_article, [
            (a.feed_url, a.source, a.guid, a.url, a.title, a.summary, a.content_html,
             a.author, json.dumps(list(a.categories)), a.image, stored_time(a.published),
             stamp, int(a.dated), int(a.backlog))
            for a in fresh])
    return {id(a): 1 for a in fresh}


def _title_key(title: str) -> str:
    return " ".join(title.lower().split())


# The same source with the same headline and lead within this many seconds is one
# story republished (a changed slug, a re-sent item); further apart, it is a series
# ("Weekly roundup") and every issue counts. The lead must match too: status feeds
# reuse a title ("Halo Infinite") for different news ("... is Broken", "... works").
_SAME_TITLE_WINDOW = 3 * 86400


class _Known:
    """What the store (and the batch so far) already holds, for de-duplication by
    guid within a feed, canonical URL across feeds, and source + title."""

    def __init__(self) -> None:
        self.guids: set[tuple[str, str]] = set()
        self.urls: set[str] = set()
        self.titles: dict[tuple[str, str, str], list[float]] = {}

    @classmethod
    def load(cls, conn: Connection, dialect: Dialect, batch: Sequence[Article]) -> _Known:
        # Plain SQL: these run per feed on every collect, and SQLAlchemy's statement
        # building cost more than the queries.
        known = cls()
        for feed_url in {a.feed_url for a in batch}:
            rows = conn.exec_driver_sql(dialect.articles_of_feed, (feed_url,))
            for guid, url, title, summary, published in rows:
                known.guids.add((feed_url, guid))
                known.urls.add(url)
                known._title(feed_url, title, summary, datetime.fromisoformat(published))
            rows = conn.exec_driver_sql(dialect.tombstones_of_feed, (feed_url,))
            for guid, url in rows:
                known.guids.add((feed_url, guid))
                known.urls.add(url)
        urls = list({a.url for a in batch} - known.urls)
        step = dialect.max_params
        for i in range(0, len(urls), step):
            chunk = urls[i:i + step]
            for table in ("articles", "article_tombstones"):
                rows = conn.exec_driver_sql(dialect.urls_in(table, len(chunk)), tuple(chunk))
                known.urls.update(r[0] for r in rows)
        return known

    def _title(self, feed_url: str, title: str, summary: str, published: datetime) -> None:
        key = (feed_url, _title_key(title), _title_key(summary))
        self.titles.setdefault(key, []).append(published.timestamp())

    def add(self, a: Article) -> bool:
        """True (and remembered) when ``a`` is new."""
        if (a.feed_url, a.guid) in self.guids or a.url in self.urls:
            return False
        key = (a.feed_url, _title_key(a.title), _title_key(a.summary))
        stamps = self.titles.get(key)
        when = a.published.timestamp()
        if stamps is None:
            self.titles[key] = [when]
        elif any(abs(when - t) < _SAME_TITLE_WINDOW for t in stamps):
            return False
        else:
            stamps.append(when)
        self.guids.add((a.feed_url, a.guid))
        self.urls.add(a.url)
        return True


def _article(r: Any) -> Article:
    return Article(
        id=r["id"], feed_url=r["feed_url"], source=r["source"], guid=r["guid"], url=r["url"],
        title=r["title"], summary=r["summary"], content_html=r["content_html"],
        author=r["author"], categories=tuple(json.loads(r["categories"])), image=r["image"],
        published=r["published"], dated=bool(r["dated"]), backlog=bool(r["backlog"]),
    )
