"""Bounces and complaints digest recorded, and the journal question that decides
whether a report is believed: did digest mail that address recently?"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, select

from digest.store.base import Base
from digest.store.schema import bounces, deliveries


class Bounces(Base):
    def record_bounce(self, address: str, kind: str, status: str, diagnostic: str,
                      source: str, received_at: datetime) -> None:
        with self.begin() as conn:
            conn.execute(bounces.insert().values(
                address=address.lower(), kind=kind, status=status, diagnostic=diagnostic,
                source=source, received_at=received_at,
                day=received_at.date().isoformat()))

    def soft_bounces_since(self, address: str, since: datetime) -> int:
        q = select(func.count()).select_from(bounces).where(
            (bounces.c.address == address.lower()) & (bounces.c.kind == "soft")
            & (bounces.c.received_at >= since))
        with self.begin() as conn:
            return int(conn.execute(q).scalar_one())

    def recent_bounces(self, since: date) -> list[dict[str, Any]]:
        q = select(bounces).where(bounces.c.day >= since.isoformat()).order_by(
            bounces.c.received_at.desc(), bounces.c.id.desc())
        with self.begin() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def bounce_counts(self, day: date) -> dict[str, int]:
        """How many of each kind arrived on ``day`` (UTC)."""
        q = select(bounces.c.kind, func.count()).where(
            bounces.c.day == day.isoformat()).group_by(bounces.c.kind)
        counts = dict.fromkeys(("hard", "soft", "complaint"), 0)
        with self.begin() as conn:
            for kind, n in conn.execute(q):
                counts[str(kind)] = int(n)
        return counts

    def mailed_since(self, emails: Iterable[str], since: date) -> set[str]:
        """Which of ``emails`` the journal shows digest sent to (or tried: a row
        that failed was still mailed) on ``since`` or later."""
        wanted = sorted({e.lower() for e in emails})
        found: set[str] = set()
        with self.begin() as conn:
            for i in range(0, len(wanted), 500):
                q = select(deliveries.c.email).distinct().where(
                    deliveries.c.email.in_(wanted[i:i + 500])
                    & deliveries.c.status.in_(("sent", "failed", "deferred"))
                    & (deliveries.c.day >= since.isoformat()))
                found.update(str(r[0]) for r in conn.execute(q))
        return found
