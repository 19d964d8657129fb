"""Approval before sending (`[schedule] approval = "required"`).

A scheduled run asks ``admit`` before it collects and freezes anything. Unapproved,
the run is *held*: a row in the store (desk_holds) and a run row with status
"waiting" that `digest status` shows ("waiting for approval since 06:30"), and the
job returns at once. The scheduler's one worker thread is never blocked: the daemon's
``check_holds`` job looks again every APPROVAL_POLL seconds and releases the run when
`digest desk approve` was recorded, or when the deadline passed (``on_deadline``:
send anyway, or skip the day). Holds live in the database, so a restarted daemon
picks them up. Every time here comes from the caller (``now``): tests inject it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

from digest import config as configuration
from digest import lifecycle, pipeline, runlog
from digest.config import Config
from digest.errors import DigestError
from digest.store.facade import Store

log = logging.getLogger(__name__)

APPROVAL_POLL = 30  # seconds between the daemon's looks at held runs
JOB_ID = "desk:approval"


@dataclass(frozen=True)
class Gate:
    action: Literal["send", "wait", "skip"]
    reason: str


def deadline(config: Config, group: str, day: date) -> datetime:
    """When an unapproved edition stops waiting: the deadline on its day, in its
    group's zone; without one, the end of its day."""
    tz = ZoneInfo(group) if group else config.tz
    hhmm = config.schedule.approval_deadline
    if not hhmm:
        return datetime.combine(day + timedelta(days=1), dtime(0), tz)
    return datetime.combine(day, dtime.fromisoformat(hhmm), tz)


def gate(config: Config, store: Store, group: str, day: date, now: datetime) -> Gate:
    """May the group's edition for ``day`` go out at ``now``?"""
    if config.schedule.approval != "required":
        return Gate("send", "no approval required")
    approved = store.approval(day, group)
    if approved is not None and approved.at is not None:
        return Gate("send", f"approved by {approved.by} at "
                            f"{approved.at.astimezone(config.tz):%H:%M}")
    due = deadline(config, group, day)
    if now >= due:
        action = config.schedule.on_deadline
        return Gate(action, f"not approved by the deadline ({due:%H:%M}): "
                            f"{'sent anyway' if action == 'send' else 'skipped'} (on_deadline)")
    return Gate("wait", f"waiting for approval until {due:%H:%M}")


def admit(config: Config, group: str, now: datetime, run_id: str) -> bool:
    """True when the group's run may go on now; otherwise it is held or skipped,
    recorded for `digest status`, and False."""
    label = group or config.schedule.timezone
    day = pipeline.today(config, now, group)
    store = pipeline.open_store(config)
    try:
        g = gate(config, store, group, day, now)
        held = store.held(day, group)
        if g.action == "wait":
            if held is None:
                since = store.hold(day, group, now, run=run_id)
                local = since.astimezone(ZoneInfo(group) if group else config.tz)
                store.start_run(run_id, group=label, day=day, kind="scheduled", now=now,
                                status="waiting",
                                note=f"waiting for approval since {local:%H:%M}")
                log.warning("group %s: waiting for approval since %s (%s; `digest desk "
                            "approve`)", label, f"{local:%H:%M}", g.reason)
            return False
        if held is not None and held["released"] is None:
            approved = store.approval(day, group) is not None
            store.release(day, group, "approved" if approved else f"deadline-{g.action}", now)
            store.finish_run(held["run"], status="skipped" if g.action == "skip" else "released",
                             note=g.reason, now=now)
        elif g.action == "skip":
            store.start_run(run_id, group=label, day=day, kind="scheduled", now=now)
            store.finish_run(run_id, status="skipped", note=g.reason, now=now)
        log.log(logging.WARNING if g.action == "skip" else logging.INFO, "group %s: %s",
                label, g.reason)
        return g.action == "send"
    finally:
        store.close()


def check_holds(config_path: str, now: datetime | None = None) -> None:
    """The daemon's job: release each held run that may go now (module-level: the job
    store keeps a reference to it)."""
    from digest.ops.schedule import send_now

    config = configuration.load(Path(config_path))
    now = now or pipeline.utcnow()
    store = pipeline.open_store(config)
    try:
        holds = store.waiting()
    finally:
        store.close()
    for hold in holds:
        group, day = hold["grp"], date.fromisoformat(hold["day"])
        with runlog.run_context(runlog.new_run_id()):
            try:
                if day != pipeline.today(config, now, group):
                    _day_ended(config, hold, now)
                elif admit(config, group, now, hold["run"]):
                    send_now(config, group, now)
            except lifecycle.Stopping:
                return
            except DigestError as e:
                log.error("group %s: held run failed: %s", group or "default", e)


def _day_ended(config: Config, hold: dict[str, object], now: datetime) -> None:
    # A held edition never goes out on a later day: that day has its own edition.
    why = "its day ended before approval: skipped"
    store = pipeline.open_store(config)
    try:
        store.release(date.fromisoformat(str(hold["day"])), str(hold["grp"]), "day-ended", now)
        store.finish_run(str(hold["run"]), status="skipped", note=why, now=now)
    finally:
        store.close()
    log.warning("group %s: %s", hold["grp"] or config.schedule.timezone, why)
