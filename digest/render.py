"""Selection -> Rendered: Jinja2 fills the MJML template, mjml-python compiles it once.

A variant is rendered with placeholder tokens where personal data goes; each
subscriber's copy is then :func:`personalise`, a handful of ``str.replace`` calls
(microseconds) instead of a Jinja render plus MJML compile (milliseconds).
"""

from __future__ import annotations

import html as htmllib
import re
import textwrap
import traceback
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from mjml import mjml2html

from digest.config import Config
from digest.errors import TemplateError
from digest.models import Article, Personal, Rendered, Section, Selection, Story

# Tokens stand in for personal data in a rendered variant. Letters, digits and
# underscores only: Jinja autoescape, MJML, URL contexts and quoted-printable all
# leave them byte for byte alone. Feed text can never smuggle one in: render_variant
# strips them from every article field before the template sees it.
PLACEHOLDERS: dict[str, str] = {
    "name": "__dgst_name_7c1f__",
    "email": "__dgst_email_7c1f__",
    "unsubscribe_url": "__dgst_unsub_7c1f__",
    "view_url": "__dgst_view_7c1f__",
}
_TOKEN_MARK = "__dgst_"

# Every element mjml-python (MRML) understands. It copies an unknown <mj-*> tag
# straight into the HTML instead of failing, so render checks against this list.
MJML_TAGS: frozenset[str] = frozenset(
    {
        "mjml", "mj-head", "mj-body", "mj-include",
        "mj-attributes", "mj-all", "mj-class", "mj-breakpoint", "mj-font",
        "mj-preview", "mj-raw", "mj-style", "mj-title",
        "mj-accordion", "mj-accordion-element", "mj-accordion-title", "mj-accordion-text",
        "mj-button", "mj-carousel", "mj-carousel-image", "mj-column", "mj-divider",
        "mj-group", "mj-hero", "mj-image", "mj-navbar", "mj-navbar-link", "mj-section",
        "mj-social", "mj-social-element", "mj-spacer", "mj-table", "mj-text", "mj-wrapper",
    }
)  # fmt: skip
_MJ_TAG = re.compile(r"</?(mj(?:ml|-[a-z0-9-]+))\b", re.IGNORECASE)

# Fixed strings of the shipped template, per newsletter.language.
STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "hello": "Hello {name},",
        "reader": "there",
        "intro": "Here is today's selection.",
        "lead": "Today's lead",
        "also": "also reported by",
        "read": "Read",
        "empty": "No new stories today.",
        "why": "You receive this email because {email} subscribed to {newsletter}.",
        "unsubscribe": "Unsubscribe",
        "view": "View in your browser",
        "image": "Image",
    },
    "de": {
        "hello": "Hallo {name},",
        "reader": "zusammen",
        "intro": "Hier ist die Auswahl des Tages.",
        "lead": "Das Wichtigste heute",
        "also": "auch berichtet von",
        "read": "Lesen",
        "empty": "Heute gibt es keine neuen Meldungen.",
        "why": "Sie erhalten diese E-Mail, weil {email} {newsletter} abonniert hat.",
        "unsubscribe": "Abbestellen",
        "view": "Im Browser ansehen",
        "image": "Bild",
    },
}

# Two languages do not justify Babel; a table is exact and has no data files.
_DATES: dict[str, dict[str, Any]] = {
    "en": {
        "days": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
        "months": ("January", "February", "March", "April", "May", "June", "July",
                   "August", "September", "October", "November", "December"),
        "long": "{weekday}, {day} {month} {year}",
        "short": "{day} {mon} {year}",
    },
    "de": {
        "days": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag",
                 "Sonntag"),
        "months": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
                   "September", "Oktober", "November", "Dezember"),
        "long": "{weekday}, {day}. {month} {year}",
        "short": "{day}. {mon} {year}",
    },
}  # fmt: skip

SUBJECT_MAX = 90
TEXT_WIDTH = 78


def format_date(day: date, language: str, style: str = "long") -> str:
    """'Friday, 27 November 2026' / 'Freitag, 27. November 2026' ('short': '27 Nov 2026')."""
    names = _DATES[language]
    month = names["months"][day.month - 1]
    mon = month if len(month) <= 4 else (month[:3] + ("." if language == "de" else ""))
    return str(names[style]).format(
        weekday=names["days"][day.weekday()], day=day.day, month=month, mon=mon, year=day.year
    )


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


