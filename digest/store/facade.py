"""SQLite state through SQLAlchemy Core: articles, feed state, digests, the
delivery journal and suppressions.

One file, WAL mode, a busy timeout: several processes (daemon, `digest send`,
`digest serve`) may share it. Schema changes go through ``_MIGRATIONS`` so an
old database is upgraded in place, never recreated.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import TypeDecorator

from digest.errors import StoreError
from digest.models import Article, Delivery, DeliveryStatus, Rendered
from digest.store import dbfile

SCHEMA_VERSION = 2


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes stored as ISO-8601 UTC text (readable in the sqlite3 shell)."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime reached the store")
        return value.astimezone(UTC).isoformat(timespec="seconds")

    def process_result_value(self, value: str | None, dialect: Any) -> datetime | None:
        return None if value is None else datetime.fromisoformat(value)


metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

feeds = Table(
    "feeds",
    metadata,
    Column("url", Text, primary_key=True),
    Column("name", Text, nullable=False, default=""),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_status", String(16)),
    Column("last_success", UTCDateTime),
    Column("last_error", Text),
    Column("last_error_at", UTCDateTime),
    Column("failures", Integer, nullable=False, default=0),
    # v2 (collector health): where a permanent redirect points, when a 429/503 lets
    # us ask again, since when the feed is gone (410), the last attempt and its items.
    Column("moved_to", Text),
    Column("retry_after", UTCDateTime),
    Column("dead_since", UTCDateTime),
    Column("last_checked", UTCDateTime),
    Column("last_items", Integer),
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("feed_url", Text, nullable=False),
    Column("source", Text, nullable=False),
    Column("guid", Text, nullable=False),
    Column("url", Text, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("summary", Text, nullable=False, default=""),
    Column("content_html", Text, nullable=False, default=""),
    Column("author", Text),
    Column("categories", Text, nullable=False, default="[]"),
    Column("image", Text),
    Column("published", UTCDateTime, nullable=False, index=True),
    Column("first_seen", UTCDateTime, nullable=False),
    UniqueConstraint("feed_url", "guid"),
)

digests = Table(
    "digests",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False),
    Column("variant", Text, nullable=False),
    Column("subject", Text, nullable=False),
    Column("preheader", Text, nullable=False),
    Column("mjml", Text, nullable=False),
    Column("html", Text, nullable=False),
    Column("text", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
    UniqueConstraint("day", "variant"),
)

digest_articles = Table(
    "digest_articles",
    metadata,
    Column("day", String(10), nullable=False, index=True),
    Column("article_id", Integer, nullable=False, index=True),
    UniqueConstraint("day", "article_id"),
)

# Which articles each variant of a day's digest carried: with the delivery journal
# (day, email, variant, status) this says what every subscriber was actually sent.
variant_articles = Table(
    "variant_articles",
    metadata,
    Column("day", String(10), nullable=False, index=True),
    Column("variant", Text, nullable=False),
    Column("article_id", Integer, nullable=False),
    UniqueConstraint("day", "variant", "article_id"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False),
    Column("email", Text, nullable=False),
    Column("variant", Text, nullable=False, default=""),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("message_id", Text),
    Column("last_error", Text),
    Column("claimed_by", Text),
    Column("claimed_at", UTCDateTime),
    Column("next_attempt", UTCDateTime),
    Column("updated", UTCDateTime),
    UniqueConstraint("day", "email"),
)

suppressions = Table(
    "suppressions",
    metadata,
    Column("email", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),  # the run id that log lines carry
    Column("grp", Text, nullable=False, default=""),  # time-zone group, "" for a manual run
    Column("day", String(10), nullable=False),
    Column("kind", String(16), nullable=False),  # scheduled | once | send
    Column("started", UTCDateTime, nullable=False, index=True),
    Column("finished", UTCDateTime),
    Column("status", String(16), nullable=False),  # running | ok | failed | skipped
    Column("collected", Integer, nullable=False, default=0),
    Column("selected", Integer, nullable=False, default=0),
    Column("sent", Integer, nullable=False, default=0),
    Column("deferred", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("note", Text),
)

# Pruned articles leave their identity behind, so an item still in its feed after the
# prune is not taken for new and mailed again.
article_tombstones = Table(
    "article_tombstones",
    metadata,
    Column("feed_url", Text, primary_key=True),
    Column("guid", Text, primary_key=True),
    Column("url", Text, nullable=False, index=True),
    Column("pruned", UTCDateTime, nullable=False),
)

# Secrets that signed unsubscribe links once and no longer do, by fingerprint, with the
# day digest first saw them retired: a retired secret vouches only for tokens issued
# up to that day, and only for the grace period after it.
retired_secrets = Table(
    "retired_secrets",
    metadata,
    Column("fingerprint", String(64), primary_key=True),
    Column("retired_on", String(10), nullable=False),
)

# version -> SQL run to reach it from the version before. Version 1 is create_all.
_MIGRATIONS: dict[int, Sequence[str]] = {
    2: [f"ALTER TABLE feeds ADD COLUMN {c}" for c in (
        "moved_to TEXT", "retry_after VARCHAR(32)", "dead_since VARCHAR(32)",
        "last_checked VARCHAR(32)", "last_items INTEGER")],
}


@dataclass(frozen=True)
class Finished:
    """The outcome of one claimed delivery, for ``Store.finish_many``."""

    email: str
    status: DeliveryStatus
    message_id: str | None = None
    error: str | None = None
    next_attempt: datetime | None = None


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


@dataclass(frozen=True)
class FeedOutcome:
    """One feed's fetch to record: its health, its validators, its new articles."""

    url: str
    name: str
    status: str  # "ok", "not_modified" or "error"
    articles: Sequence[Article] = ()
    error: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    moved_to: str | None = None
    retry_after: datetime | None = None
    dead: bool = False
    items: int | None = None


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """All database access goes through here; no SQL elsewhere."""

    def __init__(self, engine: Engine, path: Path | None = None) -> None:
        self.engine = engine
        self.path = path or Path(str(engine.url.database))

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = 30.0) -> Store:
        """``busy_timeout``: seconds a statement waits for another process's write lock
        before it fails (see is_busy); `digest serve` answers 503 sooner than 30 s."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{path}: cannot create the database folder: {e.strerror}") from None
        dbfile.prepare(path)
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", functools.partial(
            _sqlite_pragmas, busy_ms=max(1, round(busy_timeout * 1000))))
        store = cls(engine, path)
        try:
            store._migrate(path)
        except BaseException:
            engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self, path: Path) -> None:
        with self.begin() as conn:
            metadata.create_all(conn)
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema")).first()
            # A new file: create_all just made every table current, nothing to migrate.
            version = int(row[0]) if row else SCHEMA_VERSION
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{path}: database is from a newer digest (schema {version})",
                    hint="upgrade digest or point storage.path at another file",
                )
            for v in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for sql in _MIGRATIONS.get(v, ()):
                    conn.exec_driver_sql(sql)
            self._set_meta(conn, "schema", str(SCHEMA_VERSION))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction. A damaged, locked or unopenable file becomes a StoreError
        here, whichever query first meets it (damage may sit in a page that only a
        later query reads), so no caller sees a SQLAlchemy traceback."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (DBAPIError, sqlite3.Error) as e:
            error = dbfile.unusable(self.path, e)
            if error is None:
                raise
            raise error from e

    # -- meta --------------------------------------------------------------
    def _set_meta(self, conn: Connection, key: str, value: str) -> None:
        stmt = sqlite_insert(meta).values(key=key, value=value)
        conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))

    def secret(self) -> str:
        """A random per-database secret, made on first use (fallback for signing)."""
        with self.begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "secret")).first()
            if row:
                return str(row[0])
            value = secrets.token_urlsafe(32)
            conn.execute(
                sqlite_insert(meta).values(key="secret", value=value).on_conflict_do_nothing())
            got = conn.execute(select(meta.c.value).where(meta.c.key == "secret")).scalar_one()
            return str(got)

    def stored_secret(self) -> str | None:
        """The per-database secret if one was ever made (unlike secret(), makes none)."""
        with self.begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "secret")).first()
        return None if row is None else str(row[0])

    def retired_on(self, secret: str, today: date) -> date:
        """The day ``secret`` was first seen retired: ``today`` unless recorded before."""
        fp = _fingerprint(secret)
        q = select(retired_secrets.c.retired_on).where(retired_secrets.c.fingerprint == fp)
        with self.begin() as conn:
            # Read first: every send and every `digest serve` start asks, and only the
            # first sighting needs the write lock.
            got = conn.execute(q).scalar_one_or_none()
            if got is None:
                conn.execute(sqlite_insert(retired_secrets).values(
                    fingerprint=fp, retired_on=today.isoformat()).on_conflict_do_nothing())
                got = conn.execute(q).scalar_one()
        return date.fromisoformat(got)

    def unretire(self, secret: str) -> None:
        """``secret`` signs (again): a later retirement starts its clock afresh."""
        fp = _fingerprint(secret)
        c = retired_secrets.c
        with self.begin() as conn:
            if conn.execute(select(c.fingerprint).where(c.fingerprint == fp)).first():
                conn.execute(retired_secrets.delete().where(c.fingerprint == fp))

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
        now = now or _now()
        with self.begin() as conn:
            new = _add_articles(conn, [a for o in outcomes for a in o.articles], now)
            _record_feeds(conn, outcomes, now)
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
            return len(_add_articles(conn, batch, now or _now()))

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
        now = now or _now()
        old = (articles.c.published < before) & (articles.c.first_seen < before)
        with self.begin() as conn:
            gone = conn.execute(select(articles.c.feed_url, articles.c.guid, articles.c.url)
                                .where(old)).all()
            if not gone:
                return 0
            conn.execute(sqlite_insert(article_tombstones).on_conflict_do_nothing(), [
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

    def sent_article_ids(self, before: date) -> set[int]:
        """Articles that went out in a digest of an earlier day."""
        q = select(digest_articles.c.article_id).where(digest_articles.c.day < before.isoformat())
        with self.begin() as conn:
            return {int(r[0]) for r in conn.execute(q)}

    def save_variant_articles(self, day: date, carried: Mapping[str, Iterable[int]]) -> None:
        """Remember which articles each variant of a day's digest carries."""
        with self.begin() as conn:
            for variant, ids in carried.items():
                for aid in set(ids):
                    conn.execute(sqlite_insert(variant_articles).values(
                        day=day.isoformat(), variant=variant, article_id=aid,
                    ).on_conflict_do_nothing())

    def sent_to(self, emails: Iterable[str], before: date) -> set[int]:
        """Articles a digest of an earlier day was actually sent to any of ``emails``.

        A sent delivery counts with its variant's articles; for a day saved before
        variants were recorded, with every article of that day's digest.
        """
        wanted = sorted(set(emails))
        if not wanted:
            return set()
        out: set[int] = set()
        with self.begin() as conn:
            sent = conn.execute(
                select(deliveries.c.day, deliveries.c.variant).distinct()
                .where(deliveries.c.email.in_(wanted) & (deliveries.c.status == "sent")
                       & (deliveries.c.day < before.isoformat()))).all()
            for day, variant in sent:
                ids = {int(r[0]) for r in conn.execute(
                    select(variant_articles.c.article_id).where(
                        (variant_articles.c.day == day) & (variant_articles.c.variant == variant)))}
                if not ids:
                    ids = {int(r[0]) for r in conn.execute(
                        select(digest_articles.c.article_id).where(digest_articles.c.day == day))}
                out |= ids
        return out

    # -- digests -----------------------------------------------------------
    def save_digest(self, day: date, variants: Sequence[Rendered], article_ids: Iterable[int],
                    now: datetime | None = None) -> None:
        """Freeze a day's digest: its variants and the articles it carries.

        Once saved, a rerun the same day sends this exact digest, not a new ranking.
        """
        now = now or _now()
        with self.begin() as conn:
            for r in variants:
                conn.execute(sqlite_insert(digests).values(
                    day=day.isoformat(), variant=r.variant, subject=r.subject,
                    preheader=r.preheader, mjml=r.mjml, html=r.html, text=r.text, created=now,
                ).on_conflict_do_nothing())
            for aid in set(article_ids):
                conn.execute(sqlite_insert(digest_articles).values(
                    day=day.isoformat(), article_id=aid).on_conflict_do_nothing())

    def load_digest(self, day: date) -> list[Rendered]:
        q = select(digests).where(digests.c.day == day.isoformat()).order_by(digests.c.id)
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [Rendered(variant=r["variant"], subject=r["subject"], preheader=r["preheader"],
                         mjml=r["mjml"], html=r["html"], text=r["text"]) for r in rows]

    def digest_frozen(self, day: date) -> tuple[datetime, tuple[int, ...]] | None:
        """When the day's digest was frozen (its first variant saved) and the ids of
        the articles it carries (every group's); None while it is not frozen."""
        with self.begin() as conn:
            when = conn.execute(select(func.min(digests.c.created))
                                .where(digests.c.day == day.isoformat())).scalar()
            if when is None:
                return None
            ids = conn.execute(select(digest_articles.c.article_id)
                               .where(digest_articles.c.day == day.isoformat())
                               .order_by(digest_articles.c.article_id)).scalars().all()
        return when, tuple(int(i) for i in ids)

    def digest_days(self) -> list[date]:
        q = select(digests.c.day).distinct().order_by(digests.c.day.desc())
        with self.begin() as conn:
            return [date.fromisoformat(r[0]) for r in conn.execute(q)]

    # -- delivery journal --------------------------------------------------
    def plan_deliveries(self, day: date, recipients: Sequence[tuple[str, str]],
                        now: datetime | None = None) -> int:
        """Write a pending row per (email, variant) in one transaction; return rows added.

        Existing rows are left alone, so planning twice never re-queues anyone.
        """
        now = now or _now()
        stmt = sqlite_insert(deliveries).on_conflict_do_nothing()
        count = select(func.count()).select_from(deliveries).where(
            deliveries.c.day == day.isoformat())
        with self.begin() as conn:
            before = int(conn.execute(count).scalar_one())
            # executemany in chunks: one statement per row costs ~0.3 ms (30 s for 100k).
            for i in range(0, len(recipients), 5000):
                conn.execute(stmt, [
                    {"day": day.isoformat(), "email": email, "variant": variant,
                     "status": "pending", "attempts": 0, "updated": now}
                    for email, variant in recipients[i:i + 5000]])
            return int(conn.execute(count).scalar_one()) - before

    def finish(self, day: date, email: str, status: DeliveryStatus, *,
               message_id: str | None = None, error: str | None = None,
               next_attempt: datetime | None = None, now: datetime | None = None) -> None:
        now = now or _now()
        with self.begin() as conn:
            conn.execute(
                update(deliveries)
                .where((deliveries.c.day == day.isoformat()) & (deliveries.c.email == email))
                .values(status=status, message_id=message_id, last_error=error,
                        next_attempt=next_attempt, updated=now, claimed_by=None)
            )

    def claim_many(self, day: date, emails: Sequence[str], worker: str,
                   now: datetime | None = None,
                   stale_after: float = 600.0) -> dict[str, tuple[int, str]]:
        """claim() for a batch in one transaction: {email: (attempts, variant)} of those taken."""
        if not emails:
            return {}
        now = now or _now()
        stale = datetime.fromtimestamp(now.timestamp() - stale_after, UTC)
        # Plain SQL on the sender's hot path: building the SQLAlchemy statement cost
        # more than the commit. Times are compared as the ISO text UTCDateTime stores.
        at = _iso(now)
        sql = (f"{_CLAIM} AND email IN ({', '.join('?' * len(emails))}) AND ({_DUE})"
               " RETURNING email, attempts, variant")
        with self.begin() as conn:
            rows = conn.exec_driver_sql(sql, (worker, at, at, day.isoformat(), *emails, at,
                                              _iso(stale))).all()
        return {r[0]: (int(r[1]), str(r[2])) for r in rows}

    def finish_many(self, day: date, rows: Sequence[Finished], now: datetime | None = None) -> None:
        """finish() for a batch in one transaction (the sender's group commit)."""
        if not rows:
            return
        at, d = _iso(now or _now()), day.isoformat()
        params = [(r.status, r.message_id, r.error,
                   _iso(r.next_attempt) if r.next_attempt else None, at, d, r.email)
                  for r in rows]
        with self.begin() as conn:
            conn.exec_driver_sql(_FINISH, params)

    def release_orphans(self, day: date, dead: Callable[[str], bool],
                        now: datetime | None = None) -> int:
        """Rows left 'sending' by a sender that ``dead(claimed_by)`` says is gone: due now.

        They may or may not have reached the server (the crash window), so they go
        back as deferred-due-now rather than waiting out ``stale_after``.
        """
        now = now or _now()
        c = deliveries.c
        with self.begin() as conn:
            held = conn.execute(select(c.claimed_by).distinct().where(
                (c.day == day.isoformat()) & (c.status == "sending"))).scalars().all()
            gone = [w for w in held if w and dead(w)]
            if not gone:
                return 0
            res = conn.execute(update(deliveries).where(
                (c.day == day.isoformat()) & (c.status == "sending") & c.claimed_by.in_(gone)
            ).values(status="deferred", next_attempt=now, updated=now, claimed_by=None,
                     last_error="the sender stopped mid-send; it may have been delivered"))
            return int(res.rowcount or 0)

    def sent_since(self, since: datetime) -> list[datetime]:
        """When each message of any day was sent after ``since`` (the hourly rate limit)."""
        c = deliveries.c
        q = select(c.updated).where((c.status == "sent") & (c.updated > since))
        with self.begin() as conn:
            return [t for t in conn.execute(q).scalars() if t is not None]

    def delivery_counts(self, day: date) -> dict[str, int]:
        """{status: rows} of a day's journal, every status present (for status/progress)."""
        c = deliveries.c
        q = select(c.status, func.count()).where(c.day == day.isoformat()).group_by(c.status)
        counts = dict.fromkeys(("pending", "sending", "sent", "failed", "deferred"), 0)
        with self.begin() as conn:
            counts.update({str(s): int(n) for s, n in conn.execute(q)})
        return counts

    def deliveries(self, day: date) -> list[Delivery]:
        q = select(deliveries).where(deliveries.c.day == day.isoformat()).order_by(deliveries.c.id)
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [Delivery(day=day, email=r["email"], status=r["status"], variant=r["variant"],
                         attempts=r["attempts"], message_id=r["message_id"],
                         last_error=r["last_error"], updated=r["updated"]) for r in rows]

    # -- runs (what `digest status` shows) -----------------------------------
    def start_run(self, run_id: str, *, group: str, day: date, kind: str,
                  now: datetime | None = None) -> None:
        with self.begin() as conn:
            conn.execute(insert(runs).values(id=run_id, grp=group, day=day.isoformat(), kind=kind,
                                             started=now or _now(), status="running"))

    def finish_run(self, run_id: str, *, status: str, now: datetime | None = None,
                   note: str | None = None, **counts: int) -> None:
        with self.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                finished=now or _now(), status=status, note=note, **counts))

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        q = select(runs).order_by(runs.c.started.desc(), runs.c.id.desc()).limit(limit)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- suppressions ------------------------------------------------------
    def suppress(self, email: str, reason: str, now: datetime | None = None) -> None:
        with self.begin() as conn:
            conn.execute(sqlite_insert(suppressions).values(
                email=email.lower(), reason=reason, created=now or _now()).on_conflict_do_nothing())

    def suppressed(self) -> set[str]:
        with self.begin() as conn:
            return {str(r[0]) for r in conn.execute(select(suppressions.c.email))}

    def suppression(self, email: str) -> tuple[str, datetime] | None:
        """(reason, when) an address was suppressed, or None."""
        q = select(suppressions.c.reason, suppressions.c.created).where(
            suppressions.c.email == email.lower())
        with self.begin() as conn:
            row = conn.execute(q).first()
        return None if row is None else (str(row[0]), row[1])

    def unsuppress(self, email: str) -> bool:
        """Lift a suppression (an explicit resubscribe); False if there was none."""
        with self.begin() as conn:
            res = conn.execute(suppressions.delete().where(suppressions.c.email == email.lower()))
            return bool(res.rowcount)


