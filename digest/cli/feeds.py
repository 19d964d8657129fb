"""`digest collect` and `digest feeds`: fetch the feeds, and show their health.
Heavy imports stay inside the commands (tests/test_cli_startup.py)."""

from __future__ import annotations

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors


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
    from digest.ops import feeds as ops

    results = ops.collect_now(obj.config, progress=not as_json)
    if as_json:
        report.print_json([r.as_json() for r in results])
    else:
        report.feeds_table(results)
    failed = ops.failure_warning(results)
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
    from digest.collect.health import print_table
    from digest.ops import feeds as ops

    if revive:
        click.echo(ops.revive(obj.config, revive))
        return
    rows = ops.health(obj.config)
    if as_json:
        report.print_json([r.as_json() for r in rows])
    else:
        print_table(rows, report.console)
