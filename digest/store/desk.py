"""The desk: the editor's changes to one day's edition (``Edit`` rows, with who and
when), the day's approval, and the scheduled runs held until it (`digest desk`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update

from digest.models import Edit
from digest.store.base import Base, utc_now
from digest.store.schema import deliveries, desk_edits, desk_holds, digests


class Desk(Base):
    def add_edit(self, edit: Edit) -> int:
        with self.begin() as conn:
            row = conn.execute(insert(desk_edits).values(
                day=edit.day.isoformat(), grp=edit.group, kind=edit.kind, story=edit.story,
                anchor=edit.anchor, members=json.dumps(list(edit.members)), text=edit.text,
                position=edit.position, by=edit.by, at=edit.at or utc_now()))
            key = row.inserted_primary_key
            assert key is not None
            return int(key[0])

    def edits(self, day: date, group: str = "", *, cleared: bool = False) -> list[Edit]:
        """The day's edits in the order they were made; with ``cleared`` also the
        ones a reset undid (and the resets themselves), for the log."""
        c = desk_edits.c
        q = select(desk_edits).where(c.day == day.isoformat(), c.grp == group)
        if not cleared:
            q = q.where(c.cleared.is_(None), c.kind.not_in(("reset",)))
        with self.begin() as conn:
            rows = conn.execute(q.order_by(c.id)).mappings().all()
        return [_edit(r) for r in rows]

    def log_rows(self, day: date, group: str = "") -> list[dict[str, Any]]:
        c = desk_edits.c
        q = select(desk_edits).where(c.day == day.isoformat(), c.grp == group).order_by(c.id)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def clear_edits(self, day: date, group: str, ids: Sequence[int], reset: Edit) -> int:
        """Mark edits undone and record the reset that did it, in one transaction."""
        c = desk_edits.c
        at = reset.at or utc_now()
        with self.begin() as conn:
            done = conn.execute(update(desk_edits).where(
                c.day == day.isoformat(), c.grp == group, c.id.in_(list(ids)),
                c.cleared.is_(None)).values(cleared=at)).rowcount
            conn.execute(insert(desk_edits).values(
                day=day.isoformat(), grp=group, kind="reset", story=reset.story,
                anchor=reset.anchor, members="[]", text=reset.text, by=reset.by, at=at,
                cleared=None))
        return int(done)

    def approval(self, day: date, group: str = "") -> Edit | None:
        c = desk_edits.c
        q = select(desk_edits).where(c.day == day.isoformat(), c.grp == group,
                                     c.kind == "approve").order_by(c.id).limit(1)
        with self.begin() as conn:
            row = conn.execute(q).mappings().first()
        return None if row is None else _edit(row)

    def sending_began(self, day: date, group: str = "") -> datetime | None:
        """When the group's edition was frozen (or, lacking that, its deliveries
        planned): from then on what goes out is fixed and edits are refused."""
        name = digests.c.variant
        mine = name.like(f"{_escape(group)}|%", escape="\\") if group else name.not_like("%|%")
        with self.begin() as conn:
            when = conn.execute(select(func.min(digests.c.created)).where(
                digests.c.day == day.isoformat(), mine)).scalar()
            if when is None and not group:
                when = conn.execute(select(func.min(deliveries.c.updated)).where(
                    deliveries.c.day == day.isoformat())).scalar()
        if isinstance(when, str):  # plain func.min bypasses the column's type
            when = datetime.fromisoformat(when)
        return when

    # -- runs held for approval ---------------------------------------------------
    def hold(self, day: date, group: str, now: datetime, run: str = "") -> datetime:
        """Record that the group's run for ``day`` waits for approval; since when."""
        with self.begin() as conn:
            conn.execute(self.dialect.insert(desk_holds).values(
                day=day.isoformat(), grp=group, since=now, run=run).on_conflict_do_nothing())
            since = conn.execute(select(desk_holds.c.since).where(
                desk_holds.c.day == day.isoformat(), desk_holds.c.grp == group)).scalar_one()
        assert isinstance(since, datetime)
        return since

    def release(self, day: date, group: str, outcome: str, now: datetime) -> None:
        c = desk_holds.c
        with self.begin() as conn:
            conn.execute(update(desk_holds).where(
                c.day == day.isoformat(), c.grp == group, c.released.is_(None)).values(
                released=now, outcome=outcome))

    def waiting(self) -> list[dict[str, Any]]:
        """Runs held for approval and not released (day, grp, since, run), oldest first."""
        c = desk_holds.c
        q = select(desk_holds).where(c.released.is_(None)).order_by(c.since)
        with self.begin() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def held(self, day: date, group: str = "") -> dict[str, Any] | None:
        c = desk_holds.c
        with self.begin() as conn:
            row = conn.execute(select(desk_holds).where(
                c.day == day.isoformat(), c.grp == group)).mappings().first()
        return None if row is None else dict(row)


def _edit(r: Any) -> Edit:
    return Edit(kind=r["kind"], day=date.fromisoformat(r["day"]), group=r["grp"],
                story=r["story"], anchor=r["anchor"], members=tuple(json.loads(r["members"])),
                text=r["text"], position=r["position"], by=r["by"], at=r["at"], id=r["id"])


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
