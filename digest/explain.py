"""`digest rank` on a terminal: the selection (or every story with --all), and
with --explain each story's score components and member articles."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from digest.models import Story
from digest.rank import Ranked

console = Console()


def _where(ranked: Ranked) -> dict[int, str]:
    return {id(story): section.title for section in ranked.selection.sections
            for story in section.stories}


def formula(story: Story) -> str:
    """The score as the README writes it, with this story's numbers."""
    r = dict(story.reasons)
    return (f"{r.get('recency', 0):.3f} recency ({r.get('age_hours', 0):.1f} h old) × "
            f"({r.get('weight', 0):g} weight + {r.get('topics', 0):g} topics) × "
            f"{r.get('coverage', 0):g} coverage ({int(r.get('outlets', 1))} outlets) "
            f"= {story.score:.4f}")


def show(ranked: Ranked, *, every: bool = False, explain: bool = False) -> None:
    where = _where(ranked)
    stories = ranked.stories if every else ranked.selection.stories
    if explain:
        for n, story in enumerate(stories, start=1):
            section = where.get(id(story), "not selected")
            console.print(f"[bold]{n}. {story.lead.title}[/]  [dim]({section})[/]")
            console.print(f"   score: {formula(story)}")
            if story.topics:
                console.print(f"   topics: {', '.join(story.topics)}")
            for a in story.articles:
                mark = "lead" if a is story.lead else "also"
                console.print(f"   {mark}: {a.source} · {a.published:%Y-%m-%d %H:%M} · "
                              f"{a.title} <{a.url}>", overflow="fold")
    else:
        table = Table(title=f"{'Stories' if every else 'Selection'} for "
                            f"{ranked.selection.day.isoformat()}")
        for col in ("section", "score", "story", "source", "also"):
            table.add_column(col, justify="right" if col == "score" else "left",
                             overflow="fold")
        last = None
        for story in stories:
            section = where.get(id(story), "—")
            table.add_row(section if section != last else "", f"{story.score:.3f}",
                          story.lead.title, story.lead.source,
                          ", ".join(story.also_reported_by))
            last = section
        console.print(table)
    sel = ranked.selection
    folded = sum(len(s.articles) for s in ranked.stories)
    console.print(f"selected {len(sel.stories)} of {len(ranked.stories)} stories "
                  f"({folded} articles) in {len(sel.sections)} sections")