def make_preheader(selection: Selection, limit: int = 140) -> str:
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


def _strip_tokens(value: str) -> str:
    # Repeat until stable: removing one token must not leave another behind
    # ("__dgst_na" + token + "me_7c1f__").
    while any(token in value for token in PLACEHOLDERS.values()):
        for token in PLACEHOLDERS.values():
            value = value.replace(token, "")
    return value


def _clean_article(a: Article) -> Article:
    texts = (a.source, a.url, a.title, a.summary, a.content_html, a.author or "", a.image or "")
    if not any(_TOKEN_MARK in t for t in texts):
        return a
    s = _strip_tokens
    return replace(
        a, source=s(a.source), url=s(a.url), title=s(a.title), summary=s(a.summary),
        content_html=s(a.content_html), author=a.author and s(a.author),
        image=a.image and s(a.image),
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
    if not url:
        return ""
    scheme = urlsplit(url.strip()).scheme.lower()
    return url.strip() if scheme in ("http", "https", "mailto") else ""


def _wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """textwrap.fill for the text part; long URLs stay whole rather than break."""
    return textwrap.fill(
        one_line(str(text)),
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _underline(text: str, char: str = "-") -> str:
    return char * min(len(text), TEXT_WIDTH)


@lru_cache(maxsize=8)
def _environment(templates_dir: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates_dir),
        # The text part must not be HTML-escaped; everything else is.
        autoescape=lambda name: name is None or not name.endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=True,  # the preview rebuilds as templates change
    )
    env.filters.update(wrap=_wrap, clip=clip, href=_href, underline=_underline)
    env.globals.update(also_reported=also_reported)
    return env


def _template_error(e: Exception, templates_dir: Path, file_name: str) -> TemplateError:
    """A TemplateError naming file:line, for a syntax error or a failure while rendering."""
    where = file_name
    if isinstance(e, jinja2.TemplateSyntaxError):
        where = f"{e.filename or e.name or file_name}:{e.lineno}"
    else:
        # Jinja rewrites tracebacks so template frames carry the template's file and line.
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(".j2")]
        if frames:
            where = f"{frames[-1].filename}:{frames[-1].lineno}"
    if isinstance(e, jinja2.UndefinedError):
        hint = "check the variable's spelling; available: newsletter, day, date, lead, " \
               "sections, selection, personal, t, subject, preheader"
    elif isinstance(e, jinja2.TemplateSyntaxError):
        hint = "fix the Jinja syntax there ({% %} and {{ }} must be balanced and closed)"
    else:
        hint = "fix the template; `digest preview` shows the result"
    if not where.startswith("/") and not where.startswith(str(templates_dir)):
        where = str(templates_dir / where)
    return TemplateError(f"{where}: {type(e).__name__}: {e}", hint=hint)


def _render_jinja(env: jinja2.Environment, templates_dir: Path, name: str, ctx: Mapping[str, Any]
                  ) -> str:
    try:
        return env.get_template(name).render(ctx)
    except jinja2.TemplateNotFound as e:
        raise TemplateError(
            f"{templates_dir / str(e.name)}: template not found",
            hint="set paths.templates / paths.template in config.toml, or create the file",
        ) from None
    except jinja2.TemplateError as e:
        raise _template_error(e, templates_dir, name) from None
    except Exception as e:  # a filter or global failing on odd input is a template problem too
        raise _template_error(e, templates_dir, name) from e


def _locate(tag: str, templates_dir: Path, fallback: str, output: str, pos: int) -> str:
    """file:line of the first use of ``tag`` in the template sources (or in the output)."""
    pattern = re.compile(rf"<{re.escape(tag)}\b", re.IGNORECASE)
    for path in sorted(templates_dir.glob("*.j2")):
        for no, line in enumerate(path.read_text("utf-8", "replace").splitlines(), 1):
            if pattern.search(line):
                return f"{path}:{no}"
    return f"{fallback} (rendered output, line {output.count(chr(10), 0, pos) + 1})"


