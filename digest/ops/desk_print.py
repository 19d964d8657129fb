"""`digest desk show` and `digest desk log` on a terminal (the --json forms are in
digest.ops.desk). Every outside string goes through console.safe / cell: headlines
come from feeds and editors, and must not drive the terminal."""

from __future__ import annotations

from typing import Any

import click

from digest.config import Config
from digest.console import Column, cell, console, safe, table
from digest.ops.desk import View
from digest.rank import desk

_DESCRIBE = {
    "pin": "pinned", "drop": "dropped", "drop_article": "article dropped", "lead": "lead",
    "move": "moved to", "headline": "headline", "blurb": "blurb", "note": "note",
    "approve": "approved", "reset": "reset",
}


def show(config: Config, view: View) -> None:
    d = view.day
    head = f"The desk: the {d.day.isoformat()} edition" + (f" ({d.group})" if d.group else "")
    click.echo(head)
    if view.frozen_at is not None:
        click.echo(f"frozen at {view.frozen_at.astimezone(config.tz):%H:%M}: sending began, "
                   "edits are refused")
    if view.approved is not None and view.approved.at is not None:
        click.echo(f"approved by {safe(view.approved.by)} at "
                   f"{view.approved.at.astimezone(config.tz):%H:%M}")
    elif view.waiting_since is not None:
        click.echo(f"waiting for approval since {view.waiting_since.astimezone(config.tz):%H:%M}"
                   " (`digest desk approve`)")
    if view.selection.note:
        click.echo(f"note: {safe(' '.join(view.selection.note.split()))}")
    rows = []
    n = 0
    for sec in view.selection.sections:
        for i, s in enumerate(sec.stories):
            n += 1
            sid = desk.story_id(s)
            rows.append((sec.title if i == 0 else "", str(n), sid,
                         ("* " if sid in view.edited else "") + s.lead.title, s.lead.source))
    columns = [Column("section"), Column("#", right=True), Column("id", whole=True),
               Column("story"), Column("source", drop=1)]
    if rows:
        console.print(table("Edition (* edited)", columns, rows))
    else:
        click.echo("nothing selected for this day: run `digest collect`")
    chosen = {desk.story_id(s) for s in view.selection.stories}
    rest = [s for s in view.stories if desk.story_id(s) not in chosen]
    if rest:
        click.echo(f"{len(rest)} more stor{'y' if len(rest) == 1 else 'ies'} not selected "
                   "(`digest desk show --json` lists them; `digest desk pin ID` brings one in)")
    for e in view.gone:
        console.print(cell(f"gone: the {_DESCRIBE.get(e.kind, e.kind)} edit on {e.story} "
                           f"({e.anchor}) finds no story in today's collect any more"))
    click.echo(f"{len(view.edits)} edit{'s' * (len(view.edits) != 1)} in force "
               "(`digest desk log` lists them)")


def log(config: Config, rows: list[dict[str, Any]]) -> None:
    if not rows:
        click.echo("no edits for this day")
        return
    out = []
    for r in rows:
        what = _DESCRIBE.get(r["kind"], r["kind"])
        detail = r["text"] or (r["anchor"] if r["kind"] == "drop_article" else "")
        if r["position"]:
            detail = f"at {r['position']}"
        out.append((r["at"][11:16] if r["at"] else "", r["by"], what, r["story"],
                    " ".join(detail.split())[:80], "undone" if r["undone_at"] else ""))
    console.print(table("Desk log (UTC)", [Column("at"), Column("by"), Column("edit"),
                                           Column("story", whole=True), Column("detail"),
                                           Column("", drop=1)], out))
