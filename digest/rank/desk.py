"""The editor's desk applied to a day's selection: a pure function of (the day's
ranked stories, the editor's ``Edit``s), nothing read or written here.

Story ids. A story is called by 6 characters of base32 of a SHA-256 of its
*anchor*: the member digest saw first (the lowest article row id; by URL when the
articles are not stored). Later collects that morning only add members with higher
ids, so the id holds while reports join; it changes only if the anchor itself leaves
the story (pruned, or clustering splits it off), and then the edit still follows the
story by its other member URLs (``find``).

Edits, in the order they were made (a later one of the same kind wins):
- drop: the story leaves every section; drop_article: one report leaves its story
  (the next report leads it; a story left with none is gone);
- move: the story goes to the section of that title (made if the day has none);
- pin: the story is in, at ``position`` of the edition (1 = the lead), else kept
  where it is or added at the end of the first section; lead: pin at 1;
- headline / blurb: the lead report's title / summary rewritten;
- note: the editor's note at the top (Selection.note).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from digest.models import Article, Edit, Section, Selection, Story

ID_LENGTH = 6
FIRST_SECTION = "Top stories"  # config.toml's default first section
STORY_KINDS = frozenset({"pin", "drop", "lead", "move", "headline", "blurb"})


def anchor(story: Story) -> Article:
    """The member digest saw first: the one a story's id and its edits hang on."""
    return min(story.articles, key=lambda a: (a.id is None, a.id or 0, a.url))


def url_id(url: str) -> str:
    digest = hashlib.sha256(url.encode("utf-8", "surrogatepass")).digest()
    return base64.b32encode(digest).decode("ascii")[:ID_LENGTH].lower()


def story_id(story: Story) -> str:
    return url_id(anchor(story).url)


def members(story: Story) -> tuple[str, ...]:
    return tuple(a.url for a in story.articles)


def find(edit: Edit, stories: Sequence[Story]) -> Story | None:
    """The story an edit is about now: the one holding the URL it was made on, else
    the one sharing most of its members then (the anchor left, the others stayed)."""
    for s in stories:
        if any(a.url == edit.anchor for a in s.articles):
            return s
    was = set(edit.members)
    best = max(stories, key=lambda s: len(was & set(members(s))), default=None)
    return best if best is not None and was & set(members(best)) else None


def by_id(ident: str, stories: Iterable[Story]) -> Story | None:
    ident = ident.strip().lower()
    return next((s for s in stories if story_id(s) == ident), None)


def by_url(url: str, stories: Iterable[Story]) -> Story | None:
    return next((s for s in stories if any(a.url == url for a in s.articles)), None)


@dataclass(frozen=True)
class Applied:
    """The edited selection, and the edits whose story is no longer in the day."""

    selection: Selection
    gone: tuple[Edit, ...] = ()
    edited: frozenset[str] = frozenset()  # ids of the stories an edit touched


def apply(selection: Selection, pool: Sequence[Story], edits: Sequence[Edit], *,
          exclude: frozenset[int] = frozenset()) -> Applied:
    """``selection`` as the editor shaped it. ``pool`` is every story of the day (a
    pinned story may come from outside the selection); ``exclude`` the article ids
    this variant's readers already got, never brought back by a pin."""
    sections = [list(sec.stories) for sec in selection.sections]
    titles = [sec.title for sec in selection.sections]
    topics = [sec.topic for sec in selection.sections]
    if not titles:  # an empty day: a pinned story needs a section to stand in
        sections, titles, topics = [[]], [FIRST_SECTION], [None]
    note = selection.note
    gone: list[Edit] = []
    edited: set[str] = set()
    rewrites: dict[str, dict[str, str]] = {}  # story id -> field -> text
    # Stories given a place (pin --at, lead): placed after every other edit, in order
    # of place, so a later lead does not push an earlier "pin --at 2" down to 3.
    placed: dict[str, tuple[int, int, Story]] = {}
    # Reports leave their stories first: a story's id (its anchor) is then settled
    # before any rewrite is keyed on it, whatever order the edits were made in.
    for edit in edits:
        if edit.kind == "drop_article":
            sections, pool = _drop_article(sections, pool, edit.anchor)
    for seq, edit in enumerate(edits):
        if edit.kind == "note":
            note = edit.text
            continue
        if edit.kind not in STORY_KINDS:
            continue
        story = find(edit, [s for sec in sections for s in sec] + list(pool))
        if story is None or not _allowed(story, exclude):
            gone.append(edit)
            continue
        sid = story_id(story)
        edited.add(sid)
        if edit.kind in ("headline", "blurb"):
            rewrites.setdefault(sid, {})[edit.kind] = edit.text
            continue
        placed.pop(sid, None)
        sections = _remove(sections, sid) if edit.kind != "pin" or edit.position else sections
        if edit.kind == "move":
            if edit.text not in titles:
                titles.append(edit.text)
                topics.append(None)
                sections.append([])
            sections[titles.index(edit.text)].append(story)
        elif edit.kind == "lead" or (edit.kind == "pin" and edit.position):
            placed[sid] = (1 if edit.kind == "lead" else edit.position or 1, seq, story)
        elif edit.kind == "pin":
            sections = _pin(sections, story, sid, None)
    for sid, (at, _seq, story) in sorted(placed.items(), key=lambda p: p[1][:2]):
        sections = _pin(sections, story, sid, at)
    out = tuple(Section(title=t, stories=tuple(_rewrite(s, rewrites) for s in sec), topic=tp)
                for t, sec, tp in zip(titles, sections, topics, strict=True) if sec)
    return Applied(replace(selection, sections=out, note=note), tuple(gone), frozenset(edited))


def _allowed(story: Story, exclude: frozenset[int]) -> bool:
    return not any(a.id in exclude for a in story.articles if a.id is not None)


def _remove(sections: list[list[Story]], sid: str) -> list[list[Story]]:
    return [[s for s in sec if story_id(s) != sid] for sec in sections]


def _pin(sections: list[list[Story]], story: Story, sid: str,
         at: int | None) -> list[list[Story]]:
    if at is None and any(story_id(s) == sid for sec in sections for s in sec):
        return sections  # already in: a pin without a place keeps it where it is
    sections = _remove(sections, sid)
    if at is None:
        sections[0].append(story)
        return sections
    # Position N of the edition as read: count through the sections in order.
    left = max(at, 1) - 1
    for sec in sections:
        if left <= len(sec):
            sec.insert(left, story)
            return sections
        left -= len(sec)
    sections[-1].append(story)
    return sections


def _drop_article(sections: list[list[Story]], pool: Sequence[Story],
                  url: str) -> tuple[list[list[Story]], list[Story]]:
    def cut(s: Story) -> Story | None:
        if not any(a.url == url for a in s.articles):
            return s
        left = [a for a in s.articles if a.url != url]
        if not left:
            return None
        return replace(s, lead=left[0], others=tuple(left[1:]))

    new_sections = [[c for s in sec if (c := cut(s)) is not None] for sec in sections]
    new_pool = [c for s in pool if (c := cut(s)) is not None]
    return new_sections, new_pool


def _rewrite(story: Story, rewrites: dict[str, dict[str, str]]) -> Story:
    fields = rewrites.get(story_id(story))
    if not fields:
        return story
    lead = story.lead
    if "headline" in fields:
        lead = replace(lead, title=fields["headline"])
    if "blurb" in fields:
        # The editor's blurb replaces the story's summary too: the email shows a
        # summary in place of the lead's teaser, and the editor's words must win.
        lead = replace(lead, summary=fields["blurb"])
        return replace(story, lead=lead, summary=None)
    return replace(story, lead=lead)
