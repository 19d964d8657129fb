"""`digest subscribers ...`: list, add, remove, check, pause, resume, unsubscribe,
resubscribe, import and export the subscriber files. The work and its messages
are in digest.subscribers.commands; heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors


@cli.group()
def subscribers() -> None:
    """List and edit the subscriber files under subscribers/."""


@subscribers.command("list")
@click.option("--status", type=click.Choice(["active", "paused", "unsubscribed"]))
@click.option("--topic", help="Only subscribers of this topic.")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
@user_errors
def list_(obj: Ctx, status: str | None, topic: str | None, as_json: bool) -> None:
    """List subscribers.

    \b
    Example:
      digest subscribers list --status active --json

    \b
    Exit codes:
      0  listed (none too: it says what to run)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    people = cmd.people(obj.config, status, topic)
    if as_json:
        report.print_json([report.subscriber_json(p) for p in people])
    else:
        report.subscribers_table(people, filtered=bool(status or topic))


@subscribers.command("add")
@click.argument("email")
@click.option("--name", default="")
@click.option("--topics", default="", help="Comma-separated topics.")
@click.option("--timezone", default=None, help="IANA time zone, e.g. Asia/Tokyo.")
@click.option("--list", "list_name", default=None, help="List file (subscribers/<list>.toml).")
@click.option("--format", "fmt", type=click.Choice(["html", "text"]), default="html",
              show_default=True, help="html (with a text part) or text only.")
@pass_ctx
@user_errors
def add(obj: Ctx, email: str, name: str, topics: str, timezone: str | None,
                    list_name: str | None, fmt: str) -> None:
    """Add a subscriber (comments and order in the file are kept).

    \b
    Example:
      digest subscribers add lin@example.org --name "Lin" --topics tech,science

    \b
    Exit codes:
      0  added
      1  a bad address, time zone or topic, or already subscribed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.add(obj.config, email, name=name, topics=topics, timezone=timezone,
            list_name=list_name, fmt=fmt)


@subscribers.command("remove")
@click.argument("email")
@pass_ctx
@user_errors
def remove(obj: Ctx, email: str) -> None:
    """Remove a subscriber's entries from every file (an unsubscribe is kept separately).

    \b
    Example:
      digest subscribers remove lin@example.org

    \b
    Exit codes:
      0  removed
      1  the address is in no subscriber file
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.remove(obj.config, email)


@subscribers.command("check")
@click.option("--fix", is_flag=True,
              help="Write unsubscribes the database has but a file does not show yet.")
@pass_ctx
@user_errors
def check(obj: Ctx, fix: bool) -> None:
    """Check every subscriber file; list every problem (file:line) and exit 1 if any.

    Also lists drift: an address unsubscribed in the database but still active or
    paused in a file. --fix writes those unsubscribes into the files (comments kept).

    \b
    Example:
      digest subscribers check
      digest subscribers check --fix

    \b
    Exit codes:
      0  no problems (notes may be printed; with --fix: all drift repaired)
      1  at least one problem
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.check(obj.config, fix=fix)


@subscribers.command("pause")
@click.argument("email")
@pass_ctx
@user_errors
def pause(obj: Ctx, email: str) -> None:
    """Pause a subscriber: no digests until resumed.

    \b
    Example:
      digest subscribers pause lin@example.org

    \b
    Exit codes:
      0  paused
      1  the address is in no subscriber file
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.set_status(obj.config, email, "paused")


@subscribers.command("resume")
@click.argument("email")
@pass_ctx
@user_errors
def resume(obj: Ctx, email: str) -> None:
    """Resume a paused subscriber (not one who unsubscribed: see resubscribe).

    \b
    Example:
      digest subscribers resume lin@example.org

    \b
    Exit codes:
      0  active again
      1  the address is in no subscriber file, or it unsubscribed
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.set_status(obj.config, email, "active")


@subscribers.command("unsubscribe")
@click.argument("email")
@pass_ctx
@user_errors
def unsubscribe(obj: Ctx, email: str) -> None:
    """Unsubscribe an address now (e.g. a reply to the mailto link): suppressed for good.

    \b
    Example:
      digest subscribers unsubscribe lin@example.org

    \b
    Exit codes:
      0  unsubscribed (or was already)
      1  not an e-mail address
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.unsubscribe(obj.config, email)


@subscribers.command("resubscribe")
@click.argument("email")
@pass_ctx
@user_errors
def resubscribe(obj: Ctx, email: str) -> None:
    """Lift an unsubscribe, with the subscriber's consent: mail them again.

    \b
    Example:
      digest subscribers resubscribe lin@example.org

    \b
    Exit codes:
      0  the suppression is lifted (or there was none)
      1  not an e-mail address
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.resubscribe(obj.config, email)


@subscribers.command("import")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Show what would be imported; write nothing.")
@click.option("--list", "list_name", default=None, help="List file (subscribers/<list>.toml).")
@pass_ctx
@user_errors
def import_(obj: Ctx, source: Path, dry_run: bool, list_name: str | None) -> None:
    """Import subscribers from a CSV file (any common header names, separators, BOM).

    \b
    Example:
      digest subscribers import people.csv --dry-run
      digest subscribers import people.csv --list newsletter

    \b
    Exit codes:
      0  imported (or, with --dry-run, checked)
      1  a row has a problem (listed)
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.import_csv(obj.config, source, dry_run=dry_run, list_name=list_name)


@subscribers.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv",
              show_default=True)
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file instead of standard output.")
@pass_ctx
@user_errors
def export(obj: Ctx, fmt: str, out: Path | None) -> None:
    """Export every subscriber (lists merged, unsubscribes applied) as CSV or JSON.

    \b
    Example:
      digest subscribers export --format json > subscribers.json

    \b
    Exit codes:
      0  exported
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.subscribers import commands as cmd

    cmd.export(obj.config, fmt, out)
