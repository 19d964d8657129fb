"""Feed documents -> sanitized, normalised ``Article``s.

Three readers, one normaliser. Well-formed RSS/RDF/Atom goes through lxml
(``digest.collect.xml``, ~50x faster than feedparser); JSON Feed through ``json``; anything
else — malformed XML, odd dialects — through feedparser, which reads what the others
refuse. feedparser's own sanitizer and relative-URI pass are switched off: nh3
sanitizes every path afterwards anyway, and those two passes are ~75% of its run time.

Everything here is pure and synchronous; ``digest.collect.collector`` runs it off the event loop.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import logging
import re
import time
import xml.sax
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, Literal, NamedTuple
from urllib.parse import quote, urljoin, urlsplit

from digest.collect.charset import decode, strip_entity_declarations
from digest.collect.dates import EARLIEST_YEAR, news_date
from digest.collect.images import pick_image
from digest.collect.jsonfeed import read_json_feed
from digest.collect.outlet import outlet_name
from digest.collect.text import (
    SUMMARY_CHARS,
    canonical_url,
    collapse,
    html_to_text,
    is_web,
    sanitize,
    shorten,
    summarise,
    teaser_text,
)
from digest.collect.xml import read_xml
from digest.errors import FeedError
from digest.models import Article, Feed

log = logging.getLogger(__name__)
Reader = Literal["auto", "feedparser"]

__all__ = ["SUMMARY_CHARS", "Document", "Parsed", "canonical_url", "html_to_text",
           "parse_feed", "parse_new", "read_document", "read_entries", "sanitize", "shorten",
           "source_name"]

_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]+);", re.I)
_is_web = is_web


class Parsed(NamedTuple):
    """One feed document read by ``parse_new``."""

    entries: int  # every entry in the document, as feedparser counts them
    articles: list[Article]  # the new ones, normalised
    title: str  # the feed's own title, as it gives it
    site: str  # the feed's link to its site ("" when it gives none)


@dataclass(frozen=True)
class Document:
    """A feed document's channel (its site link and title) and its entries, in
    feedparser's shape."""

    site: str
    title: str
    entries: list[Mapping[str, Any]]


def parse_feed(body: bytes, feed: Feed, *, now: datetime, base_url: str | None = None,
               content_type: str | None = None, reader: Reader = "auto") -> list[Article]:
    """Parse one feed document into Articles.

    ``base_url`` is where the document came from (after redirects); relative links
    resolve against it. ``content_type`` is the HTTP header (its charset is a hint).
    Raises ``FeedError`` (one line) when ``body`` is not a feed. Every entry becomes
    an Article except entries with no title, link, summary or content at all.
    ``reader="feedparser"`` skips the fast path (to compare the two).
    """
    doc = read_document(body, base_url=base_url, content_type=content_type, reader=reader)
    # Relative links in a local file can only mean the site the feed describes.
    base = base_url if _is_web(base_url) else doc.site
    source = source_name(feed, doc.title, doc.site)
    out: list[Article] = []
    for entry in doc.entries:
        article = _article(entry, feed, now=now, base=base or "", site=doc.site, source=source)
        if article is not None:
            out.append(article)
    return out


def parse_new(body: bytes, feed: Feed, *, now: datetime, known: Set[str],
              base_url: str | None = None, content_type: str | None = None) -> Parsed:
    """Every entry counted, Articles for those whose guid is not in ``known``, and
    the feed's title and site link (which name its outlet).

    The count is every entry, as feedparser counts them, even an empty one that
    gives no Article. Sanitizing is most of the parse cost, so an entry the store
    already has is counted but not normalised again.
    """
    doc = read_document(body, base_url=base_url, content_type=content_type)
    base = base_url if _is_web(base_url) else doc.site
    source = source_name(feed, doc.title, doc.site)
    out: list[Article] = []
    for entry in doc.entries:
        quick = str(entry.get("id") or "").strip() or str(entry.get("link") or "").strip()
        if quick and quick in known:
            continue
        article = _article(entry, feed, now=now, base=base or "", site=doc.site, source=source)
        if article is not None:
            out.append(article)
    return Parsed(len(doc.entries), out, doc.title, doc.site)


def source_name(feed: Feed, title: str, site: str) -> str:
    """The outlet a feed's articles carry: its configured name, else the one its own
    title gives (digest.collect.outlet)."""
    return feed.name if feed.named else outlet_name(title, site, feed.url)


def read_entries(body: bytes, *, base_url: str | None = None, content_type: str | None = None,
                 reader: Reader = "auto") -> tuple[str, list[Mapping[str, Any]]]:
    """(the site's link, the entries in feedparser's shape) by the fastest reader that
    understands ``body``."""
    doc = read_document(body, base_url=base_url, content_type=content_type, reader=reader)
    return doc.site, doc.entries


