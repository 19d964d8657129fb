"""Selection -> Rendered: Jinja2 fills the MJML template, mjml-python compiles it once.

A variant is rendered with placeholder tokens where personal data goes; each
subscriber's copy is then :func:`digest.render.personal.personalise` (microseconds)
instead of a Jinja render plus MJML compile (milliseconds).
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from digest.config import Config
from digest.models import Article, Rendered, Section, Selection, Sentence, Story, Summary
from digest.render import note, when
from digest.render.filters import (
    FILTERS,
    SUMMARY_LIMITS,
    TEXT_WIDTH,
    clip,
    email_image,
    one_line,
    safe_url,
)
from digest.render.personal import PLACEHOLDERS, TOKEN_MARK, personalise
from digest.render.qp import encoded_size
from digest.render.strings import STRINGS, format_date
from digest.render.templating import MJML_TAGS, check_mjml_tags, compile_mjml, render_jinja
from digest.render.theme import palette

log = logging.getLogger(__name__)

# Re-exported: callers and user-facing docs know them as digest.render.variant.*
__all__ = ["MJML_TAGS", "PLACEHOLDERS", "STRINGS", "SUMMARY_LIMITS", "TEXT_WIDTH",
           "check_mjml_tags", "clip", "email_image", "format_date", "one_line", "personalise",
           "render_variant", "safe_url"]

# Gmail hides everything past ~102 KB of a message's HTML part behind "[Message
# clipped]" (the footer with its unsubscribe link first). The budget is the encoded
# part with room for the longest personal values (address, unsubscribe URL).
GMAIL_CLIP = 102_000
PERSONAL_HEADROOM = 2_000

# Most inboxes cut a subject after about 78 characters and show about 130 of the
# preheader; `digest preview` warns past the same limits.
SUBJECT_MAX = 78
PREHEADER_MAX = 130
SHIPPED_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
def make_subject(name: str, day_text: str, lead: Story | None) -> str:
    head = f"{one_line(name)} — {day_text}"
    if lead is None:
        return head
    room = SUBJECT_MAX - len(head) - 2
    return f"{head}: {clip(lead.lead.title, max(room, 20))}"


def make_preheader(selection: Selection, limit: int = PREHEADER_MAX) -> str:
    titles = [one_line(s.lead.title) for s in selection.stories[:3]]
    return clip(" · ".join(titles), limit)


def also_reported(story: Story) -> list[Article]:
    """The first article of each other source, so every source gets a link."""
    seen = {story.lead.source}
    out = []
    for a in story.others:
        if a.source not in seen:
            seen.add(a.source)
            out.append(a)
    return out


def body_sections(selection: Selection) -> list[Section]:
    """Sections without the lead story (shown on its own above them), empty ones dropped."""
    lead = selection.lead
    out = []
    for sec in selection.sections:
        stories = tuple(s for s in sec.stories if s is not lead)
        if stories:
            out.append(Section(title=sec.title, stories=stories, topic=sec.topic))
    return out


# C0/C1 controls but tab and line ends: XML (so MJML) refuses them, and a feed
# that slips one through (JSON Feed, a lenient parser) must not break the digest.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _strip_tokens(value: str) -> str:
    if _CONTROLS.search(value):
        value = _CONTROLS.sub(" ", value)
    # Repeat until stable: removing one token must not leave another behind
    # ("__dgst_na" + token + "me_7c1f__").
    while any(token in value for token in PLACEHOLDERS.values()) or when.TOKEN.search(value):
        for token in PLACEHOLDERS.values():
            value = value.replace(token, "")
        value = when.TOKEN.sub("", value)
    return value


def _clean_article(a: Article) -> Article:
    texts = (a.source, a.url, a.title, a.summary, a.content_html, a.author or "", a.image or "")
    url, image = safe_url(a.url), safe_url(a.image) or None
    if url == a.url and image == a.image and not any(
            TOKEN_MARK in t or _CONTROLS.search(t) for t in texts):
        return a
    s = _strip_tokens
    return replace(
        a, source=s(a.source), url=s(url), title=s(a.title), summary=s(a.summary),
        content_html=s(a.content_html), author=a.author and s(a.author),
        image=image and s(image),
    )


def _clean_summary(summary: Summary | None) -> Summary | None:
    """A summary's sentences are feed text too: tokens and control characters go."""
    if summary is None or not any(TOKEN_MARK in t or _CONTROLS.search(t)
                                  for s in summary.sentences for t in s):
        return summary
    return Summary(tuple(Sentence(_strip_tokens(s.text), _strip_tokens(s.source))
                         for s in summary.sentences))


