"""`digest desk`: the editor's changes to one day's edition, kept in the store with
who and when, and applied where the day's selection is built (digest.rank.desk via
pipeline.build_digest). The CLI parses and prints; the work is here.

Every edit is made on a story as the day ranks *now* (ids from digest.rank.desk) and
stored with the story's member URLs, so it follows the story through later collects.
Once the edition is frozen (sending began), edits are refused: what goes out is fixed.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from digest import pipeline
from digest.config import Config
from digest.errors import DeskError, UnknownStory
from digest.models import Edit, EditKind, Selection, Story
from digest.rank import desk
from digest.rank.select import Ranked, planned_sections
from digest.store.facade import Store

MAX_HEADLINE = 300
MAX_BLURB = 2000
MAX_NOTE = 4000


def default_by() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "editor"


@dataclass(frozen=True)
class Day:
    """The edition the desk works on: its day, its time-zone group, the clock."""

    day: date
    group: str
    now: datetime


def day_for(config: Config, now: datetime, day: date | None, group: str) -> Day:
    """The edition named by --day and --group; the schedule's own zone is the default
    edition (""), as pipeline.group_of files its subscribers."""
    group = "" if group in ("", config.schedule.timezone) else group
    if group:
        try:
            ZoneInfo(group)
        except (ZoneInfoNotFoundError, ValueError):
            raise UnknownStory(f"--group {group!r}: not an IANA time zone",
                               hint="e.g. Asia/Tokyo; `digest schedule` lists the groups"
                               ) from None
    return Day(day or pipeline.today(config, now, group), group, now)


@dataclass(frozen=True)
class View:
    """What `digest desk show` shows."""

    day: Day
    selection: Selection
    stories: tuple[Story, ...]  # every story of the day, for pins from outside
    edits: tuple[Edit, ...]
    gone: tuple[Edit, ...]
    edited: frozenset[str]
    approved: Edit | None
    waiting_since: datetime | None
    frozen_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        chosen = {desk.story_id(s) for s in self.selection.stories}
        return {
            "day": self.day.day.isoformat(),
            "group": self.day.group,
            "frozen_at": _iso(self.frozen_at),
            "approved": None if self.approved is None else {
                "by": self.approved.by, "at": _iso(self.approved.at)},
            "waiting_since": _iso(self.waiting_since),
            "note": self.selection.note,
            "sections": [{"title": sec.title, "stories": [
                _story_json(s, desk.story_id(s) in self.edited) for s in sec.stories]}
                for sec in self.selection.sections],
            "not_selected": [_story_json(s, False) for s in self.stories
                             if desk.story_id(s) not in chosen],
            "edits": [edit_json(e) for e in self.edits],
            "gone": [edit_json(e) for e in self.gone],
        }


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


def _story_json(s: Story, edited: bool) -> dict[str, Any]:
    return {"id": desk.story_id(s), "title": s.lead.title, "source": s.lead.source,
            "url": s.lead.url, "summary": s.lead.summary, "edited": edited,
            "articles": [a.url for a in s.articles]}


def edit_json(e: Edit) -> dict[str, Any]:
    return {"id": e.id, "kind": e.kind, "story": e.story, "anchor": e.anchor,
            "text": e.text, "position": e.position, "by": e.by, "at": _iso(e.at)}


def _ranked(config: Config, store: Store, d: Day) -> Ranked:
    return pipeline.rank_day(config, store, now=d.now, day=d.day, exclude=set())


def show(config: Config, d: Day) -> View:
    store = pipeline.open_store(config)
    try:
        ranked = _ranked(config, store, d)
        edits = store.edits(d.day, d.group)
        applied = desk.apply(ranked.selection, ranked.stories, edits)
        hold = store.held(d.day, d.group)
        return View(d, applied.selection, ranked.stories, tuple(edits), applied.gone,
                    applied.edited, store.approval(d.day, d.group),
                    hold["since"] if hold and hold["released"] is None else None,
                    store.sending_began(d.day, d.group))
    finally:
        store.close()


def _open_unfrozen(config: Config, d: Day) -> Store:
    store = pipeline.open_store(config)
    try:
        began = store.sending_began(d.day, d.group)
    except BaseException:
        store.close()
        raise
    if began is not None:
        store.close()
        local = began.astimezone(config.tz)
        raise DeskError(f"the {d.day.isoformat()} edition is frozen: sending began at "
                        f"{local:%H:%M} ({config.schedule.timezone}); edits are refused",
                        hint="edit tomorrow's with --day")
    return store


def _story(ident: str, stories: tuple[Story, ...]) -> Story:
    found = desk.by_id(ident, stories)
    if found is None:
        raise UnknownStory(f"no story {ident!r} in the day's stories",
                           hint="`digest desk show` lists the ids")
    return found


def edit(config: Config, d: Day, kind: EditKind, target: str = "", *, text: str = "",
         position: int | None = None, by: str = "") -> Edit:
    """Record one edit on the story ``target`` (an id; for drop also an article URL)."""
    text = _checked(config, kind, text)
    store = _open_unfrozen(config, d)
    try:
        made = Edit(kind=kind, day=d.day, group=d.group, text=text, position=position,
                    by=by or default_by(), at=d.now)
        if kind in desk.STORY_KINDS:
            stories = _ranked(config, store, d).stories
            if kind == "drop" and "://" in target:
                story = desk.by_url(target, stories)
                if story is None:
                    raise UnknownStory(f"no article {target!r} in the day's stories",
                                       hint="`digest desk show --json` lists the URLs")
                made = replace(made, kind="drop_article", anchor=target)
            else:
                story = _story(target, stories)
                made = replace(made, anchor=desk.anchor(story).url)
            made = replace(made, story=desk.story_id(story), members=desk.members(story))
        return replace(made, id=store.add_edit(made))
    finally:
        store.close()


def _checked(config: Config, kind: str, text: str) -> str:
    text = text.strip()
    if kind == "move":
        titles = _section_titles(config)
        match = next((t for t in titles if t.casefold() == text.casefold()), None)
        if match is None:
            raise DeskError(f"no section {text!r}", hint=f"sections: {', '.join(titles)}")
        return match
    if kind == "headline":
        text = " ".join(text.split())  # a headline is one line
        if not text or len(text) > MAX_HEADLINE:
            raise DeskError(f"a headline needs 1 to {MAX_HEADLINE} characters")
    if kind == "blurb" and len(text) > MAX_BLURB:
        raise DeskError(f"a blurb holds at most {MAX_BLURB} characters")
    if kind == "note" and len(text) > MAX_NOTE:
        raise DeskError(f"a note holds at most {MAX_NOTE} characters")
    return text


def _section_titles(config: Config) -> list[str]:
    return list(dict.fromkeys(p.title for p in planned_sections(config, "all")))


def note_text(text: str | None, file: Path | None) -> str:
    if file is None:
        return text or ""
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DeskError(f"{file}: cannot read the note: {e}") from None


def reset(config: Config, d: Day, ident: str | None, *, by: str = "") -> int:
    """Undo the day's edits (of one story, with ``ident``); returns how many."""
    store = _open_unfrozen(config, d)
    try:
        edits = [e for e in store.edits(d.day, d.group) if e.kind != "approve"]
        if ident is not None:
            stories = _ranked(config, store, d).stories
            # Its edits: made on that id, or on a story that is that one now.
            now_id = {e.id: desk.story_id(s) for e in edits
                      if (s := desk.find(e, stories)) is not None}
            mine = [e for e in edits if ident.lower() in (e.story, now_id.get(e.id))]
            if not mine and desk.by_id(ident, stories) is None:
                raise UnknownStory(f"no story {ident!r} in the day's stories or edits",
                                   hint="`digest desk show` lists the ids")
            edits = mine
        marker = Edit(kind="reset", day=d.day, group=d.group, story=ident or "",
                      by=by or default_by(), at=d.now)
        return store.clear_edits(d.day, d.group, [e.id for e in edits if e.id is not None],
                                 marker)
    finally:
        store.close()


def approve(config: Config, d: Day, *, by: str = "") -> Edit:
    store = _open_unfrozen(config, d)
    try:
        got = store.approval(d.day, d.group)
        if got is not None:
            return got
        made = Edit(kind="approve", day=d.day, group=d.group, by=by or default_by(), at=d.now)
        return replace(made, id=store.add_edit(made))
    finally:
        store.close()


def log_rows(config: Config, d: Day) -> list[dict[str, Any]]:
    store = pipeline.open_store(config)
    try:
        rows = store.log_rows(d.day, d.group)
    finally:
        store.close()
    return [{"id": r["id"], "at": _iso(r["at"]), "by": r["by"], "kind": r["kind"],
             "story": r["story"], "anchor": r["anchor"], "text": r["text"],
             "position": r["position"], "undone_at": _iso(r["cleared"])} for r in rows]
