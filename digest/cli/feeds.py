"""`digest collect` and `digest feeds`: fetch the feeds, show their health, and add,
remove, import and export them (the work is in digest.ops.feedlist).
Heavy imports stay inside the commands (tests/test_cli_startup.py)."""

from __future__ import annotations

from pathlib import Path

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


@cli.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print the feeds' health as JSON.")
@click.option("--revive", metavar="URL|NAME", help="Fetch a gone or waiting feed again.")
@click.pass_context
@user_errors
def feeds(ctx: click.Context, as_json: bool, revive: str | None) -> None:
    """Show each feed's health: last success, last error, failures, moved or gone.
    Add, remove, import and export feeds with the commands below (config.toml keeps
    its comments).

    \b
    Example:
      digest feeds
      digest feeds --json | jq '.[] | select(.failures > 2)'
      digest feeds --revive https://example.org/feed.xml
      digest feeds add https://example.org/

    \b
    Exit codes:
      0  shown (failing feeds too: the table says which)
      1  --revive names no configured feed
      2  config.toml or the database cannot be used, or a bad option
    """
    if ctx.invoked_subcommand is not None:
        return
    from digest.collect.health import print_table
    from digest.ops import feeds as ops

    obj = ctx.find_object(Ctx)
    assert obj is not None
    if revive:
        click.echo(ops.revive(obj.config, revive))
        return
    rows = ops.health(obj.config)
    if as_json:
        report.print_json([r.as_json() for r in rows])
    else:
        print_table(rows, report.console)


@feeds.command("add")
@click.argument("url")
@click.option("--name", default=None, help="The outlet's name (default: the feed's title).")
@click.option("--weight", type=click.FloatRange(min=0), default=None,
              help="Source weight in the score (default 1.0, neutral).")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="A topic every article of the feed belongs to (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print what was added as JSON.")
@pass_ctx
@user_errors
def add(obj: Ctx, url: str, name: str | None, weight: float | None, topics: tuple[str, ...],
        as_json: bool) -> None:
    """Add a feed, or the feed a site's page names, to config.toml.

    URL is the feed's address, or a page naming its feed in <link rel="alternate">
    (the first RSS/Atom one; the others are listed). The feed is fetched once to
    check that it reads; its title names it unless --name does. Comments and layout
    of config.toml are kept.

    \b
    Example:
      digest feeds add https://example.org/
      digest feeds add https://example.org/feed.xml --name "Example" --topic tech
      digest feeds add https://example.org/ --json | jq .items

    \b
    Exit codes:
      0  added
      1  not a feed (or a page naming none), unreachable, already listed, unknown topic
      2  config.toml cannot be used or edited safely, or a bad option
    """
    from digest.ops import feedlist

    added = feedlist.add(obj.config, url, name=name, weight=weight, topics=topics)
    if as_json:
        report.print_json(added.as_json())
        return
    found = added.found
    click.echo(report.safe(f'added "{added.name}" {added.url} ({found.items} items) to '
                           f"{added.config}"))
    if found.page:
        click.echo(report.safe(f"  found on {found.page}"))
    if found.moved:
        click.echo(report.safe("  it moved for good: listed at its new address"))
    if found.others:
        click.echo(report.safe(f"  the page also names: {feedlist.others_line(found.others)}"))
    if found.items == 0:
        click.echo("  note: the feed is empty right now", err=True)
    if added.same_name:
        click.echo(report.safe(f'  note: {len(added.same_name)} other feed(s) are named '
                               f'"{added.name}" and count as one outlet: '
                               f'{", ".join(added.same_name)} (--name to tell them apart)'))
    click.echo(f"{added.total} feeds listed; the next `digest collect` fetches it")


@feeds.command("remove")
@click.argument("feed", metavar="URL|NAME")
@click.option("--json", "as_json", is_flag=True, help="Print the removed entry as JSON.")
@pass_ctx
@user_errors
def remove(obj: Ctx, feed: str, as_json: bool) -> None:
    """Remove one feed from config.toml, by its URL or name.

    Comments in config.toml are kept. The feed's articles stay in the database
    until they age out.

    \b
    Example:
      digest feeds remove https://example.org/feed.xml
      digest feeds remove "Example"

    \b
    Exit codes:
      0  removed
      1  no feed, or several, match (the error lists them)
      2  config.toml cannot be used or edited safely, or a bad option
    """
    from digest.ops import feedlist

    entry, left = feedlist.remove(obj.config, feed)
    if as_json:
        report.print_json({"removed": entry, "config": str(obj.config.path), "feeds": left})
        return
    name = f' "{entry["name"]}"' if entry.get("name") else ""
    click.echo(report.safe(f"removed{name} {entry['url']} from {obj.config.path} "
                           f"({left} feeds left)"))


@feeds.command("import")
@click.argument("source", metavar="FILE.opml",
                type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--dry-run", is_flag=True, help="Show what would be added; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print what was added and skipped as JSON.")
@pass_ctx
@user_errors
def import_(obj: Ctx, source: Path, dry_run: bool, as_json: bool) -> None:
    """Add the feeds of an OPML file (a feed reader's export) to config.toml.

    Feeds already listed and outlines without an xmlUrl are skipped; addresses that
    are not http(s) (javascript:, file:, local paths) are refused. A folder whose
    name is a configured topic gives its feeds that topic. Nothing is fetched: the
    next `digest collect` reads them (and `digest feeds` shows their health).

    \b
    Example:
      digest feeds import subscriptions.opml --dry-run
      digest feeds import subscriptions.opml

    \b
    Exit codes:
      0  imported (or, with --dry-run, checked); skipped entries are listed
      1  the file is not OPML, is malformed or hostile (the line is named)
      2  config.toml cannot be used or edited safely, or a bad option
    """
    from digest.ops import feedlist

    result = feedlist.import_opml(obj.config, source, dry_run=dry_run)
    if as_json:
        report.print_json(result.as_json())
        return
    verb = "would add" if dry_run else "added"
    for entry in result.added:
        click.echo(report.safe(f'{verb} "{entry["name"]}" {entry["url"]}'))
    for line, what, why in result.skipped:
        click.echo(report.safe(f"skipped {source}:{line}: {what}: {why}"))
    click.echo(report.safe(result.summary()))


@feeds.command("export")
@click.option("--opml", "as_opml", is_flag=True, default=True,
              help="OPML 2.0 (the default, and the one format so far).")
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write to this file (atomically) instead of standard output.")
@pass_ctx
@user_errors
def export(obj: Ctx, as_opml: bool, out: Path | None) -> None:
    """Write the configured feeds as OPML 2.0, for any feed reader.

    `digest feeds import` reads it back to the same names, topics and weights.

    \b
    Example:
      digest feeds export --opml > feeds.opml
      digest feeds export --opml -o feeds.opml

    \b
    Exit codes:
      0  exported (local feed files are left out: a note names them)
      2  config.toml cannot be used, or a bad option
    """
    from digest.files import write_atomic
    from digest.ops import feedlist

    data, local = feedlist.export_opml(obj.config)
    if out is None:
        click.echo(data, nl=False)
    else:
        write_atomic(out, data)
        count = feedlist.plural(data.count(b"<outline "), "feed")
        click.echo(report.safe(f"exported {count} to {out}"), err=True)
    if local:
        click.echo(report.safe(f"note: left out {len(local)} local feed file(s), which other "
                               f"readers cannot fetch: {', '.join(local)}"), err=True)
