"""`digest rank` on a terminal: the selection (or every story with --all), and
with --explain each story's score, every factor of it by name, its outlets, and its
member articles (an undated one marked: its time is when digest first saw it)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from digest.console import Column, cell, safe, table
from digest.models import Story
from digest.rank.desk import story_id
from digest.rank.select import Ranked

console = Console()


def _where(ranked: Ranked) -> dict[int, str]:
    return {id(story): section.title for section in ranked.selection.sections
            for story in section.stories}


def formula(story: Story) -> str:
    """The score as the README writes it, each factor named, with this story's numbers
    (rounded for display only)."""
    r = story.reasons
    outlets = int(r.get("outlets", 1))
    return (f"{story.score:.4f} = {r.get('recency', 0):.4f} recency "
            f"({r.get('age_hours', 0):.1f} h since the newest report) × "
            f"({r.get('weight', 0):g} weight + {r.get('topics', 0):g} topics) × "
            f"{r.get('coverage', 0):g} coverage ({outlets} outlet{'s' * (outlets != 1)})")


def details(story: Story) -> list[str]:
    """The lines under a story's score: when its newest report is from, its outlets,
    and how many of its reports are dated only by first sight."""
    r = story.reasons
    lines = []
    if "newest" in r:
        newest = datetime.fromtimestamp(r["newest"], UTC)
        lines.append(f"newest report: {newest:%Y-%m-%d %H:%M} UTC")
    outlets = list(dict.fromkeys(a.source for a in story.articles))
    lines.append(f"outlets: {', '.join(outlets)}")
    undated = int(r.get("undated", 0))
    if undated:
        lines.append(f"undated: {undated} of {len(story.articles)} report"
                     f"{'s' * (len(story.articles) != 1)} had no usable date in the feed, "
                     "timed by when digest first saw them")
    return lines


def _backlog_line(count: int) -> str:
    return (f"left out {count} backlog item{'s' * (count != 1)}: undated, already in "
            "their feed at its first collect (pages, not news)")


def nothing_to_rank(stored: int, max_age_hours: float) -> str:
    """What `digest rank` says when no story is left, and what to run."""
    if not stored:
        return "no articles collected yet: run `digest collect`"
    if max_age_hours:
        return (f"no articles in the last {max_age_hours:g} h: run `digest collect` "
                f"(articles an earlier digest carried are left out)")
    return ("no articles left to rank: an earlier digest carried every one; "
            "run `digest collect` for new ones")


def show(ranked: Ranked, *, every: bool = False, explain: bool = False) -> None:
    where = _where(ranked)
    stories = ranked.stories if every else ranked.selection.stories
    if explain:
        for n, story in enumerate(stories, start=1):
            section = where.get(id(story), "not selected")
            console.print(Text.assemble((f"{n}. {safe(story.lead.title)}", "bold"), "  ",
                                        (f"[{story_id(story)}]", "cyan"), "  ",
                                        (f"({safe(section)})", "dim")))
            console.print(f"   score: {formula(story)}", markup=False)
            for line in details(story):
                console.print(cell(f"   {line}"), overflow="fold")
            if story.topics:
                console.print(cell(f"   topics: {', '.join(story.topics)}"))
            for a in story.articles:
                mark = "lead" if a is story.lead else "also"
                when = f"{a.published:%Y-%m-%d %H:%M}" + (
                    "" if a.dated else " (undated: first seen)")
                console.print(cell(f"   {mark}: {a.source} · {when} · "
                                   f"{a.title} <{a.url}>"), overflow="fold")
    elif stories:
        columns = [Column("section"), Column("id", whole=True), Column("score", right=True),
                   Column("story"), Column("source"), Column("also", drop=1)]
        rows = []
        last = None
        for story in stories:
            section = where.get(id(story), "—")
            rows.append((section if section != last else "", story_id(story), f"{story.score:.3f}",
                         story.lead.title, story.lead.source, ", ".join(story.also_reported_by)))
            last = section
        console.print(table(f"{'Stories' if every else 'Selection'} for "
                            f"{ranked.selection.day.isoformat()}", columns, rows))
    sel = ranked.selection
    folded = sum(len(s.articles) for s in ranked.stories)
    console.print(f"selected {len(sel.stories)} of {len(ranked.stories)} stories "
                  f"({folded} articles) in {len(sel.sections)} sections")
    if explain and ranked.backlog:
        console.print(_backlog_line(ranked.backlog))
    if not sel.stories:
        console.print("nothing new to select: every story was in an earlier digest "
                      "(`digest rank --all` lists them)")


def story_json(story: Story, sections: Sequence[str]) -> dict[str, Any]:
    return {
        "id": story_id(story),  # stable through the day's collects: digest.rank.desk
        "title": story.lead.title,
        "url": story.lead.url,
        "source": story.lead.source,
        "score": story.score,
        "components": dict(story.reasons),
        "topics": list(story.topics),
        "sections": list(sections),
        "articles": [{"url": a.url, "title": a.title, "source": a.source,
                      "published": a.published.isoformat(), "dated": a.dated}
                     for a in story.articles],
    }


def rank_json(ranked: Ranked, *, every: bool = False) -> list[dict[str, Any]]:
    where: dict[int, list[str]] = {}
    for section in ranked.selection.sections:
        for story in section.stories:
            where.setdefault(id(story), []).append(section.title)
    stories = ranked.stories if every else ranked.selection.stories
    return [story_json(s, where.get(id(s), [])) for s in stories]
