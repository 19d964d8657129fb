"""The checks shown beside the email in `digest preview`.

Each check reads the copy exactly as `digest send` would send it (the encoded
MIME message, the personalised HTML and text), so what it reports is what a
reader's mail client gets. Loading the images is left to the browser (the page
tries each one and reports failures), which works offline: an image that cannot
be fetched is simply reported.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from email.message import EmailMessage
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import urlsplit

from digest.config import Config
from digest.models import Selection
from digest.pipeline import Copy
from digest.rank import select as ranker
from digest.render.variant import PLACEHOLDERS, PREHEADER_MAX, SUBJECT_MAX, body_sections

Level = Literal["ok", "info", "warn", "error"]

# Gmail cuts the HTML part ("[Message clipped]") past about 102 KB as transferred,
# hiding the rest, the footer and its unsubscribe link included.
GMAIL_CLIP_BYTES = 102 * 1024
SIZE_WARN_BYTES = 90 * 1024
# Desktop inboxes show roughly 70-80 characters of a subject, phones 35-40.
SUBJECT_LIMIT = SUBJECT_MAX  # the subject render builds stays within this
SUBJECT_MOBILE = 40
# Clients show 40-130 characters of preheader after the subject, depending on width.
PREHEADER_LIMIT = PREHEADER_MAX
_TOKEN = re.compile(r"__dgst_[a-z]+_[0-9a-f]+__")


@dataclass(frozen=True)
class Check:
    key: str  # stable id: the page and the tests find a check by it
    level: Level
    title: str
    detail: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class Image:
    src: str
    alt: str | None  # None: no alt attribute at all (alt="" marks a decorative image)


@dataclass(frozen=True)
class Link:
    href: str
    text: str
    count: int


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]
    images: tuple[Image, ...] = ()
    links: tuple[Link, ...] = ()

    def get(self, key: str) -> Check:
        return next(c for c in self.checks if c.key == key)

    @property
    def worst(self) -> Level:
        order: tuple[Level, ...] = ("ok", "info", "warn", "error")
        return max((c.level for c in self.checks), key=order.index, default="ok")


# -- reading the HTML ------------------------------------------------------------

class _Scan(HTMLParser):
    """Images, links (with their text) and text runs of one HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[Image] = []
        self.links: list[tuple[str, str]] = []
        self.texts: list[str] = []
        self._open: list[tuple[str, list[str]]] = []  # <a> elements not yet closed

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "img":
            image = Image(src=(a.get("src") or "").strip(), alt=a.get("alt"))
            self.images.append(image)
            for _, words in self._open:  # a linked image is named by its alt text
                words.append(image.alt or "")
        elif tag == "a" and "href" in a:
            self._open.append(((a["href"] or "").strip(), []))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._open:
            href, words = self._open.pop()
            self.links.append((href, " ".join(" ".join(words).split())))

    def handle_data(self, data: str) -> None:
        self.texts.append(data)
        for _, words in self._open:
            words.append(data)


def scan(html: str) -> _Scan:
    s = _Scan()
    s.feed(html)
    s.close()
    return s


def html_part_size(message: EmailMessage, fallback: str) -> int:
    """Bytes of the HTML part as it travels (after transfer encoding), what Gmail counts."""
    for part in message.walk():
        if part.get_content_type() == "text/html" and not part.is_multipart():
            payload = part.get_payload()
            if isinstance(payload, str):
                return len(payload.encode("utf-8", "surrogateescape"))
    return len(fallback.encode("utf-8"))


def has_html_part(message: EmailMessage) -> bool:
    return any(p.get_content_type() == "text/html" for p in message.walk())


# -- the checks -------------------------------------------------------------------

