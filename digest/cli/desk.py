"""`digest desk ...`: the editor's desk for one day's edition. The work is in
digest.ops.desk; heavy imports stay inside the commands."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import click

from digest import console as report
from digest.cli.base import Ctx, cli, pass_ctx, user_errors

F = TypeVar("F", bound=Callable[..., Any])

EXIT_CODES = """
\b
Exit codes:
  0  done
  1  refused: the day's edition is frozen (sending began), or a bad value
  2  config.toml or the database cannot be used, a bad option, or an unknown
     story id (`digest desk show` lists them)
"""


def _with_exit_codes(text: str | None) -> str:
    # Click dedents a docstring only as a whole: the shared block goes after the
    # dedented text, as a paragraph of its own.
    return inspect.cleandoc(text or "") + "\n" + EXIT_CODES


def _day_options(fn: F) -> F:
    fn = click.option("--group", default="", metavar="ZONE",
                      help="The time-zone edition (an IANA zone subscribers have); "
                           "default the newsletter's own.")(fn)
    fn = click.option("--day", type=click.DateTime(["%Y-%m-%d"]), default=None,
                      help="The edition's day, YYYY-MM-DD (default: today's edition, "
                           "in the schedule's time zone).")(fn)
    return fn


def _by(fn: F) -> F:
    return click.option("--by", default="", help="Who made the edit (default: $USER).")(fn)


def _d(obj: Ctx, day: Any, group: str) -> Any:
    from digest import pipeline
    from digest.ops import desk as ops

    when: date | None = day.date() if day is not None else None
    return ops.day_for(obj.config, pipeline.utcnow(), when, group)


@cli.group()
def desk() -> None:
    """Shape one day's edition: pin, drop, lead, move, rewrite, note, approve.

    Stories are named by the short id `digest rank` and `digest desk show` print;
    an edit follows its story through the morning's later collects.

    \b
    Example:
      digest desk show
      digest desk pin k3x9qa --at 2
      digest desk headline k3x9qa "Parliament passes the budget"
      digest desk approve
    """


@desk.command("show")
@_day_options
@click.option("--json", "as_json", is_flag=True, help="Print the edition and edits as JSON.")
@pass_ctx
@user_errors
def show(obj: Ctx, day: Any, group: str, as_json: bool) -> None:
    """Show the day's edition as edited: sections, ids, edits, stories gone.

    \b
    Example:
      digest desk show
      digest desk show --json | jq '.sections[0].stories[0].id'
    """
    from digest.ops import desk as ops
    from digest.ops import desk_print

    view = ops.show(obj.config, _d(obj, day, group))
    if as_json:
        report.print_json(view.as_json())
    else:
        desk_print.show(obj.config, view)


show.help = _with_exit_codes(show.help)


def _edit(obj: Ctx, day: Any, group: str, kind: Any, target: str = "", **kw: Any) -> None:
    from digest.ops import desk as ops

    made = ops.edit(obj.config, _d(obj, day, group), kind, target, **kw)
    what = f" {made.story}" if made.story else ""
    click.echo(f"{made.kind}{what}: recorded for {made.day.isoformat()} by {made.by}")


@desk.command("pin")
@click.argument("story")
@click.option("--at", "position", type=click.IntRange(min=1), default=None,
              help="Its place in the edition as read (1 = the lead).")
@_day_options
@_by
@pass_ctx
@user_errors
def pin(obj: Ctx, story: str, position: int | None, day: Any, group: str, by: str) -> None:
    """Put a story in the edition (at position N with --at).

    \b
    Example:
      digest desk pin k3x9qa --at 3
    """
    _edit(obj, day, group, "pin", story, position=position, by=by)


@desk.command("drop")
@click.argument("target", metavar="ID|URL")
@_day_options
@_by
@pass_ctx
@user_errors
def drop(obj: Ctx, target: str, day: Any, group: str, by: str) -> None:
    """Leave a story out (by id), or one article of a story (by its URL).

    \b
    Example:
      digest desk drop k3x9qa
      digest desk drop https://example.org/news/1
    """
    _edit(obj, day, group, "drop", target, by=by)


@desk.command("lead")
@click.argument("story")
@_day_options
@_by
@pass_ctx
@user_errors
def lead(obj: Ctx, story: str, day: Any, group: str, by: str) -> None:
    """Make a story the edition's lead.

    \b
    Example:
      digest desk lead k3x9qa
    """
    _edit(obj, day, group, "lead", story, by=by)


@desk.command("move")
@click.argument("story")
@click.argument("section")
@_day_options
@_by
@pass_ctx
@user_errors
def move(obj: Ctx, story: str, section: str, day: Any, group: str, by: str) -> None:
    """Move a story to a section, by the section's title.

    \b
    Example:
      digest desk move k3x9qa "Science"
    """
    _edit(obj, day, group, "move", story, text=section, by=by)


@desk.command("headline")
@click.argument("story")
@click.argument("text")
@_day_options
@_by
@pass_ctx
@user_errors
def headline(obj: Ctx, story: str, text: str, day: Any, group: str, by: str) -> None:
    """Rewrite a story's headline.

    \b
    Example:
      digest desk headline k3x9qa "Parliament passes the budget"
    """
    _edit(obj, day, group, "headline", story, text=text, by=by)


@desk.command("blurb")
@click.argument("story")
@click.argument("text")
@_day_options
@_by
@pass_ctx
@user_errors
def blurb(obj: Ctx, story: str, text: str, day: Any, group: str, by: str) -> None:
    """Rewrite the text under a story's headline.

    \b
    Example:
      digest desk blurb k3x9qa "The vote was 312 to 290."
    """
    _edit(obj, day, group, "blurb", story, text=text, by=by)


@desk.command("note")
@click.argument("text", required=False)
@click.option("--file", "file", type=click.Path(path_type=Path, dir_okay=False),
              help="Read the note from this file.")
@_day_options
@_by
@pass_ctx
@user_errors
def note(obj: Ctx, text: str | None, file: Path | None, day: Any, group: str, by: str) -> None:
    """Set the editor's note at the top ("" clears it). Markdown subset:
    paragraphs, *em*, **strong**, [links](https://...).

    \b
    Example:
      digest desk note "Good morning. **Budget day**: see [the plan](https://example.org)."
      digest desk note --file note.md
    """
    from digest.ops import desk as ops

    if (text is None) == (file is None):
        raise click.UsageError("give the note as TEXT or --file F (one of them)")
    _edit(obj, day, group, "note", text=ops.note_text(text, file), by=by)


@desk.command("reset")
@click.argument("story", required=False)
@_day_options
@_by
@pass_ctx
@user_errors
def reset(obj: Ctx, story: str | None, day: Any, group: str, by: str) -> None:
    """Undo the day's edits, or one story's (the log keeps them).

    \b
    Example:
      digest desk reset k3x9qa
      digest desk reset
    """
    from digest.ops import desk as ops

    n = ops.reset(obj.config, _d(obj, day, group), story, by=by)
    click.echo(f"reset: {n} edit{'s' * (n != 1)} undone")


@desk.command("approve")
@_day_options
@_by
@pass_ctx
@user_errors
def approve(obj: Ctx, day: Any, group: str, by: str) -> None:
    """Approve the day's edition: a run held for approval goes out.

    \b
    Example:
      digest desk approve
    """
    from digest.ops import desk as ops

    made = ops.approve(obj.config, _d(obj, day, group), by=by)
    at = made.at.astimezone(obj.config.tz) if made.at else None
    click.echo(f"approved: the {made.day.isoformat()} edition, by {made.by}"
               + (f" at {at:%H:%M}" if at else ""))


@desk.command("log")
@_day_options
@click.option("--json", "as_json", is_flag=True, help="Print the log as JSON.")
@pass_ctx
@user_errors
def log(obj: Ctx, day: Any, group: str, as_json: bool) -> None:
    """Every edit of the day, who made it and when, undone ones too.

    \b
    Example:
      digest desk log --json
    """
    from digest.ops import desk as ops
    from digest.ops import desk_print

    rows = ops.log_rows(obj.config, _d(obj, day, group))
    if as_json:
        report.print_json(rows)
    else:
        desk_print.log(obj.config, rows)


for _cmd in (pin, drop, lead, move, headline, blurb, note, reset, approve, log):
    _cmd.help = _with_exit_codes(_cmd.help)