def check_mjml_tags(mjml_src: str, templates_dir: Path, file_name: str) -> None:
    for m in _MJ_TAG.finditer(mjml_src):
        tag = m.group(1).lower()
        if tag not in MJML_TAGS:
            where = _locate(tag, templates_dir, str(templates_dir / file_name), mjml_src,
                            m.start())
            raise TemplateError(
                f"{where}: unknown MJML tag <{tag}>",
                hint="MJML would copy it into the email unchanged; see https://documentation.mjml.io"
                     " for the tags, e.g. mj-text, mj-section, mj-column, mj-image",
            )


def _compile(mjml_src: str, templates_dir: Path, file_name: str) -> str:
    check_mjml_tags(mjml_src, templates_dir, file_name)
    try:
        out = mjml2html(mjml_src, disable_comments=True, fonts={})
    except Exception as e:  # mjml-python raises plain ValueError/RuntimeError
        raise TemplateError(
            f"{templates_dir / file_name}: MJML does not compile: {e}",
            hint="check the MJML structure (mj-section > mj-column > content) and that "
                 "mj-preview holds plain text only",
        ) from None
    return str(out)


# --- public API ----------------------------------------------------------------


def _context(selection: Selection, config: Config, variant: str, now: datetime
             ) -> dict[str, Any]:
    nl = config.newsletter
    lang = nl.language
    t = STRINGS[lang]
    day_long = format_date(selection.day, lang)
    lead = selection.lead
    return {
        "newsletter": nl,
        "language": lang,
        "day": selection.day,
        "date": day_long,
        "date_short": format_date(selection.day, lang, "short"),
        "now": now,
        "variant": variant,
        "selection": selection,
        "lead": lead,
        "sections": body_sections(selection),
        # Tokens, never real data: the variant is shared by every subscriber.
        "personal": dict(PLACEHOLDERS),
        "t": t,
        "subject": make_subject(nl.name, format_date(selection.day, lang, "short"), lead),
        "preheader": make_preheader(selection),
    }


def render_variant(selection: Selection, config: Config, *, variant: str, now: datetime
                   ) -> Rendered:
    """Render one digest variant: MJML -> HTML once, plus the text part, with tokens."""
    templates_dir = config.templates_dir
    env = _environment(str(templates_dir))
    name = config.model.paths.template
    ctx = _context(clean_selection(selection), config, variant, now)
    mjml_name, text_name = f"{name}.mjml.j2", f"{name}.txt.j2"
    mjml_src = _render_jinja(env, templates_dir, mjml_name, ctx)
    html = _compile(mjml_src, templates_dir, mjml_name)
    text = _render_jinja(env, templates_dir, text_name, ctx)
    return Rendered(
        variant=variant,
        subject=ctx["subject"],
        preheader=ctx["preheader"],
        mjml=mjml_src,
        html=html,
        text=_tidy_text(text),
    )


def _tidy_text(text: str) -> str:
    # Templates are easier to write with generous blank lines; readers want at most one.
    # "-- " (with its space) is the signature separator mail clients recognise.
    lines = [line if line == "-- " else line.rstrip() for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip("\n") + "\n"


_TOKEN_SPLIT = re.compile("(" + "|".join(map(re.escape, PLACEHOLDERS.values())) + ")")
_FIELD_OF = {token: name for name, token in PLACEHOLDERS.items()}


@lru_cache(maxsize=64)
def _segments(s: str) -> tuple[str, ...]:
    # Split once per variant: odd items are tokens. The cache key is the str itself
    # (its hash is cached on the object), so later calls cost a dict lookup, and a
    # personalise is then one join instead of eight scans of ~60 KB.
    return tuple(_TOKEN_SPLIT.split(s))


def _fill(s: str, values: dict[str, str]) -> str:
    parts = list(_segments(s))
    parts[1::2] = [values[t] for t in parts[1::2]]
    return "".join(parts)


def personalise(rendered: Rendered, personal: Personal) -> tuple[str, str]:
    """(html, text) for one subscriber: tokens replaced, escaped in the HTML only."""
    raw = {token: getattr(personal, name) for token, name in _FIELD_OF.items()}
    escaped = {token: htmllib.escape(v, quote=True) for token, v in raw.items()}
    return _fill(rendered.html, escaped), _fill(rendered.text, raw)


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
