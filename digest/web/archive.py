"""The published editions: the web version of a frozen digest (``/view/DAY``), the list
of past editions (``/archive``) and the same as an Atom feed (``/feed.xml``).

Only what the store froze when sending began is published: a preview or a dry run
freezes nothing, so it never appears. Every personal field of the frozen HTML is a
placeholder; the web version fills them with neutral values (nobody's name, address
or token), and the feed carries exactly that page.

The feed is built with lxml, never by pasting strings: every value is escaped by the
serializer, and characters XML 1.0 cannot carry at all (C0 controls, lone surrogates)
are dropped first, or one bad headline would make the whole feed unreadable.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from email.utils import format_datetime, parsedate_to_datetime
from urllib.parse import quote, urlsplit

from lxml import etree

from digest.config import Config
from digest.mail.message import from_domain
from digest.models import Personal, Rendered
from digest.render import variant as render
from digest.render.strings import format_date
from digest.store.facade import Store
from digest.store.journal import FrozenVariant

ATOM = "http://www.w3.org/2005/Atom"
PER_PAGE = 30  # days a page of /archive lists: a month at a glance
FEED_ENTRIES = 20  # editions in the feed: readers keep what they fetched before
# Stands in for the address in "You receive this email because {email} subscribed".
_SOMEONE = {"en": "a reader", "de": "jemand"}
# XML 1.0 has no way to write these, escaped or not.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# One story card's headline in the house template (templates/_components.mjml.j2).
_STORY = re.compile(r'<h3\b[^>]*\bclass="[^"]*\bds-ink\b')
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the web version ---------------------------------------------------------------

def split_variant(name: str) -> tuple[str, str]:
    """(time-zone group, variant key) of a stored variant name, as pipeline stores them
    ("" for the newsletter's own zone, "Asia/Tokyo|all" for another group's)."""
    group, _, key = name.rpartition("|")
    return group, key


def pick_variant(stored: list[Rendered]) -> Rendered | None:
    """The everything-edition of the day: 'all' (of the newsletter's own time zone first)."""
    for test in (lambda v: v == "all", lambda v: v.endswith("|all"), lambda v: True):
        found = next((r for r in stored if test(r.variant)), None)
        if found is not None:
            return found
    return None


def pick_edition(stored: list[Rendered], zone: str | None) -> Rendered | None:
    """The variant ``/view/DAY`` shows: pick_variant's, or with ``zone`` that
    time-zone group's own everything-edition."""
    if zone is None:
        return pick_variant(stored)
    return pick_variant([r for r in stored if split_variant(r.variant)[0] == zone])


def view_url(config: Config, day: date, group: str = "", *, primary: bool = True) -> str:
    url = f"{config.newsletter.base_url}/view/{day.isoformat()}"
    return url if primary else f"{url}?zone={quote(group, safe='/')}"


def web_version(config: Config, rendered: Rendered, day: date, *,
                zone: str | None = None) -> str:
    """The variant's HTML with neutral personal fields: nobody's name, address or token."""
    nl = config.newsletter
    personal = Personal(
        email=_SOMEONE.get(nl.language, _SOMEONE["en"]),
        name=render.STRINGS[nl.language]["reader"],
        unsubscribe_url=f"{nl.base_url}/unsubscribe",
        unsubscribe_mailto=nl.unsubscribe_mailto or f"unsubscribe@{from_domain(config)}",
        view_url=view_url(config, day, zone or "", primary=zone is None),
        # A web page has no reader's zone: the edition's own, else the list's.
        timezone=zone or config.schedule.timezone,
    )
    page, _text = render.personalise(rendered, personal)
    return page


# -- editions ----------------------------------------------------------------------

@dataclass(frozen=True)
class Edition:
    """One time-zone group's edition of one day, as the archive lists it."""

    day: date
    group: str  # "" is the newsletter's own zone
    frozen: datetime
    rendered: Rendered
    primary: bool  # the one /view/DAY shows without ?zone=

    @property
    def stories(self) -> int | None:
        """Story cards in the HTML; None for a template without the house card."""
        return len(_STORY.findall(self.rendered.html)) or None

    def url(self, config: Config) -> str:
        return view_url(config, self.day, self.group, primary=self.primary)

    def html(self, config: Config) -> str:
        return web_version(config, self.rendered, self.day,
                           zone=None if self.primary else self.group)


def editions(stored: list[FrozenVariant]) -> list[Edition]:
    """One edition per day and time-zone group, newest day first, the one
    ``/view/DAY`` shows first within its day."""
    by_day: dict[date, list[FrozenVariant]] = {}
    for v in stored:
        by_day.setdefault(v.day, []).append(v)
    out: list[Edition] = []
    for day in sorted(by_day, reverse=True):
        variants = by_day[day]
        shown = pick_variant([v.rendered for v in variants])
        groups: dict[str, list[FrozenVariant]] = {}
        for v in variants:
            groups.setdefault(split_variant(v.rendered.variant)[0], []).append(v)
        found = []
        for group, members in groups.items():
            chosen = pick_variant([m.rendered for m in members])
            assert chosen is not None  # a group has at least one variant
            found.append(Edition(day=day, group=group, rendered=chosen,
                                 frozen=min(_aware(m.frozen) for m in members),
                                 primary=chosen is shown))
        out += sorted(found, key=lambda e: (not e.primary, e.group))
    return out


def _aware(t: datetime) -> datetime:
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# -- /archive ----------------------------------------------------------------------

@dataclass(frozen=True)
class Page:
    title: str
    body: str  # HTML, every value escaped


def archive_page(config: Config, store: Store, raw: str | None) -> Page | None:
    """Page ``raw`` (1 when absent) of past editions; None for a page that is not there."""
    total = len(store.digest_days())
    pages = max(1, -(-total // PER_PAGE))
    number = _page_number(raw)
    if number is None or number > pages:
        return None
    nl = config.newsletter
    title = f"{nl.name}: past editions"
    if not total:
        return Page(title, "<p>No editions yet. The first one appears here once it "
                           "has been sent.</p>")
    found = editions(store.frozen_variants(PER_PAGE, (number - 1) * PER_PAGE))
    items = "\n".join(_item(config, e) for e in found)
    feed = _e(f"{nl.base_url}/feed.xml")
    body = (f'<ul class="archive">\n{items}\n</ul>\n'
            f"{_nav(config, number, pages)}"
            f'<p class="small">Follow along in a feed reader: <a href="{feed}" '
            f'type="application/atom+xml">{feed}</a></p>')
    return Page(title, body)


def _page_number(raw: str | None) -> int | None:
    if raw is None:
        return 1
    # Digits only: int() would also take " 2", "+2", "٢" and "2_0".
    if not raw.isascii() or not raw.isdigit() or len(raw) > 6:
        return None
    return int(raw) if int(raw) >= 1 else None


def _item(config: Config, e: Edition) -> str:
    lang = config.newsletter.language
    when = format_date(e.day, lang, "long")
    zone = "" if e.primary else f" ({_e(e.group or config.schedule.timezone)} edition)"
    count = f' <span class="small">· {e.stories} stories</span>' if e.stories else ""
    return (f'<li><a href="{_e(e.url(config))}"><time datetime="{e.day.isoformat()}">'
            f"{_e(when)}</time>{zone}</a><br>{_e(e.rendered.subject)}{count}</li>")


def _nav(config: Config, number: int, pages: int) -> str:
    if pages == 1:
        return ""
    base = f"{config.newsletter.base_url}/archive"
    links = []
    if number > 1:
        links.append(f'<a rel="prev" href="{_e(base)}?page={number - 1}">Newer editions</a>')
    if number < pages:
        links.append(f'<a rel="next" href="{_e(base)}?page={number + 1}">Older editions</a>')
    return f"<p>{' · '.join(links)} <span class=\"small\">(page {number} of {pages})</span></p>\n"


def _e(s: str) -> str:
    return html.escape(s, quote=True)


# -- /feed.xml ---------------------------------------------------------------------

@dataclass(frozen=True)
class Feed:
    body: bytes
    etag: str
    modified: datetime | None  # None for an empty archive

    def headers(self) -> dict[str, str]:
        out = {"ETag": self.etag}
        if self.modified is not None:
            out["Last-Modified"] = format_datetime(self.modified, usegmt=True)
        return out

    def fresh_for(self, request_headers: Mapping[str, str]) -> bool:
        """Whether a conditional GET already has this feed (answer 304)."""
        match = request_headers.get("if-none-match")
        if match is not None:  # RFC 9110 13.1.3: If-None-Match wins over the date
            tags = {t.strip().removeprefix("W/") for t in match.split(",")}
            return "*" in tags or self.etag in tags
        since = _http_date(request_headers.get("if-modified-since"))
        return since is not None and self.modified is not None and \
            self.modified.replace(microsecond=0) <= since


def _http_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def feed(config: Config, store: Store) -> Feed:
    """The newest FEED_ENTRIES editions as an Atom feed (RFC 4287)."""
    found = editions(store.frozen_variants(FEED_ENTRIES))[:FEED_ENTRIES]
    modified = max((e.frozen for e in found), default=None)
    body = atom(config, found, modified or _EPOCH)
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Feed(body, etag, modified)


def atom(config: Config, found: list[Edition], updated: datetime) -> bytes:
    nl = config.newsletter
    root = etree.Element(f"{{{ATOM}}}feed", nsmap={None: ATOM})
    root.set("{http://www.w3.org/XML/1998/namespace}lang", nl.language)
    _add(root, "id", f"{nl.base_url}/feed.xml")
    _add(root, "title", nl.name)
    _add(root, "updated", _stamp(updated))
    _add(root, "link", rel="self", type="application/atom+xml", href=f"{nl.base_url}/feed.xml")
    _add(root, "link", rel="alternate", type="text/html", href=f"{nl.base_url}/archive")
    # Required unless every entry has its own (RFC 4287 4.1.1).
    _add(_add(root, "author"), "name", nl.name)
    _add(root, "generator", "digest")
    authority = urlsplit(nl.base_url).hostname or "localhost"
    for e in found:
        entry = _add(root, "entry")
        tail = f"edition/{e.group}" if e.group else "edition"
        _add(entry, "id", f"tag:{authority},{e.day.isoformat()}:{quote(tail, safe='/')}")
        _add(entry, "title", e.rendered.subject, type="text")
        _add(entry, "updated", _stamp(e.frozen))
        _add(entry, "published", _stamp(e.frozen))
        _add(entry, "link", rel="alternate", type="text/html", href=e.url(config))
        if e.rendered.preheader:
            _add(entry, "summary", e.rendered.preheader, type="text")
        _add(entry, "content", e.html(config), type="html")
    return bytes(etree.tostring(root, xml_declaration=True, encoding="utf-8"))


def _add(parent: etree._Element, tag: str, text: str | None = None,
         **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ATOM}}}{tag}",
                          {k: _NOT_XML.sub("", v) for k, v in attrs.items()})
    if text is not None:
        el.text = _NOT_XML.sub("", text)
    return el


def _stamp(t: datetime) -> str:
    return _aware(t).astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


__all__ = ["FEED_ENTRIES", "PER_PAGE", "Edition", "Feed", "Page", "archive_page", "atom",
           "editions", "feed", "pick_edition", "pick_variant", "split_variant", "view_url",
           "web_version"]
