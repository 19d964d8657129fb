"""Suppressions: addresses never to be mailed again (an unsubscribe, by link or by
hand), kept in the database so one holds even before the subscriber files catch up."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from digest.store.base import Base, utc_now
from digest.store.schema import suppressions


class Suppressions(Base):
    def suppress(self, email: str, reason: str, now: datetime | None = None) -> None:
        with self.begin() as conn:
            conn.execute(self.dialect.insert(suppressions).values(
                email=email.lower(), reason=reason, created=now or utc_now()
            ).on_conflict_do_nothing())

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