def clean_selection(selection: Selection) -> Selection:
    """The selection with placeholder tokens removed from all feed text (normally a no-op)."""
    def story(s: Story) -> Story:
        lead, others = _clean_article(s.lead), tuple(_clean_article(a) for a in s.others)
        summary = _clean_summary(s.summary)
        if lead is s.lead and summary is s.summary and all(
                x is y for x, y in zip(others, s.others, strict=True)):
            return s
        return replace(s, lead=lead, others=others, summary=summary)

    sections = tuple(replace(sec, stories=tuple(story(s) for s in sec.stories))
                     for sec in selection.sections)
    # The editor's note too: a token in it would become each reader's own address.
    note = _strip_tokens(selection.note) if TOKEN_MARK in selection.note else selection.note
    return replace(selection, sections=sections, note=note)


# --- Jinja environment ---------------------------------------------------------


@lru_cache(maxsize=8)
def _environment(templates_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(
        # The user's folder first; the shipped templates behind it, so a folder holding
        # only `{% extends "daily.mjml.j2" %}` children (or an older copy without
        # the partials) still finds what it builds on.
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(templates_dir),
                                    jinja2.FileSystemLoader(str(SHIPPED_TEMPLATES))]),
        # The text part must not be HTML-escaped; everything else is.
        autoescape=lambda name: name is None or not name.endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,  # the preview rebuilds as templates change
    )
    env.filters.update(FILTERS)
    env.globals.update(also_reported=also_reported)
    return env


# --- public API ----------------------------------------------------------------


def _manage_url(config: Config, subject: str) -> str:
    """mailto: the editors (Reply-To, else From) about one's subscription."""
    nl = config.newsletter
    to = parseaddr(nl.reply_to or nl.from_address)[1]
    return f"mailto:{to}?subject={quote(subject)}"


def _context(selection: Selection, config: Config, variant: str, now: datetime
             ) -> dict[str, Any]:
    nl = config.newsletter
    lang = nl.language
    t = STRINGS[lang]
    day_long = format_date(selection.day, lang)
    lead = selection.lead
    sections = body_sections(selection)
    theme = config.model.theme
    colors = palette(theme)
    return {
        "newsletter": nl,
        "theme": theme,
        "colors": colors,
        "c": colors["light"],
        "d": colors["dark"],
        # Validated in config (letters, digits, quotes, commas): safe unescaped, and
        # MJML would mangle an escaped &#39; inside an attribute.
        "fonts": {"body": Markup(theme.font_stack), "heading": Markup(theme.heading_font_stack)},
        "language": lang,
        "day": selection.day,
        "date": day_long,
        "date_short": format_date(selection.day, lang, "short"),
        "now": now,
        "variant": variant,
        "selection": selection,
        "lead": lead,
        "sections": sections,
        "story_count": len(selection.stories),
        # The editor's note (digest desk note): markup made by render.note alone.
        "note_html": note.to_html(selection.note),
        "note_text": note.to_text(selection.note),
        # Tokens, never real data: the variant is shared by every subscriber.
        "personal": dict(PLACEHOLDERS),
        "manage_url": _manage_url(config, t["manage_subject"]),
        "t": t,
        "subject": make_subject(nl.name, format_date(selection.day, lang, "short"), lead),
        "preheader": make_preheader(selection),
        # A token per story, filled with the time in each reader's zone (render.when).
        "when": lambda story: when.token(story_time(story), now, lang),
    }


def story_time(story: Story) -> datetime:
    """When a story happened, as its lead (the report linked and summarised) says."""
    return story.lead.published


