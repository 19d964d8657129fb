"""Selection -> Rendered: Jinja2 fills the MJML template, mjml-python compiles it once.

A variant is rendered with placeholder tokens where personal data goes; each
subscriber's copy is then :func:`digest.render.personal.personalise` (microseconds)
instead of a Jinja render plus MJML compile (milliseconds).
"""

from __future__ import annotations

import logging
import math
import re
import textwrap
from dataclasses import replace
from datetime import UTC, date, datetime
from email.utils import parseaddr
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from markupsafe import Markup

from digest.config import Config
from digest.models import Article, Rendered, Section, Selection, Story
from digest.render import when
from digest.render.personal import PLACEHOLDERS, TOKEN_MARK, personalise
from digest.render.qp import encoded_size
from digest.render.strings import STRINGS, format_date
from digest.render.templating import MJML_TAGS, check_mjml_tags, compile_mjml, render_jinja
from digest.render.theme import palette
from digest.textcut import cut

log = logging.getLogger(__name__)

# Re-exported: callers and user-facing docs know them as digest.render.variant.*
__all__ = ["MJML_TAGS", "PLACEHOLDERS", "STRINGS", "check_mjml_tags", "format_date",
           "personalise", "render_variant"]

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
TEXT_WIDTH = 78


def one_line(s: str) -> str:
    """Collapse every run of whitespace (CR/LF included) to one space: safe in a header."""
    return " ".join(s.split())


def clip(s: str, limit: int, end: str = "…") -> str:
    """Cut ``s`` to at most ``limit`` characters at a word boundary."""
    s = one_line(s)
    if len(s) <= limit:
        return s
    cut = s[: limit - len(end) + 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return (cut or s[: limit - len(end)]) + end


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


_LINK_SCHEMES = ("http", "https", "mailto")


def safe_url(url: str | None) -> str:
    """``url`` if it is an absolute http(s) or mailto link, else ''.

    Feed links reach both parts of the email, and a template may print them without
    the ``href`` filter: a ``javascript:`` or ``data:`` link, one hidden behind
    control characters (browsers drop leading C0 controls and tabs before the
    scheme) or a relative one (it points nowhere in a mailbox) must never get there.
    """
    if not url:
        return ""
    url = url.strip()
    if not url.isprintable():
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _LINK_SCHEMES:
        return ""
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return ""
    return url.replace(" ", "%20")


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


def clean_selection(selection: Selection) -> Selection:
    """The selection with placeholder tokens removed from all feed text (normally a no-op)."""
    def story(s: Story) -> Story:
        lead, others = _clean_article(s.lead), tuple(_clean_article(a) for a in s.others)
        if lead is s.lead and all(x is y for x, y in zip(others, s.others, strict=True)):
            return s
        return replace(s, lead=lead, others=others)

    sections = tuple(replace(sec, stories=tuple(story(s) for s in sec.stories))
                     for sec in selection.sections)
    return replace(selection, sections=sections)


# --- Jinja environment ---------------------------------------------------------


def _href(url: str | None) -> str:
    """Only http(s)/mailto links reach the email; anything else (javascript:) becomes ''."""
    return safe_url(url)


# The longest a story time's label gets ("yesterday 22:10"): a time token is wrapped
# as a word this wide, so the line it lands on fits once the label replaces it.
_WHEN_WIDTH = 15


def _wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """textwrap.fill for the text part; long URLs stay whole rather than break."""
    text = one_line(str(text))
    tokens = [m.group(0) for m in when.TOKEN.finditer(text)] if "__dgst_at_" in text else []
    if tokens:
        stand_ins = [f"\x00{i:0{_WHEN_WIDTH - 2}d}\x00" for i in range(len(tokens))]
        for token, stand_in in zip(tokens, stand_ins, strict=True):
            text = text.replace(token, stand_in, 1)
        wrapped = _fill(text, width, indent, first)
        for token, stand_in in zip(tokens, stand_ins, strict=True):
            wrapped = wrapped.replace(stand_in, token)
        return wrapped
    return _fill(text, width, indent, first)


def _fill(text: str, width: int, indent: str, first: str | None) -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _underline(text: str, char: str = "-") -> str:
    return char * min(len(text), TEXT_WIDTH)


# How long a summary may be where it is shown. Both parts of the email cut with
# this one table and one function (digest.textcut.cut), so the HTML and the text
# part always end a summary at the same word.
SUMMARY_LIMITS = {"lead": 420, "card": 200}


def _summary(text: str, place: str = "card") -> str:
    """The summary as shown at ``place`` ("lead" or "card"): one cut for both parts."""
    return cut(text, SUMMARY_LIMITS.get(place, SUMMARY_LIMITS["card"]))


def email_image(url: str | None) -> str:
    """``url`` if an email may show it: https only. An http image would be blocked
    (mixed content) or shown as a broken box, so it is dropped, not shown."""
    safe = safe_url(url)
    return safe if safe[:8].lower() == "https://" else ""


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
    env.filters.update(wrap=_wrap, clip=clip, href=_href, underline=_underline,
                       summary=_summary, image=email_image)
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
