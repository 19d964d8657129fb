"""Runs and meta: what `digest status` shows of each run, the per-database secret,
and the secrets retired from signing unsubscribe links."""

from __future__ import annotations

import hashlib
import secrets
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select, update

from digest.store.base import Base, utc_now
from digest.store.schema import meta, retired_secrets, runs


class Runs(Base):
    # -- meta --------------------------------------------------------------
    def secret(self) -> str:
        """A random per-database secret, made on first use (fallback for signing)."""
        with self.begin() as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "secret")).first()
            if row:
                return str(row[0])
            value = secrets.token_urlsafe(32)
            conn.execute(self.dialect.insert(meta).values(
                key="secret", value=value).on_conflict_do_nothing())
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
                conn.execute(self.dialect.insert(retired_secrets).values(
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

    # -- runs (what `digest status` shows) -----------------------------------
    def start_run(self, run_id: str, *, group: str, day: date, kind: str,
                  now: datetime | None = None, status: str = "running",
                  note: str | None = None) -> None:
        """``status`` "waiting" (with its note) for a run held for the desk's approval."""
        with self.begin() as conn:
            conn.execute(insert(runs).values(id=run_id, grp=group, day=day.isoformat(), kind=kind,
                                             started=now or utc_now(), status=status, note=note))

    def finish_run(self, run_id: str, *, status: str, now: datetime | None = None,
                   note: str | None = None, **counts: int) -> None:
        with self.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == run_id).values(
                finished=now or utc_now(), status=status, note=note, **counts))

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        q = select(runs).order_by(runs.c.started.desc(), runs.c.id.desc()).limit(limit)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


def _fingerprint(secret: str) -> str:
    # A plain hash is enough: whoever can read this table can also read the
    # fallback signing secret kept in clear in the meta table beside it.
    return hashlib.sha256(b"digest retired secret\0" + secret.encode()).hexdigest()