def check_size(copy: Copy) -> Check:
    if not has_html_part(copy.message):
        return Check("size", "info", "No HTML part", "this subscriber gets plain text only")
    size = html_part_size(copy.message, copy.html)
    kb, limit = size / 1024, GMAIL_CLIP_BYTES / 1024
    title = f"HTML part {kb:.1f} KB as sent, of Gmail's {limit:.0f} KB clip"
    if size > GMAIL_CLIP_BYTES:
        return Check("size", "error", title,
                     "Gmail will clip it: the rest, footer and unsubscribe link included, "
                     "hides behind “View entire message”")
    level: Level = "warn" if size > SIZE_WARN_BYTES else "ok"
    return Check("size", level, title, f"{limit - kb:.1f} KB to spare")


def check_alt(images: list[Image]) -> Check:
    missing = [i.src for i in images if i.alt is None]
    decorative = sum(1 for i in images if i.alt is not None and not i.alt.strip())
    note = f"; {decorative} marked decorative (alt=\"\")" if decorative else ""
    if missing:
        return Check("alt", "warn", f"{len(missing)} of {len(images)} images without alt text",
                     "screen readers and clients that block images show nothing for them" + note,
                     tuple(missing))
    if not images:
        return Check("alt", "ok", "No images")
    return Check("alt", "ok", f"All {len(images)} images have alt text", note.lstrip("; "))


def check_image_urls(images: list[Image]) -> Check:
    """What can be told without fetching; the page then loads each image."""
    bad, plain = [], []
    for i in images:
        scheme = urlsplit(i.src).scheme.lower()
        if scheme not in ("http", "https"):
            bad.append(i.src or "(empty src)")
        elif scheme == "http":
            plain.append(i.src)
    if bad:
        return Check("images", "error", f"{len(bad)} images cannot load in a mail client",
                     "relative, data: and empty URLs do not load in Gmail or Outlook: use "
                     "absolute https:// URLs", tuple(bad))
    if plain:
        return Check("images", "warn", f"{len(plain)} images over plain http",
                     "some clients block or warn about insecure images", tuple(plain))
    return Check("images", "ok", f"{len(images)} images", "loading them…" if images else "")


def check_subject(subject: str) -> Check:
    n = len(subject)
    if not subject.strip():
        return Check("subject", "error", "The subject is empty")
    seen = subject if n <= SUBJECT_MOBILE else subject[:SUBJECT_MOBILE].rstrip() + "…"
    detail = f"phones show about {SUBJECT_MOBILE}: “{seen}”"
    if n > SUBJECT_LIMIT:
        return Check("subject", "warn", f"Subject too long: {n} characters",
                     f"most inboxes cut it after about {SUBJECT_LIMIT}; {detail}")
    return Check("subject", "ok", f"Subject {n} characters", detail)


def check_preheader(preheader: str, texts: list[str]) -> Check:
    n = len(preheader)
    if not preheader.strip():
        return Check("preheader", "warn", "No preheader",
                     "inboxes show the first text of the email instead")
    if not any(preheader in " ".join(t.split()) for t in texts):
        return Check("preheader", "warn", "The preheader is not in the HTML",
                     "the template has no <mj-preview>: inboxes show the first text instead")
    if n > PREHEADER_LIMIT:
        return Check("preheader", "warn", f"Preheader too long: {n} characters",
                     f"inboxes show about {PREHEADER_LIMIT} at most; the rest is hidden")
    return Check("preheader", "ok", f"Preheader {n} characters")


def planned_sections(config: Config, variant: str) -> list[str]:
    """Section titles the config asks for in this variant, in order (as rank fills them)."""
    wanted = None if variant == "all" else set(variant.split("+"))
    sel = config.selection
    titles = [s.title for s in sel.sections
              if wanted is None or not s.topics or set(s.topics) & wanted]
    if sel.topic_sections:
        titles += [spec.title or name.capitalize() for name, spec in config.topics.items()
                   if wanted is None or name in wanted]
    if wanted is None and sel.more_title:
        titles.append(sel.more_title)
    return titles


