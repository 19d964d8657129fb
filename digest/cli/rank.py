"""`digest rank` and `digest render`: today's selection on the terminal, and
today's digest as files. Heavy imports stay inside the commands."""

from __future__ import annotations

from pathlib import Path

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the stories as JSON.")
@click.option("--all", "every", is_flag=True, help="List every story, not only the selected.")
@click.option("--explain", is_flag=True,
              help="Show each story's score with every factor named (recency, weight, "
                   "topics, coverage), its outlets, and its member articles; undated "
                   "reports and backlog left out are said.")
@pass_ctx
@user_errors
def rank(obj: Ctx, as_json: bool, every: bool, explain: bool) -> None:
    """Show today's selection: stories by section, with scores.

    \b
    Example:
      digest rank
      digest rank --explain --all
      digest rank --json | jq '.[0].articles'

    \b
    Exit codes:
      0  shown (an empty day too: it says what to run)
      1  a problem one error line names
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.ranking import rank_today
    from digest.rank import explain as explainer

    ranked, why_empty = rank_today(obj.config, say_why_empty=not as_json)
    if as_json:
        report.print_json(explainer.rank_json(ranked, every=every))
    elif why_empty:
        click.echo(why_empty)
    else:
        explainer.show(ranked, every=every, explain=explain)


@cli.command()
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False),
              required=True, help="Folder to write digest.{mjml,html,txt,eml} into.")
@click.option("--subscriber", "email", help="Render this subscriber's copy.")
@pass_ctx
@user_errors
def render(obj: Ctx, out_dir: Path, email: str | None) -> None:
    """Write today's digest as files: MJML source, HTML, text and the .eml.

    Without --subscriber: the whole edition (every section) for a neutral "Reader";
    with it: that subscriber's own copy, as it would be sent.

    \b
    Example:
      digest render --out out/
      digest render --out out/ --subscriber ada@example.org

    \b
    Exit codes:
      0  the files are written
      1  nothing to render, a template error (even once today's edition is frozen),
         or an unknown subscriber
      2  config.toml or the database cannot be used, or a bad option
    """
    from digest.ops.runner import render_today

    for path in render_today(obj.config, out_dir, email):
        click.echo(path)
