"""`digest run`, `schedule`, `status` and `demo`: the daemon and one cycle, what
runs when, what happened, and the bundled demo day. Heavy imports stay inside the
commands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors


@cli.command()
@click.option("--once", is_flag=True, help="Run one full cycle now and exit.")
@pass_ctx
@user_errors
def run(obj: Ctx, once: bool) -> None:
    """Run the daily digest: collect, rank, render and send on schedule.

    \b
    Example:
      digest run            # daemon: fires at [schedule] time in its time zone
      digest run --once     # one full cycle now

    \b
    Exit codes:
      0  --once: the cycle ran; the daemon: stopped by SIGTERM or Ctrl-C
      1  a recipient failed permanently, a template error, the SMTP server
         unreachable, or another daemon already runs on this database
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.runner import run_now
    from digest.ops.schedule import run_daemon

    if once:
        run_now(obj.config)
    else:
        run_daemon(obj.config)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the groups as JSON.")
@pass_ctx
@user_errors
def schedule(obj: Ctx, as_json: bool) -> None:
    """Show the next run of every time-zone group, in local time and UTC.

    \b
    Example:
      digest schedule
      digest schedule --json | jq '.[].next_run_utc'

    \b
    Exit codes:
      0  shown
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops import status

    if as_json:
        report.print_json(status.schedule_rows(obj.config))
    else:
        status.print_schedule(obj.config)


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Show that day's delivery journal instead of the runs.")
@click.option("--limit", type=int, default=20, show_default=True, help="How many runs.")
@pass_ctx
@user_errors
def status_cmd(obj: Ctx, as_json: bool, day: Any, limit: int) -> None:
    """List recent runs (collected, selected, sent, deferred, failed), or a day's journal,
    and the day's bounce and complaint rates (warned above 2% and 0.1%, on stderr).

    \b
    Example:
      digest status
      digest status --day 2026-11-27 --json

    \b
    Exit codes:
      0  shown (nothing yet too: it says what to run)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops import status

    if day is not None:
        rows = status.journal_rows(obj.config, day.date())
        if as_json:
            report.print_json(rows)
        else:
            status.print_journal(day.date(), rows)
        status.print_rates(status.bounce_rates(obj.config, day.date()), as_json=as_json)
        return
    runs = status.run_rows(obj.config, limit)
    status.warn_subscriber_files(obj.config)
    if as_json:
        report.print_json(runs)
    else:
        status.print_runs(runs)
    status.print_rates(status.bounce_rates(obj.config, datetime.now(UTC).date()),
                       as_json=as_json)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              default=Path("var/demo"), show_default=True, help="Fresh folder for the demo.")
@pass_ctx
@user_errors
def demo(obj: Ctx, out_dir: Path) -> None:
    """Run the whole day end to end on the bundled feeds, mailing a local catcher.

    \b
    Example:
      digest demo          # what `make demo` runs

    \b
    Exit codes:
      0  the demo day was delivered to its catcher
      1  a problem one error line names
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.demo import run_demo

    run_demo(obj.config, out_dir)
