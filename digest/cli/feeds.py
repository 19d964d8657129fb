"""`digest collect` and `digest feeds`: fetch the feeds, and show their health.
Heavy imports stay inside the commands (tests/test_cli_startup.py)."""

from __future__ import annotations

import click

from digest import console as report
from digest import runlog
from digest.cli.base import Ctx, cli, pass_ctx, user_errors
from digest.errors import DigestError


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print per-feed results as JSON.")
@pass_ctx
@user_errors
def collect(obj: Ctx, as_json: bool) -> None:
    """Fetch every configured feed and store the new articles.

    \b
    Example:
      digest collect
      digest collect --json | jq '.[] | select(.status == "error")'

    \b
    Exit codes:
      0  collected (some feeds may have failed: one warning line names them)
      1  every feed failed, or another problem (one error line says which)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest import pipeline

    config = obj.config
    store = pipeline.open_store(config)
    # The table (or the JSON) shows each feed's error: the log line would repeat it.
    with runlog.without_feed_errors(), report.Progress(
            "collecting", len(config.feeds), enabled=not as_json) as bar:
        results = pipeline.collect(config, store, now=pipeline.utcnow(), on_result=bar.advance)
    if as_json:
        report.print_json([r.as_json() for r in results])
    else:
        report.feeds_table(results)
    failed = report.failed_feeds_line(results)
    if results and all(r.status == "error" for r in results):
        raise DigestError(f"all {len(results)} feeds failed",
                          hint="errors above; each feed's history: digest feeds")
    if failed:
        click.echo(f"warning: {report.safe(failed)}", err=True)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the feeds' health as JSON.")
@click.option("--revive", metavar="URL|NAME", help="Fetch a gone or waiting feed again.")
@pass_ctx
@user_errors
def feeds(obj: Ctx, as_json: bool, revive: str | None) -> None:
    """Show each feed's health: last success, last error, failures, moved or gone.

    \b
    Example:
      digest feeds
      digest feeds --json | jq '.[] | select(.failures > 2)'
      digest feeds --revive https://example.org/feed.xml

    \b
    Exit codes:
      0  shown (failing feeds too: the table says which)
      1  --revive names no configured feed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest import pipeline
    from digest.collect import health as feedhealth

    config = obj.config
    store = pipeline.open_store(config)
    if revive:
        click.echo(feedhealth.revive(config, store, revive))
        return
    rows = feedhealth.feed_health(config, store, now=pipeline.utcnow())
    if as_json:
        report.print_json([r.as_json() for r in rows])
    else:
        feedhealth.print_table(rows, report.console)