def read_document(body: bytes, *, base_url: str | None = None,
                  content_type: str | None = None, reader: Reader = "auto") -> Document:
    """The feed's site link, title and entries by the fastest reader that
    understands ``body``."""
    head = body[:3].lstrip(b"\xef\xbb\xbf") + body[3:64]
    if head.lstrip()[:1] == b"{" or "json" in (content_type or "").lower():
        return Document(*read_json_feed(body))
    web_base = base_url if _is_web(base_url) else None
    parsed = read_xml(body, content_type=content_type, base_url=web_base) \
        if reader == "auto" else None
    if parsed is not None:
        return Document(parsed.link, parsed.title, list(parsed.entries))
    if _looks_like_html(body):
        raise FeedError(_html_page(body, base_url))
    # Entity declarations go first: feedparser's expat would expand them.
    safe = strip_entity_declarations(body)
    headers = {"content-location": base_url} if web_base else {}
    if content_type:
        headers["content-type"] = content_type
    import feedparser  # only for what lxml refused: ~0.1 s of imports in each parse worker

    d = feedparser.parse(safe, response_headers=headers, sanitize_html=False,
                         resolve_relative_uris=False)
    if not d.entries and not d.get("version"):
        raise FeedError(_not_a_feed(body, d.get("bozo_exception"), base_url))
    if d.get("bozo"):
        log.debug("%s: tolerated malformed feed: %s", base_url, d.get("bozo_exception"))
    return Document(str(d.feed.get("link") or ""), collapse(str(d.feed.get("title") or "")),
                    list(d.entries))


# -- one entry -------------------------------------------------------------

def _article(entry: Mapping[str, Any], feed: Feed, *, now: datetime, base: str,
             site: str, source: str) -> Article | None:
    title = _title(entry)
    raw_link = str(entry.get("link") or "").strip()
    body_html, body_type = _body(entry)
    if not title and not raw_link and not body_html:
        return None
    content_base = _entry_base(entry, base, link=raw_link, site=site)
    content_html = sanitize(body_html, body_type, base=content_base)
    teaser_html = str(entry.get("summary") or "")
    teaser_type = str((entry.get("summary_detail") or {}).get("type") or "text/html")
    if not teaser_html or (teaser_html == body_html and teaser_type == body_type):
        # Reading the whole body for 300 characters would be waste: the start will do.
        teaser = html_to_text(content_html, limit=8 * SUMMARY_CHARS)
    else:
        teaser = teaser_text(teaser_html, teaser_type, base=content_base)
    # Without id or link, the title alone would fold a feed's repeated headlines
    # ("Status update") into one item; title plus date tells them apart.
    published = _date(entry)
    when = news_date(published, now)
    guid = str(entry.get("id") or "").strip() or raw_link or _hash(
        f"{title}\n{published.isoformat() if published else ''}\n{teaser[:200]}")
    return Article(
        feed_url=feed.url,
        source=source,
        guid=guid,
        url=_entry_url(raw_link, base, guid=guid, entry_id=str(entry.get("id") or ""),
                       site=site or feed.url),
        title=title or shorten(teaser, 80) or raw_link,
        summary=summarise(teaser, title),
        # Without a usable date, the collect time: the store keeps the first one, so
        # the item is dated by when digest first saw it.
        published=when or now,
        dated=when is not None,
        content_html=content_html,
        author=_author(entry),
        categories=_categories(entry.get("tags") or ()),
        image=pick_image(entry, content_html, base=content_base),
    )


def _title(entry: Mapping[str, Any]) -> str:
    raw = str(entry.get("title") or "")
    kind = (entry.get("title_detail") or {}).get("type", "text/plain")
    if kind == "text/plain":
        # Plain titles are often escaped twice by their CMS ("R&amp;D" after decoding).
        return collapse(html.unescape(raw) if _ENTITY.search(raw) else raw)
    return html_to_text(sanitize(raw, kind, base=""))


def _body(entry: Mapping[str, Any]) -> tuple[str, str]:
    """The fullest HTML the entry has: content:encoded / atom:content, else the summary."""
    contents = [c for c in entry.get("content") or () if c.get("value")]
    if contents:
        # Some feeds carry a text/plain and an HTML version; prefer the HTML one.
        best = max(contents, key=lambda c: (c.get("type") != "text/plain", len(c["value"])))
        return str(best["value"]), str(best.get("type") or "text/html")
    detail = entry.get("summary_detail") or {}
    return str(entry.get("summary") or ""), str(detail.get("type") or "text/html")


