"""What every part of the facade shares: the engine, its SQL dialect, the file's
path, and one transaction at a time (``begin``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import StatementError

from digest.store import dbfile
from digest.store.dialect import for_engine


class Base:
    """The engine and its transactions; the concern classes build on this."""

    def __init__(self, engine: Engine, path: Path | None = None) -> None:
        self.engine = engine
        self.path = path or Path(str(engine.url.database))
        self.dialect = for_engine(engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction. A damaged, locked or unopenable file becomes a StoreError
        here, whichever query first meets it (damage may sit in a page that only a
        later query reads), so no caller sees a SQLAlchemy traceback."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except self.dialect.errors as e:
            error = dbfile.unusable(self.path, e)
            if error is None:
                raise
            raise error from e
        except StatementError as e:
            # A value UTCDateTime refused (a naive datetime) is the caller's bug, the
            # same ValueError whether the time went through SQLAlchemy or plain SQL.
            if isinstance(e.orig, ValueError):
                raise e.orig from None
            raise


def utc_now() -> datetime:
    return datetime.now(UTC)
