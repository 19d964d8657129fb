"""The one seam for dialect-specific SQL: how an engine is made and tuned, the
INSERT that can upsert, the plain-SQL statements of the hot paths (driver
paramstyle, ON CONFLICT, RETURNING), and which driver errors mean "busy".

Only SQLite today. PostgreSQL comes next: a second class with the members of
``Dialect``, registered in ``DIALECTS`` under its SQLAlchemy dialect name; the rest
of the store asks ``store.dialect`` and never knows which one it talks to.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects.sqlite import Insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError


class Dialect(Protocol):
    """What the store needs from a database beyond portable SQLAlchemy Core."""

    name: str
    #: errors that begin() hands to dbfile.unusable (damaged, locked, unopenable)
    errors: tuple[type[BaseException], ...]
    #: bound parameters one statement may carry
    max_params: int
    insert_article: str
    rename_source: str
    finish: str
    renew: str
    articles_of_feed: str
    tombstones_of_feed: str

    def engine(self, path: Path, busy_timeout: float) -> Engine: ...

    def insert(self, table: Table) -> Any:
        """An INSERT with on_conflict_do_nothing / on_conflict_do_update (SQLAlchemy's
        SQLite and PostgreSQL inserts share that API, not a class)."""
        ...

    def claim(self, count: int) -> str: ...

    def feed_upsert(self, cols: Sequence[str], failed: bool) -> str: ...

    def urls_in(self, table: str, count: int) -> str: ...

    def is_busy(self, error: BaseException) -> bool: ...


class SQLite:
    """One file through the stdlib driver: WAL, a busy timeout, qmark parameters."""

    name = "sqlite"
    errors: tuple[type[BaseException], ...] = (DBAPIError, sqlite3.Error)
    max_params = 500  # under SQLite's bound-parameter limit

    # The delivery journal's and the collector's hot statements, in plain SQL:
    # building the SQLAlchemy statement cost more than running it.
    insert_article = (
        "INSERT INTO articles (feed_url, source, guid, url, title, summary, content_html, "
        "author, categories, image, published, first_seen, dated, backlog) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    # A feed's articles carry its outlet name as of the latest collect (parameters:
    # name, feed_url, name): a name given in config.toml, or a title learned, reaches
    # the articles stored before it.
    rename_source = "UPDATE articles SET source = ? WHERE feed_url = ? AND source <> ?"
    # Fenced: only the row's holder, while it still holds it, records an outcome.
    # attempts counts SMTP transactions tried, so a row handed back adds 0.
    finish = ("UPDATE deliveries SET status = ?, message_id = ?, last_error = ?,"
              " next_attempt = ?, updated = ?, attempts = attempts + ?, claimed_by = NULL,"
              " lease_until = NULL WHERE day = ? AND email = ? AND claimed_by = ?"
              " AND status = 'sending'")
    # Extends the lease of every row the holder still has; returns those rows (a row
    # taken by another sender after the lease ran out is not among them).
    renew = ("UPDATE deliveries SET lease_until = ? WHERE day = ? AND claimed_by = ?"
             " AND status = 'sending' RETURNING email")
    articles_of_feed = ("SELECT guid, url, title, summary, published FROM articles "
                        "WHERE feed_url = ?")
    tombstones_of_feed = "SELECT guid, url FROM article_tombstones WHERE feed_url = ?"
    _claim = ("UPDATE deliveries SET status = 'sending', claimed_by = ?, claimed_at = ?,"
              " lease_until = ?, updated = ? WHERE day = ?")
    # A 'sending' row whose lease ran out is anyone's, its holder alive or not: the
    # holder's finish and its check before DATA both see the row is no longer its.
    _due = ("status = 'pending' OR (status = 'deferred' AND (next_attempt IS NULL"
            " OR next_attempt <= ?)) OR (status = 'sending' AND (lease_until IS NULL"
            " OR lease_until <= ?))")

    def engine(self, path: Path, busy_timeout: float) -> Engine:
        engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": busy_timeout})
        event.listen(engine, "connect", functools.partial(
            _sqlite_pragmas, busy_ms=max(1, round(busy_timeout * 1000))))
        return engine

    def insert(self, table: Table) -> Insert:
        return sqlite_insert(table)

    def claim(self, count: int) -> str:
        """Take ``count`` due rows of a day: parameters (holder, at, lease_until, at, day,
        *emails, at, at), times as the ISO text UTCDateTime stores."""
        return (f"{self._claim} AND email IN ({', '.join('?' * count)}) AND ({self._due})"
                " RETURNING email, attempts, variant")

    def feed_upsert(self, cols: Sequence[str], failed: bool) -> str:
        """One feed's fetch: parameters (url, *cols, failures-if-new)."""
        return (f"INSERT INTO feeds (url, {', '.join(cols)}, failures) "
                f"VALUES (?, {', '.join('?' * len(cols))}, ?) ON CONFLICT (url) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in cols)
                + (", failures = failures + 1" if failed else ", failures = 0"))

    def urls_in(self, table: str, count: int) -> str:
        return f"SELECT url FROM {table} WHERE url IN ({','.join('?' * count)})"

    def is_busy(self, error: BaseException) -> bool:
        orig = getattr(error, "orig", error)
        code = getattr(orig, "sqlite_errorcode", None)
        return isinstance(orig, sqlite3.Error) and code is not None and code & 0xFF in (
            sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, *, busy_ms: int = 30000) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cur.close()


# By SQLAlchemy dialect name; a missing one is a bug (only digest makes engines).
DIALECTS: dict[str, Dialect] = {"sqlite": SQLite()}


def for_engine(engine: Engine) -> Dialect:
    return DIALECTS[engine.dialect.name]


def is_busy(error: BaseException) -> bool:
    """Whether ``error`` is another process holding the database (SQLITE_BUSY or
    SQLITE_LOCKED, extended codes too) past the busy timeout: retry later, not a bug."""
    return any(d.is_busy(error) for d in DIALECTS.values())