# The delivery journal's hot statements (see claim_many, finish_many).
_CLAIM = ("UPDATE deliveries SET status = 'sending', claimed_by = ?, claimed_at = ?,"
          " updated = ?, attempts = attempts + 1 WHERE day = ?")
_DUE = ("status = 'pending' OR (status = 'deferred' AND (next_attempt IS NULL"
        " OR next_attempt <= ?)) OR (status = 'sending' AND claimed_at < ?)")
_FINISH = ("UPDATE deliveries SET status = ?, message_id = ?, last_error = ?, next_attempt = ?,"
           " updated = ?, claimed_by = NULL WHERE day = ? AND email = ?")


def _fingerprint(secret: str) -> str:
    # A plain hash is enough: whoever can read this table can also read the
    # fallback signing secret kept in clear in the meta table beside it.
    return hashlib.sha256(b"digest retired secret\0" + secret.encode()).hexdigest()


def _stored_time(value: datetime | None) -> str | None:
    """A datetime as UTCDateTime stores it, for plain SQL; refuses a naive one."""
    return _UTC_DATETIME.process_bind_param(value, None)


_UTC_DATETIME = UTCDateTime()


def _iso(value: datetime) -> str:
    """A datetime as UTCDateTime stores it."""
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_ms: int = 30000) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.close()


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is another process holding the database (SQLITE_BUSY or
    SQLITE_LOCKED, extended codes too) past the busy timeout: retry later, not a bug."""
    orig = getattr(error, "orig", error)
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(orig, sqlite3.Error) and code is not None and code & 0xFF in (
        sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _record_feeds(conn: Connection, outcomes: Sequence[FeedOutcome], now: datetime) -> None:
    """Each feed's fetch in one upsert: a first sighting inserts, later ones update
    (failures counted). Plain SQL, one executemany per shape of outcome: SQLAlchemy
    built each upsert in about a millisecond, for fifty feeds a cold collect's
    largest store cost after the articles themselves."""
    shapes: dict[str, list[tuple[Any, ...]]] = {}
    for o in outcomes:
        values = _feed_values(o, now)
        cols = list(values)
        sql = (f"INSERT INTO feeds (url, {', '.join(cols)}, failures) "
               f"VALUES (?, {', '.join('?' * len(cols))}, ?) ON CONFLICT (url) DO UPDATE SET "
               + ", ".join(f"{c} = excluded.{c}" for c in cols)
               + (", failures = failures + 1" if o.status == "error" else ", failures = 0"))
        shapes.setdefault(sql, []).append(
            (o.url, *values.values(), 1 if o.status == "error" else 0))
    for sql, rows in shapes.items():
        conn.exec_driver_sql(sql, rows)


def _feed_values(o: FeedOutcome, now: datetime) -> dict[str, Any]:
    """The columns one outcome sets (but failures), as stored."""
    stamp = _stored_time(now)
    values: dict[str, Any] = {"name": o.name, "last_status": o.status, "last_checked": stamp,
                              "retry_after": _stored_time(o.retry_after)}
    if o.moved_to is not None:
        values["moved_to"] = o.moved_to
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


def _add_articles(conn: Connection, batch: Sequence[Article], now: datetime) -> dict[int, int]:
    """Insert the new ones of ``batch``; {id(article): 1} for each one inserted."""
    if not batch:
        return {}
    known = _Known.load(conn, batch)
    fresh = [a for a in batch if known.add(a)]
    if fresh:
        # One plain executemany, not a query and an insert per article nor
        # SQLAlchemy's per-row parameter processing: a 1,000-item feed is
        # stored in milliseconds.
        stamp = _stored_time(now)
        conn.exec_driver_sql(_INSERT_ARTICLE, [
            (a.feed_url, a.source, a.guid, a.url, a.title, a.summary, a.content_html,
             a.author, json.dumps(list(a.categories)), a.image, _stored_time(a.published),
             stamp)
            for a in fresh])
    return {id(a): 1 for a in fresh}


_INSERT_ARTICLE = (
    "INSERT INTO articles (feed_url, source, guid, url, title, summary, content_html, "
    "author, categories, image, published, first_seen) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)")


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
    def load(cls, conn: Connection, batch: Sequence[Article]) -> _Known:
        # Plain SQL: these run per feed on every collect, and SQLAlchemy's statement
        # building cost more than the queries.
        known = cls()
        for feed_url in {a.feed_url for a in batch}:
            rows = conn.exec_driver_sql(
                "SELECT guid, url, title, summary, published FROM articles "
                "WHERE feed_url = ?", (feed_url,))
            for guid, url, title, summary, published in rows:
                known.guids.add((feed_url, guid))
                known.urls.add(url)
                known._title(feed_url, title, summary, datetime.fromisoformat(published))
            rows = conn.exec_driver_sql(
                "SELECT guid, url FROM article_tombstones WHERE feed_url = ?", (feed_url,))
            for guid, url in rows:
                known.guids.add((feed_url, guid))
                known.urls.add(url)
        urls = list({a.url for a in batch} - known.urls)
        for i in range(0, len(urls), 500):  # under SQLite's bound-parameter limit
            chunk = urls[i:i + 500]
            marks = ",".join("?" * len(chunk))
            for table in ("articles", "article_tombstones"):
                rows = conn.exec_driver_sql(
                    f"SELECT url FROM {table} WHERE url IN ({marks})", tuple(chunk))
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
        published=r["published"],
    )
