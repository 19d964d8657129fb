"""`digest bounces` and `digest bounces fetch`: what bounced or was reported as spam,
and reading those reports from a Maildir. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the bounces as JSON.")
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True,
              help="How many days back, today included (UTC).")
@click.pass_context
@user_errors
def bounces(ctx: click.Context, as_json: bool, days: int) -> None:
    """List recent bounces and complaints, and whether each address is suppressed.
    Read new reports with `digest bounces fetch --maildir DIR`.

    \b
    Example:
      digest bounces
      digest bounces --days 30 --json | jq '.[] | select(.kind == "complaint")'

    \b
    Exit codes:
      0  shown (none yet too)
      2  config.toml or the database cannot be used, or a bad option
    """
    if ctx.invoked_subcommand is not None:
        return
    from digest.ops import bounces as ops

    obj = ctx.find_object(Ctx)
    assert obj is not None
    rows = ops.recent(obj.config, days)
    if as_json:
        report.print_json(rows)
        return
    if not rows:
        report.console.print(f"no bounces or complaints in {days} days")
        return
    columns = [report.Column("received (UTC)", whole=True), report.Column("address", whole=True),
               report.Column("kind"), report.Column("status"),
               report.Column("suppressed", drop=1), report.Column("diagnostic", drop=2)]
    report.console.print(report.table(
        f"Bounces and complaints, last {days} days", columns,
        [(r["received_at"][:16].replace("T", " "), r["address"], r["kind"], r["status"],
          "yes" if r["suppressed"] else "no", r["diagnostic"]) for r in rows]))


@bounces.command("fetch")
@click.option("--maildir", "folder", required=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="The Maildir the bounce address delivers to.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@pass_ctx
@user_errors
def fetch(obj: Ctx, folder: Path, as_json: bool) -> None:
    """Read every unseen message of a Maildir (new/ and cur/): record its bounces and
    complaints, suppress what must not be mailed again, and mark it seen (cur/, S).

    A hard bounce (5.x.x) or a complaint suppresses the address at once; soft ones
    after [bounces] soft_limit within window_days. Reports about an address digest
    did not mail within window_days are ignored.

    \b
    Example:
      digest bounces fetch --maildir ~/Maildir/.bounces

    \b
    Exit codes:
      0  read (ignored or unreadable reports too: the summary counts them)
      1  the folder is not a Maildir
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops import bounces as ops

    done = ops.fetch_maildir(obj.config, folder)
    if as_json:
        report.print_json(done.as_json())
    else:
        click.echo(report.safe(done.line()))
