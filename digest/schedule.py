"""`digest run`: APScheduler (3.11, one scheduler process) fires the daily cycle
at the configured local time."""

from __future__ import annotations

import contextlib
import logging
import signal
from datetime import datetime
from types import FrameType

import click
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import Config
from digest.errors import DigestError

log = logging.getLogger(__name__)


def trigger(config: Config) -> CronTrigger:
    sched = config.schedule
    return CronTrigger(day_of_week=",".join(sched.days), hour=sched.hour, minute=sched.minute,
                       second=sched.second, timezone=config.tz)


def next_run(config: Config, after: datetime) -> datetime | None:
    fire: datetime | None = trigger(config).get_next_fire_time(None, after)
    return fire


def _job(config: Config) -> None:
    from digest.runner import run_now

    try:
        run_now(config)
    except DigestError as e:
        # One bad day must not kill the daemon; the next run may well succeed.
        log.error("daily run failed: %s", e)
    except Exception:
        log.exception("daily run crashed (a bug; please report it)")


def run_daemon(config: Config) -> None:
    # The default misfire grace (1 s) would silently skip a run delayed by a
    # slow start; coalesce so a long outage sends once, not once per missed day.
    scheduler = BlockingScheduler(timezone=config.tz)
    grace = config.schedule.misfire_grace_minutes * 60
    scheduler.add_job(_job, trigger(config), args=[config], id="daily", coalesce=True,
                      misfire_grace_time=grace or None, max_instances=1)

    def stop(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current run, then stopping", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    nxt = next_run(config, datetime.now(config.tz))
    click.echo(f"digest daemon: next run {nxt.isoformat() if nxt else 'never'} "
               f"({config.schedule.timezone}); Ctrl-C to stop")
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
    click.echo("digest daemon stopped")
