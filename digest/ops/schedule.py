"""`digest run`: the daemon. APScheduler 3.11 (one scheduler process) fires the
daily cycle for each time-zone group at the configured local time.

- One cron job per group: subscribers with their own `timezone` get the digest
  at the same local hour (Tokyo at 07:00 Tokyo time). Cron in the group's zone
  keeps the local hour across daylight-saving changes.
- Jobs persist in the project's SQLite file, so downtime is noticed: APScheduler
  runs a missed job once (coalesced) and `decide` then applies the grace time.
  The delivery journal, not the scheduler, is what makes a rerun harmless.
- One daemon per database (DaemonLock); SIGTERM/SIGINT finish in-flight SMTP
  transactions and exit 0; SIGHUP or an edit to config.toml or subscribers/
  reloads without a restart.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import click
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from digest import config as configuration
from digest import lifecycle, pipeline, runlog
from digest.config import Config
from digest.errors import DigestError
from digest.ops import approval
from digest.ops.lock import DaemonLock

log = logging.getLogger(__name__)

JOB_PREFIX = "digest:"
LOOKBACK = timedelta(days=8)  # a weekly schedule's previous run is at most 7 days back


# -- pure schedule logic (tested with an injected clock) ----------------------

def zone(config: Config, group: str) -> ZoneInfo:
    return ZoneInfo(group) if group else config.tz


def trigger(config: Config, group: str = "") -> CronTrigger:
    sched = config.schedule
    return CronTrigger(day_of_week=",".join(sched.days), hour=sched.hour, minute=sched.minute,
                       second=sched.second, timezone=zone(config, group))


def next_run(config: Config, after: datetime, group: str = "") -> datetime | None:
    fire: datetime | None = trigger(config, group).get_next_fire_time(None, after)
    return fire


def previous_run(config: Config, now: datetime, group: str = "") -> datetime | None:
    """The latest scheduled time at or before ``now``."""
    trig = trigger(config, group)
    fire: datetime | None = trig.get_next_fire_time(None, now - LOOKBACK)
    last = None
    while fire is not None and fire <= now:
        last = fire
        fire = trig.get_next_fire_time(fire, fire + timedelta(seconds=1))
    return last


@dataclass(frozen=True)
class Decision:
    run: bool
    scheduled: datetime | None
    late: timedelta
    reason: str


def decide(config: Config, group: str, now: datetime) -> Decision:
    """Should a job firing at ``now`` send? Only if its scheduled time is within the grace."""
    scheduled = previous_run(config, now, group)
    if scheduled is None:
        return Decision(False, None, timedelta(0), "no scheduled run in the last week")
    late = now - scheduled
    grace = timedelta(minutes=config.schedule.misfire_grace_minutes)
    if late > grace:
        return Decision(False, scheduled, late,
                        f"the {scheduled.isoformat()} run was missed by {_human(late)} "
                        f"(grace {_human(grace)}): skipped")
    return Decision(True, scheduled, late, "on time" if late < timedelta(minutes=1)
                    else f"{_human(late)} late, within the grace")


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def groups(config: Config) -> dict[str, int]:
    """Time-zone groups of the active subscribers, with head counts. "" is the default zone."""
    roster = pipeline.load_roster(config)
    counts = Counter(pipeline.group_of(config, p) for p in roster.active())
    counts.setdefault("", 0)
    return dict(sorted(counts.items()))


def group_label(config: Config, group: str) -> str:
    return group or config.schedule.timezone


@dataclass(frozen=True)
class Planned:
    group: str
    zone: str
    subscribers: int
    next_local: datetime | None

    def as_json(self) -> dict[str, Any]:
        return {
            "group": self.zone,
            "default": self.group == "",
            "subscribers": self.subscribers,
            "next_run_local": self.next_local.isoformat() if self.next_local else None,
            "next_run_utc": (self.next_local.astimezone(UTC).isoformat()
                             if self.next_local else None),
        }


def plan(config: Config, now: datetime) -> list[Planned]:
    """What `digest schedule` shows: each group's next run."""
    out = [Planned(g, group_label(config, g), n, next_run(config, now, g))
           for g, n in groups(config).items()]
    return sorted(out, key=lambda p: p.next_local or datetime.max.replace(tzinfo=UTC))


# -- the job -------------------------------------------------------------------

def run_group(config_path: str, group: str, now: datetime | None = None) -> None:
    """The scheduled job (module-level: the job store keeps a reference to it).

    It re-reads the config every time, so an edit takes effect at the next run
    even without a reload.
    """
    run_id = runlog.new_run_id()
    with runlog.run_context(run_id):
        try:
            config = configuration.load(Path(config_path))
            now = now or pipeline.utcnow()
            decision = decide(config, group, now)
            label = group_label(config, group)
            if not decision.run:
                log.warning("group %s: %s", label, decision.reason)
                _record_skip(config, run_id, group, now, decision.reason)
                return
            if not approval.admit(config, group, now, run_id):
                return  # held for the desk's approval (check_holds looks again), or skipped
            log.info("group %s: run starts (%s)", label, decision.reason)
            send_now(config, group, now)
        except lifecycle.Stopping:
            log.warning("group %s: stopped by signal; the rest stays pending for the next run",
                        group or "default")
        except DigestError as e:
            # One group's bad day must not stop the others or the daemon.
            log.error("group %s: run failed: %s", group or "default", e)
        except Exception:
            log.exception("group %s: run crashed (a bug; please report it)", group or "default")


