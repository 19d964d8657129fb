"""The one facade: ``Store``, every database access digest makes, over SQLite
through SQLAlchemy Core.

One file, WAL mode, a busy timeout: several processes (daemon, `digest send`,
`digest serve`) may share it. The work is split by concern (articles, journal,
runs, suppressions, bounces), the shape is schema's, dialect-specific SQL is dialect's;
callers import what they need from here.
"""

from __future__ import annotations

from pathlib import Path

from digest.errors import StoreError
from digest.store import dbfile
from digest.store.articles import Articles, FeedOutcome, FeedState
from digest.store.bounces import Bounces
from digest.store.desk import Desk
from digest.store.dialect import SQLite, is_busy
from digest.store.journal import Finished, Journal
from digest.store.runs import Runs
from digest.store.schema import migrate
from digest.store.suppressions import Suppressions

__all__ = ["FeedOutcome", "FeedState", "Finished", "Store", "is_busy"]


class Store(Articles, Bounces, Desk, Journal, Runs, Suppressions):
    """All database access goes through here; no SQL elsewhere."""

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = 30.0) -> Store:
        """``busy_timeout``: seconds a statement waits for another process's write lock
        before it fails (see is_busy); `digest serve` answers 503 sooner than 30 s."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"{path}: cannot create the database folder: {e.strerror}") from None
        dbfile.prepare(path)
        store = cls(SQLite().engine(path, busy_timeout), path)
        try:
            with store.begin() as conn:
                migrate(conn, path, store.dialect)
        except BaseException:
            store.engine.dispose()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()
