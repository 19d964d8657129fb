"""SQLite state through SQLAlchemy Core: articles, feed state, digests, the
delivery journal and suppressions.

One file, WAL mode, a busy timeout: several processes (daemon, `digest send`,
`digest serve`) may share it. Schema changes go through ``_MIGRATIONS`` so an
old database is upgraded in place, never recreated.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Iterator, Sequence
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
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeDecorator

from digest.errors import StoreError
from digest.models import Article, Delivery, DeliveryStatus, Rendered

SCHEMA_VERSION = 1


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

# version -> SQL run to reach it from the version before. Version 1 is create_all.
_MIGRATIONS: dict[int, Sequence[str]] = {}


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


def _now() -> datetime:
    return datetime.now(UTC)


class Store:
    """All database access goes through here; no SQL elsewhere."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def open(cls, path: Path) -> Store:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{path}: cannot create the database folder: {e.strerror}") from None
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine)
        try:
            store._migrate(path)
        except OperationalError as e:
            raise StoreError(f"{path}: cannot open the database: {e.orig}") from None
        return store

    def close(self) -> None:
        self.engine.dispose()

    def _migrate(self, path: Path) -> None:
        with self.engine.begin() as conn:
            metadata.create_all(conn)
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema")).first()
            version = int(row[0]) if row else 0
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
        with self.engine.begin() as conn:
            yield conn

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
    ) -> None:
        """Remember the outcome of one fetch (and the validators for the next one)."""
        now = now or _now()
        values: dict[str, Any] = {"name": name, "last_status": status}
        if status == "error":
            values |= {"last_error": error, "last_error_at": now,
                       "failures": feeds.c.failures + 1}
        else:
            values |= {"last_success": now, "failures": 0}
            if status == "ok":
                values |= {"etag": etag, "last_modified": last_modified}
        with self.begin() as conn:
            conn.execute(sqlite_insert(feeds).values(url=url, name=name).on_conflict_do_nothing())
            conn.execute(update(feeds).where(feeds.c.url == url).values(**values))

    # -- articles ----------------------------------------------------------
    def add_articles(self, items: Iterable[Article], now: datetime | None = None) -> int:
        """Store new articles; return how many were new.

        An article is not new when its feed already gave the same guid, or any
        feed already gave the same URL.
        """
        now = now or _now()
        new = 0
        with self.begin() as conn:
            for a in items:
                dup = conn.execute(
                    select(articles.c.id).where(
                        ((articles.c.feed_url == a.feed_url) & (articles.c.guid == a.guid))
                        | (articles.c.url == a.url)
                    ).limit(1)
                ).first()
                if dup:
                    continue
                conn.execute(insert(articles).values(_article_row(a, now)))
                new += 1
        return new

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
        added = 0
        with self.begin() as conn:
            for email, variant in recipients:
                res = conn.execute(sqlite_insert(deliveries).values(
                    day=day.isoformat(), email=email, variant=variant, status="pending",
                    attempts=0, updated=now,
                ).on_conflict_do_nothing())
                added += res.rowcount or 0
        return added

    def claim(self, day: date, email: str, worker: str, now: datetime | None = None,
              stale_after: float = 600.0) -> bool:
        """Atomically take a row to send. False if another sender has it or it is done.

        A row left in 'sending' by a crashed process is reclaimed after
        ``stale_after`` seconds: that is the one window that can repeat a message.
        """
        now = now or _now()
        stale = datetime.fromtimestamp(now.timestamp() - stale_after, UTC)
        due = (deliveries.c.status == "pending") | (
            (deliveries.c.status == "deferred")
            & ((deliveries.c.next_attempt.is_(None))
               | (deliveries.c.next_attempt <= now))
        ) | (
            (deliveries.c.status == "sending")
            & (deliveries.c.claimed_at < stale)
        )
        with self.begin() as conn:
            res = conn.execute(
                update(deliveries)
                .where((deliveries.c.day == day.isoformat()) & (deliveries.c.email == email) & due)
                .values(status="sending", claimed_by=worker, claimed_at=now, updated=now,
                        attempts=deliveries.c.attempts + 1)
            )
            return bool(res.rowcount)

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

    def deliveries(self, day: date) -> list[Delivery]:
        q = select(deliveries).where(deliveries.c.day == day.isoformat()).order_by(deliveries.c.id)
        with self.begin() as conn:
            rows = conn.execute(q).mappings().all()
        return [Delivery(day=day, email=r["email"], status=r["status"], variant=r["variant"],
                         attempts=r["attempts"], message_id=r["message_id"],
                         last_error=r["last_error"], updated=r["updated"]) for r in rows]

    # -- suppressions ------------------------------------------------------
    def suppress(self, email: str, reason: str, now: datetime | None = None) -> None:
        with self.begin() as conn:
            conn.execute(sqlite_insert(suppressions).values(
                email=email.lower(), reason=reason, created=now or _now()).on_conflict_do_nothing())

    def suppressed(self) -> set[str]:
        with self.begin() as conn:
            return {str(r[0]) for r in conn.execute(select(suppressions.c.email))}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _article_row(a: Article, now: datetime) -> dict[str, Any]:
    return {
        "feed_url": a.feed_url, "source": a.source, "guid": a.guid, "url": a.url,
        "title": a.title, "summary": a.summary, "content_html": a.content_html,
        "author": a.author, "categories": json.dumps(list(a.categories)), "image": a.image,
        "published": a.published, "first_seen": now,
    }


def _article(r: Any) -> Article:
    return Article(
        id=r["id"], feed_url=r["feed_url"], source=r["source"], guid=r["guid"], url=r["url"],
        title=r["title"], summary=r["summary"], content_html=r["content_html"],
        author=r["author"], categories=tuple(json.loads(r["categories"])), image=r["image"],
        published=r["published"],
    )