def send_now(config: Config, group: str, now: datetime) -> None:
    """The group's cycle, now: collect, rank, render, send (and say how it went)."""
    from digest.send import deliver as sender

    label = group_label(config, group)
    report = pipeline.run_once(config, now=now, password=sender.smtp_password(config),
                               group=group, kind="scheduled")
    if report.nothing_new:
        log.info("group %s: nothing new since the last digest; no email", label)
    else:
        s = report.send
        log.info("group %s: sent %d of %d, %d deferred, %d failed", label, s.sent,
                 s.total, s.deferred, s.failed)


def _record_skip(config: Config, run_id: str, group: str, now: datetime, why: str) -> None:
    store = pipeline.open_store(config)
    try:
        store.start_run(run_id, group=group_label(config, group),
                        day=pipeline.today(config, now, group), kind="scheduled", now=now)
        store.finish_run(run_id, status="skipped", note=why, now=now)
    finally:
        store.close()


# -- the daemon ----------------------------------------------------------------

class Daemon:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.config_path = str(config.path)
        self.reload_requested = threading.Event()
        self.stop_requested = threading.Event()
        # One worker: groups run one after another, so two runs never race to
        # freeze the same day's digest.
        self.scheduler = BackgroundScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=f"sqlite:///{config.db_path}",
                                                     tablename="apscheduler_jobs")},
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"coalesce": True, "max_instances": 1,
                          # Always run a missed job (once); `decide` applies the
                          # configured grace so the rule lives in one tested place.
                          "misfire_grace_time": None},
            timezone=config.tz,
        )

    def reconcile(self) -> None:
        """Make the stored jobs match the config: one per group, with its trigger."""
        wanted = {f"{JOB_PREFIX}{g or 'default'}": g for g in groups(self.config)}
        for job in self.scheduler.get_jobs():
            if job.id.startswith(JOB_PREFIX) and job.id not in wanted:
                log.info("removing job %s (no subscribers in that zone any more)", job.id)
                job.remove()
        for job_id, group in wanted.items():
            trig = trigger(self.config, group)
            job = self.scheduler.get_job(job_id)
            if job is not None and repr(job.trigger) == repr(trig) and \
                    job.args == (self.config_path, group):
                continue  # keep its stored next run time: that is how misfires are seen
            self.scheduler.add_job(run_group, trig, args=[self.config_path, group], id=job_id,
                                   name=f"daily {group_label(self.config, group)}",
                                   replace_existing=True)
            if job is None:
                self._catch_up(group)
        self._watch_holds()

    def _watch_holds(self) -> None:
        # Held runs (approval = "required") are looked at on a short interval by a job
        # of their own: the one worker thread never waits inside a run.
        job = self.scheduler.get_job(approval.JOB_ID)
        if self.config.schedule.approval != "required":
            if job is not None:
                job.remove()
            return
        if job is None:
            self.scheduler.add_job(approval.check_holds, IntervalTrigger(
                seconds=approval.APPROVAL_POLL), args=[self.config_path], id=approval.JOB_ID,
                name="approval check", replace_existing=True)

    def _catch_up(self, group: str) -> None:
        """A new job only looks forward; if today's run time has just passed (within
        the grace), run it now, once. The journal makes this harmless if it already ran."""
        decision = decide(self.config, group, datetime.now(UTC))
        if decision.run:
            log.warning("group %s: scheduled run at %s not done yet (%s): running it now",
                        group_label(self.config, group),
                        decision.scheduled.isoformat() if decision.scheduled else "?",
                        decision.reason)
            self.scheduler.add_job(run_group, args=[self.config_path, group],
                                   id=f"catchup:{group or 'default'}", replace_existing=True)

    def reload(self) -> None:
        try:
            config = configuration.load(Path(self.config_path))
            pipeline.load_roster(config)
        except DigestError as e:
            log.error("reload failed, keeping the running config: %s", e)
            return
        self.config = config
        self.reconcile()
        log.warning("reloaded %s", self.config_path)
        self.print_plan()

    def print_plan(self) -> None:
        now = datetime.now(UTC)
        for p in plan(self.config, now):
            when = p.next_local.isoformat() if p.next_local else "never"
            click.echo(f"next run for {p.zone} ({p.subscribers} subscribers): {when}")

    def _watch(self) -> None:
        from watchfiles import watch

        paths = [self.config.path, self.config.subscribers_dir]
        for _changes in watch(*paths, stop_event=self.stop_requested, debounce=500,
                              raise_interrupt=False):
            self.reload_requested.set()

    def run(self) -> None:
        # Create/upgrade the schema first, before the lock file: a damaged database
        # is one line and exit 2, with nothing new left beside it.
        pipeline.open_store(self.config).close()
        with DaemonLock(self.config.db_path):
            self.scheduler.start(paused=True)
            self.reconcile()
            self.print_plan()
            self.scheduler.resume()
            self._install_signals()
            threading.Thread(target=self._watch, name="digest-watch", daemon=True).start()
            click.echo("digest daemon running; Ctrl-C to stop")
            while not self.stop_requested.wait(0.5):
                if self.reload_requested.is_set():
                    self.reload_requested.clear()
                    self.reload()
            click.echo("stopping: letting in-flight messages finish…")
            lifecycle.request_stop()
            self.scheduler.shutdown(wait=True)
        click.echo("digest daemon stopped")

    def _install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            self.stop_requested.set()

        def hup(signum: int, _frame: FrameType | None) -> None:
            self.reload_requested.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, hup)


def run_daemon(config: Config) -> None:
    Daemon(config).run()