def _entry_base(entry: Mapping[str, Any], base: str, *, link: str = "", site: str = "") -> str:
    """What relative URLs in an entry's content (its images above all) are relative to:
    the content's xml:base when absolute http(s); else the item's own page, as the
    post was written there ("images/chart.png" in a Hugo post) — when that page is on
    the feed's site: a link blog's item links elsewhere, and its relative URLs still
    mean the blog; else the feed's base."""
    for c in entry.get("content") or ():
        # Both readers report the document's own URL as the base when there is no
        # xml:base; only a base the feed declares says more than that.
        if _is_web(c.get("base")) and c["base"] != base:
            return str(c["base"])
    page = _absolute(link, base) if link else ""
    if _is_web(page) and (not _is_web(base) or _host(page) in {_host(base), _host(site)}):
        return page
    return base


def _host(url: str) -> str:
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return ""
    return host.removeprefix("www.")


def _entry_url(link: str, base: str, *, guid: str, entry_id: str, site: str) -> str:
    if link:
        absolute = _absolute(link, base)
        # Items that are anchors on one page (comment feeds, changelogs) say so in
        # their id; their fragment is the item, not noise.
        fragment = urlsplit(absolute).fragment if "#" in absolute else ""
        keep = bool(fragment) and urlsplit(entry_id).fragment == fragment
        return canonical_url(absolute, keep_fragment=keep)
    if _is_web(guid):
        return canonical_url(guid)
    # No link at all: a stable made-up URL, unique per item, so the store's URL
    # de-duplication never folds two link-less items (of any feed) together.
    return f"{site}#item-{quote(guid, safe='')}"


def _date(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        # dict.get: feedparser's own get() maps a missing published_parsed to
        # updated_parsed, with a DeprecationWarning.
        t = dict.get(entry, key) if isinstance(entry, dict) else entry.get(key)
        when: datetime | None = None
        if isinstance(t, datetime):  # the lxml and JSON readers give UTC datetimes
            when = t
        elif isinstance(t, time.struct_time):
            with contextlib.suppress(ValueError):
                when = datetime(*t[:6], tzinfo=UTC)  # feedparser normalises to UTC
        # "0001-01-01" and the epoch are how a CMS says it has no date.
        if when is not None and when.year >= EARLIEST_YEAR:
            return when
    return None


def _author(entry: Mapping[str, Any]) -> str | None:
    detail = entry.get("author_detail") or {}
    name = collapse(html.unescape(str(detail.get("name") or entry.get("author") or "")))
    return name or None


def _categories(tags: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for tag in tags:
        term = collapse(html.unescape(str(tag.get("term") or tag.get("label") or "")))
        if term:
            seen.setdefault(term, None)
    return tuple(seen)


def _absolute(url: str, base: str) -> str:
    # An http(s) URL is already absolute: urljoin would only take it apart and put it
    # back together (canonical_url normalises it anyway), and this runs per link.
    return url if not base or _is_web(url) else urljoin(base, url)


def _hash(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


# -- not a feed --------------------------------------------------------------

def _looks_like_html(body: bytes) -> bool:
    head = decode(body[:4096]).lstrip().lower()
    return head.startswith(("<!doctype html", "<html")) or (
        "<html" in head and "<rss" not in head and "<feed" not in head)


def _html_page(body: bytes, base_url: str | None) -> str:
    finder = _FeedLinkFinder()
    # HTMLParser may give up on hopeless markup; the message is still true then.
    with contextlib.suppress(AssertionError):
        finder.feed(decode(body[: 512 * 1024]))
    page = "not a feed: the server sent an HTML page"
    if finder.href:
        advertised = urljoin(base_url, finder.href) if _is_web(base_url) else finder.href
        return f"{page} (it advertises a feed at {advertised})"
    return page


def _not_a_feed(body: bytes, exc: object, base_url: str | None) -> str:
    if not body.strip():
        return "not a feed: the document is empty"
    if _looks_like_html(body):
        return _html_page(body, base_url)
    if isinstance(exc, xml.sax.SAXParseException):
        return (f"not a feed: could not parse XML ({exc.getMessage()} at line "
                f"{exc.getLineNumber()}, column {exc.getColumnNumber()})")
    if exc is not None:
        return f"not a feed: could not parse XML ({collapse(str(exc))[:200]})"
    return "not a feed: no RSS, Atom or RDF elements found"


class _FeedLinkFinder(HTMLParser):
    """Finds <link rel="alternate" type="application/rss+xml" href=...> in a page."""

    _TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/rdf+xml", "application/json")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "link" or self.href:
            return
        a = {k.lower(): (v or "") for k, v in attrs}
        if "alternate" in a.get("rel", "").lower().split() and \
                a.get("type", "").lower() in self._TYPES and a.get("href"):
            self.href = a["href"].strip()