def check_sections(config: Config, variant: str, selection: Selection | None) -> Check:
    if selection is None:
        return Check("sections", "info", "Sections: not known for a stored digest",
                     "a digest frozen in the store keeps its HTML, not its sections")
    filled = {s.title for s in selection.sections}
    shown = {s.title for s in body_sections(selection)}
    empty = [t for t in planned_sections(config, variant) if t not in filled]
    lead_only = [s.title for s in selection.sections if s.title not in shown]
    items = tuple(f"{t}: no stories today (left out)" for t in empty) + tuple(
        f"{t}: only the lead story, shown above it (no heading)" for t in lead_only)
    if items:
        return Check("sections", "warn",
                     f"{len(items)} empty section{'s' if len(items) > 1 else ''}",
                     f"{len(shown)} sections in the email", items)
    return Check("sections", "ok", f"{len(shown)} sections, none empty",
                 ", ".join(s.title for s in body_sections(selection)))


def collect_links(found: list[tuple[str, str]]) -> list[Link]:
    counts = Counter(href for href, _ in found)
    texts: dict[str, str] = {}
    for href, text in found:
        if text and not texts.get(href):
            texts[href] = text
    return [Link(href=h, text=texts.get(h, ""), count=n) for h, n in counts.items()]


def check_links(links: list[Link], config: Config, copy: Copy) -> Check:
    problems = []
    for link in links:
        scheme = urlsplit(link.href).scheme.lower()
        if not link.href or link.href == "#":
            problems.append(f"empty link: “{link.text or '(no text)'}”")
        elif scheme not in ("http", "https", "mailto"):
            problems.append(f"{link.href}: not an absolute http(s) or mailto link")
    tokens = sorted(set(_TOKEN.findall(copy.html + copy.text)) & set(PLACEHOLDERS.values()))
    problems += [f"{t}: personal field left unfilled" for t in tokens]
    unsubscribe = f"{config.newsletter.base_url}/unsubscribe/"
    if has_html_part(copy.message) and not any(ln.href.startswith(unsubscribe) for ln in links):
        problems.append("no unsubscribe link in the body (only the List-Unsubscribe header)")
    title = f"{len(links)} links" + (f", {len(problems)} problems" if problems else "")
    level: Level = "error" if tokens else "warn" if problems else "ok"
    return Check("links", level, title, "listed below", tuple(problems))


def check_dark(html: str) -> Check:
    if re.search(r"prefers-color-scheme\s*:\s*dark", html, re.IGNORECASE):
        return Check("dark", "ok", "Dark-mode styles present", "see them with “Dark mode”")
    return Check("dark", "info", "No dark-mode styles",
                 "Apple Mail shows it as is; Gmail and Outlook apps invert its colours their way")


def check_roster(problems: tuple[str, ...]) -> Check | None:
    if not problems:
        return None
    return Check("subscribers", "warn", f"{len(problems)} subscriber entries skipped",
                 "fix them in subscribers/", problems)


def run(copy: Copy, config: Config, *, selection: Selection | None,
        roster_problems: tuple[str, ...] = ()) -> Report:
    """Every check on one subscriber's copy. ``selection`` is None for a stored digest."""
    found = scan(copy.html)
    links = collect_links(found.links)
    variant = ranker.variant_key(copy.subscriber)
    checks = [
        check_size(copy),
        check_subject(copy.rendered.subject),
        check_preheader(copy.rendered.preheader, found.texts),
        check_alt(found.images),
        check_image_urls(found.images),
        check_sections(config, variant, selection),
        check_links(links, config, copy),
        check_dark(copy.html),
    ]
    roster = check_roster(roster_problems)
    if roster is not None:
        checks.append(roster)
    return Report(checks=tuple(checks), images=tuple(found.images), links=tuple(links))


__all__ = ["Check", "Image", "Link", "Report", "html_part_size", "planned_sections", "run",
           "scan"]