def _render_once(selection: Selection, config: Config, variant: str, now: datetime
                 ) -> Rendered:
    templates_dir = config.templates_dir
    env = _environment(str(templates_dir))
    name = config.model.paths.template
    ctx = _context(selection, config, variant, now)
    mjml_name, text_name = f"{name}.mjml.j2", f"{name}.txt.j2"
    mjml_src = render_jinja(env, templates_dir, mjml_name, ctx)
    html = compile_mjml(mjml_src, templates_dir, mjml_name)
    text = render_jinja(env, templates_dir, text_name, ctx)
    return Rendered(
        variant=variant,
        subject=ctx["subject"],
        preheader=ctx["preheader"],
        mjml=mjml_src,
        html=html,
        text=_tidy_text(text),
    )


def html_part_size(html: str) -> int:
    """Bytes of the HTML part as sent (quoted-printable), plus room for personal values."""
    return encoded_size(html) + PERSONAL_HEADROOM


def without(selection: Selection, drop: set[int]) -> Selection:
    """The selection minus the stories whose id() is in ``drop`` (empty sections go)."""
    sections = []
    for sec in selection.sections:
        kept = tuple(s for s in sec.stories if id(s) not in drop)
        if kept:
            sections.append(replace(sec, stories=kept))
    return replace(selection, sections=tuple(sections))


def _lowest_ranked(selection: Selection, n: int) -> list[Story]:
    """The ``n`` lowest-scored stories, never the lead; later position breaks a tie."""
    ranked = list(enumerate(selection.stories))[1:]
    ranked.sort(key=lambda p: (p[1].score, -p[0]))
    return [s for _, s in ranked[:n]]


def render_variant(selection: Selection, config: Config, *, variant: str, now: datetime,
                   limit: int = GMAIL_CLIP) -> Rendered:
    """Render one digest variant: MJML -> HTML once, plus the text part, with tokens.

    If the HTML part would pass Gmail's clipping limit, the lowest-ranked stories are
    dropped (and logged) until it fits; ``Rendered.dropped`` names them.
    """
    selection = clean_selection(selection)
    dropped: list[Story] = []
    while True:
        rendered = _render_once(selection, config, variant, now)
        size = html_part_size(rendered.html)
        n = len(selection.stories)
        if size < limit or n <= 1:
            break
        # Estimate from the average story's share, then re-render to check: usually
        # one or two rounds rather than one per story.
        excess = math.ceil((size - limit + 1) / (size / (n + 1)))
        victims = _lowest_ranked(selection, max(1, min(excess, n - 1)))
        dropped += victims
        selection = without(selection, {id(s) for s in victims})
    if dropped:
        titles = tuple(one_line(s.lead.title) for s in dropped)
        log.warning("variant %s: dropped %d lowest-ranked stor%s to keep the HTML part "
                    "under Gmail's %d KB clipping limit (%d KB now): %s", variant,
                    len(titles), "y" if len(titles) == 1 else "ies", limit // 1000,
                    size // 1000, "; ".join(titles))
        rendered = replace(rendered, dropped=titles)
    return rendered


def _tidy_text(text: str) -> str:
    # Templates are easier to write with generous blank lines; readers want at most one.
    # "-- " (with its space) is the signature separator mail clients recognise.
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


def sample_selection(day: date) -> Selection:
    """A small day exercising every part of a template (lead, image, sections, others)."""
    published = datetime(day.year, day.month, day.day, 6, tzinfo=UTC)

    def art(i: int, source: str, image: str | None = None) -> Article:
        return Article(
            feed_url=f"https://example.org/{source.lower()}.xml", source=source,
            guid=f"sample-{i}", url=f"https://example.org/{i}", title=f"Sample headline {i}",
            summary="A sample summary of the story. " * 4, published=published, image=image,
        )

    lead = Story(art(1, "Herald", "https://example.org/1.jpg"), (art(2, "Ledger"),))
    other = Story(art(3, "Wire", "https://example.org/3.jpg"))
    plain = Story(art(4, "Street"))
    return Selection(day=day, sections=(
        Section("Top stories", (lead, other)), Section("Science", (plain,), topic="science"),
    ))  # fmt: skip


def check_templates(config: Config) -> None:
    """Render the configured templates with a sample day; TemplateError if any part fails."""
    now = datetime.now(UTC)
    render_variant(sample_selection(now.date()), config, variant="check", now=now)
    render_variant(Selection(day=now.date(), sections=()), config, variant="check", now=now)
