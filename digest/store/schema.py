"""The database's shape, all in one place: every table, the type times are stored
as, the schema version and the migrations that bring an older file up to it.

A new file gets every table from ``metadata.create_all``; an older one keeps its
data and runs each step of ``MIGRATIONS`` past its version, never recreated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)
from sqlalchemy.types import TypeDecorator

from digest.errors import StoreError

if TYPE_CHECKING:
    from digest.store.dialect import Dialect

SCHEMA_VERSION = 6


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
    # v4 (outlets): the feed's own title and site link as last parsed; a feed config.toml
    # names nothing is called after them (digest.collect.outlet).
    Column("title", Text),
    Column("site", Text),
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
    # v4 (dates): 0 when the feed gave no usable date and ``published`` is first_seen;
    # backlog 1 for such an item already there at its feed's first successful collect.
    Column("dated", Integer, nullable=False, server_default="1"),
    Column("backlog", Integer, nullable=False, server_default="0"),
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
    # v3 (leases): until when ``claimed_by`` holds a 'sending' row; past it anyone may
    # take the row, and the old holder can no longer record an outcome for it.
    Column("lease_until", UTCDateTime),
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

# v5 (the desk): the editor's changes to one day's edition, one row each, never
# updated but to mark them reset (``cleared``); `digest desk log` reads them all.
desk_edits = Table(
    "desk_edits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("day", String(10), nullable=False, index=True),
    Column("grp", Text, nullable=False, default=""),
    Column("kind", String(16), nullable=False),
    Column("story", String(16), nullable=False, default=""),
    Column("anchor", Text, nullable=False, default=""),
    Column("members", Text, nullable=False, default="[]"),  # JSON list of URLs
    Column("text", Text, nullable=False, default=""),
    Column("position", Integer),
    Column("by", Text, nullable=False, default=""),
    Column("at", UTCDateTime, nullable=False),
    Column("cleared", UTCDateTime),  # when a reset undid it
)

# v5: a scheduled run held for the editor's approval (approval = "required"): since
# when it waits, and how it ended (approved, sent at the deadline, skipped).
desk_holds = Table(
    "desk_holds",
    metadata,
    Column("day", String(10), primary_key=True),
    Column("grp", Text, primary_key=True),
    Column("since", UTCDateTime, nullable=False),
    Column("run", String(32), nullable=False, default=""),  # its row in runs (status)
    Column("released", UTCDateTime),
    Column("outcome", String(16)),  # approved | deadline-send | deadline-skip
)

# v6 (bounces): every bounce and complaint digest acted on, one row per address a
# report named; the soft-bounce rule counts an address's rows within a window.
bounces = Table(
    "bounces",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("address", Text, nullable=False, index=True),
    Column("kind", String(16), nullable=False),  # hard | soft | complaint
    Column("status", String(16), nullable=False, default=""),
    Column("diagnostic", Text, nullable=False, default=""),
    Column("day", String(10), nullable=False, index=True),  # received_at's UTC day
    Column("received_at", UTCDateTime, nullable=False),
    Column("source", Text, nullable=False, default=""),  # the reporter, and the file
)

# version -> SQL run to reach it from the version before. Version 1 is create_all.
MIGRATIONS: dict[int, Sequence[str]] = {
    2: [f"ALTER TABLE feeds ADD COLUMN {c}" for c in (
        "moved_to TEXT", "retry_after VARCHAR(32)", "dead_since VARCHAR(32)",
        "last_checked VARCHAR(32)", "last_items INTEGER")],
    # A row an older sender left 'sending' keeps the 600 s that sender was promised.
    3: ["ALTER TABLE deliveries ADD COLUMN lease_until VARCHAR(32)",
        "UPDATE deliveries SET lease_until = strftime('%Y-%m-%dT%H:%M:%S+00:00', claimed_at,"
        " '+600 seconds') WHERE status = 'sending' AND claimed_at IS NOT NULL"],
    # An older digest stamped an undated item with the collect time, so its published
    # is its first_seen; those of a feed's first collect (its earliest first_seen) are
    # backlog. The feed's title is learned at its next collect.
    4: ["ALTER TABLE articles ADD COLUMN dated INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE articles ADD COLUMN backlog INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE feeds ADD COLUMN title TEXT",
        "ALTER TABLE feeds ADD COLUMN site TEXT",
        "UPDATE articles SET dated = 0 WHERE published = first_seen",
        "UPDATE articles SET backlog = 1 WHERE dated = 0 AND first_seen = (SELECT"
        " MIN(b.first_seen) FROM articles AS b WHERE b.feed_url = articles.feed_url)"],
    # The desk's two tables are new: create_all makes them in an older file.
    5: [],
    # The bounces table is new: create_all makes it in an older file.
    6: [],
}



def migrate(conn: Connection, path: Path, dialect: Dialect) -> None:
    """Bring the file at ``path`` to SCHEMA_VERSION; refuse one from a newer digest."""
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
        for sql in MIGRATIONS.get(v, ()):
            if not _added_already(conn, sql):
                conn.exec_driver_sql(sql)
    set_meta(conn, dialect, "schema", str(SCHEMA_VERSION))


def _added_already(conn: Connection, sql: str) -> bool:
    """Whether ``sql`` adds a column create_all just made: a table missing from an
    older file is created whole, in today's shape."""
    m = re.match(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", sql)
    return m is not None and m[2] in {c["name"] for c in inspect(conn).get_columns(m[1])}


def set_meta(conn: Connection, dialect: Dialect, key: str, value: str) -> None:
    stmt = dialect.insert(meta).values(key=key, value=value)
    conn.execute(stmt.on_conflict_do_update(index_elements=["key"], set_={"value": value}))


def stored_time(value: datetime | None) -> str | None:
    """A datetime as UTCDateTime stores it, for plain SQL; refuses a naive one (the
    one binding every time the store writes goes through: a naive datetime would be
    read as local time, hours off a lease or a backoff)."""
    return _UTC_DATETIME.process_bind_param(value, None)


def stored_now(value: datetime) -> str:
    """stored_time for a time that is never None."""
    out = stored_time(value)
    assert out is not None
    return out


_UTC_DATETIME = UTCDateTime()

