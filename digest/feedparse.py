"""Feed documents -> sanitized, normalised ``Article``s.

feedparser does the parsing (every RSS/Atom dialect, broken XML, odd encodings);
nh3 does the sanitizing. feedparser's own sanitizer and relative-URI pass are
switched off: nh3 sanitizes afterwards anyway, and those two passes are ~75% of
feedparser's run time on the real-world corpus.

Everything here is pure and synchronous; ``digest.collect`` runs it in a worker thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import re
import time
import xml.sax
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any, TypeGuard
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import nh3

from digest.errors import FeedError
from digest.models import Article, Feed

log = logging.getLogger(__name__)

SUMMARY_CHARS = 300

# Tags that make sense inside an email; everything else is unwrapped (text kept).
_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "dl", "dt",
    "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins",
    "li", "mark", "ol", "p", "pre", "q", "s", "small", "span", "strong", "sub", "sup", "table",
    "tbody", "td", "th", "thead", "tfoot", "tr", "u", "ul",
}
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan"},
    "ol": {"start"},
    "blockquote": {"cite"},
}
# These go with their content: a script's source or an iframe's fallback is not prose.
_DROP_WITH_CONTENT = {
    "script", "style", "iframe", "noscript", "object", "embed", "template", "svg", "math",
    "form", "button", "select", "textarea",
}
_URL_SCHEMES = {"http", "https", "mailto"}
_TRACKING_PARAMS = {"fbclid", "gclid", "mc_cid", "mc_eid"}

_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dd|dt|h[1-6]|tr|td|th|table|blockquote|figure|figcaption|pre)\b[^>]*>",
    re.I,
)
_ANY_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_ENTITY = re.compile(r"&(?:#\d+|#x[0-9a-f]+|[a-z][a-z0-9]+);", re.I)
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]?\s")
_IMAGE_EXT = re.compile(r"\.(?:jpe?g|png|gif|webp|avif)(?:[?#]|$)", re.I)
_IMG_SRC = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"[^>]*>", re.I)


def parse_feed(body: bytes, feed: Feed, *, now: datetime,
               base_url: str | None = None) -> list[Article]:
    """Parse one feed document into Articles.

    ``base_url`` is where the document came from (after redirects); relative links
    resolve against it. Raises ``FeedError`` (one line) when ``body`` is not a feed.
    Every entry becomes an Article except entries with neither title nor link.
    """
    if body.lstrip()[:1] == b"{":
        return _parse_json_feed(body, feed, now=now, base_url=base_url)
    headers = {"content-location": base_url} if _is_web(base_url) else {}
    d = feedparser.parse(body, response_headers=headers, sanitize_html=False,
                         resolve_relative_uris=False)
    if not d.entries and not d.get("version"):
        raise FeedError(_not_a_feed(body, d.get("bozo_exception"), base_url))
    if d.get("bozo"):
        log.debug("%s: tolerated malformed feed: %s", feed.url, d.get("bozo_exception"))
    site = str(d.feed.get("link") or "")
    # Relative links in a local file can only mean the site the feed describes.
    base = base_url if _is_web(base_url) else site
    out: list[Article] = []
    for entry in d.entries:
        article = _article(entry, feed, now=now, base=base or "", site=site)
        if article is not None:
            out.append(article)
    return out


# -- one entry -------------------------------------------------------------

def _article(entry: Mapping[str, Any], feed: Feed, *, now: datetime, base: str,
             site: str) -> Article | None:
    title = _title(entry)
    raw_link = str(entry.get("link") or "").strip()
    if not title and not raw_link:
        return None
    content_base = _entry_base(entry, base)
    body_html, body_type = _body(entry)
    content_html = sanitize(body_html, body_type, base=content_base)
    teaser_html = entry.get("summary") or ""
    teaser_type = (entry.get("summary_detail") or {}).get("type", "text/html")
    teaser = (html_to_text(sanitize(teaser_html, teaser_type, base=content_base))
              if teaser_html else html_to_text(content_html))
    # Without id or link, the title alone would fold a feed's repeated headlines
    # ("Status update") into one item; title plus date tells them apart.
    guid = str(entry.get("id") or raw_link or _hash(
        f"{title}\n{entry.get('published') or entry.get('updated') or ''}"))
    return Article(
        feed_url=feed.url,
        source=feed.name,
        guid=guid,
        url=_entry_url(raw_link, base, guid=guid, entry_id=str(entry.get("id") or ""),
                       site=site or feed.url),
        title=title or shorten(teaser, 80) or raw_link,
        summary=shorten(teaser),
        published=_date(entry) or now,
        content_html=content_html,
        author=_author(entry),
        categories=_categories(entry.get("tags") or ()),
        image=_image(entry, content_html, base=content_base),
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


def _entry_base(entry: Mapping[str, Any], base: str) -> str:
    """xml:base of the entry's content when it is absolute http(s), else the feed's."""
    for c in entry.get("content") or ():
        if _is_web(c.get("base")):
            return str(c["base"])
    return base


def _entry_url(link: str, base: str, *, guid: str, entry_id: str, site: str) -> str:
    if link:
        absolute = urljoin(base, link) if base else link
        # Items that are anchors on one page (comment feeds, changelogs) say so in
        # their id; their fragment is the item, not noise.
        fragment = urlsplit(absolute).fragment
        keep = bool(fragment) and urlsplit(entry_id).fragment == fragment
        return canonical_url(absolute, keep_fragment=keep)
    if _is_web(guid):
        return canonical_url(guid)
    # No link at all: a stable made-up URL, unique per item, so the store's URL
    # de-duplication never folds two link-less items (of any feed) together.
    return f"{site}#item-{quote(guid, safe='')}"


def _date(entry: Mapping[str, Any]) -> datetime | None:
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        t = entry.get(key)
        if isinstance(t, time.struct_time):
            try:
                return datetime(*t[:6], tzinfo=UTC)  # feedparser normalises to UTC
            except ValueError:
                continue
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


def _image(entry: Mapping[str, Any], content_html: str, *, base: str) -> str | None:
    candidates: list[str] = []
    for m in entry.get("media_content") or ():
        kind = str(m.get("type") or "")
        url = str(m.get("url") or "")
        if m.get("medium") == "image" or kind.startswith("image/") or (
                not kind and not m.get("medium") and _IMAGE_EXT.search(url)):
            candidates.append(url)
    candidates += [str(m.get("url") or "") for m in entry.get("media_thumbnail") or ()]
    candidates += [str(e.get("href") or "") for e in entry.get("enclosures") or ()
                   if str(e.get("type") or "").startswith("image/")]
    for tag in _IMG_SRC.finditer(content_html):
        # Skip 1x1 tracking pixels: they are images only to a mail client.
        if not re.search(r"\b(?:width|height)=\"[01]\"", tag.group(0)):
            candidates.append(html.unescape(tag.group(1)))
    for url in candidates:
        absolute = urljoin(base, url.strip()) if base else url.strip()
        if _is_web(absolute):
            return absolute
    return None


# -- text and HTML ---------------------------------------------------------

def sanitize(value: str, kind: str = "text/html", *, base: str = "") -> str:
    """Feed HTML made safe for an email: allow-listed tags, no scripts, no on*
    attributes, only http(s)/mailto URLs, relative URLs resolved against ``base``."""
    if not value:
        return ""
    if kind == "text/plain":
        return "<p>" + html.escape(value).replace("\n\n", "</p><p>") + "</p>"

    def resolve(url: str) -> str | None:
        absolute = urljoin(base, url) if base else url
        return absolute if urlsplit(absolute).scheme in _URL_SCHEMES else None

    return nh3.clean(value, tags=_TAGS, attributes=_ATTRIBUTES,
                     clean_content_tags=_DROP_WITH_CONTENT, url_schemes=_URL_SCHEMES,
                     url_relative=resolve, link_rel="noopener noreferrer").strip()


def html_to_text(value: str) -> str:
    """Readable text of sanitized HTML (nh3 output escapes every '<' in text, so a
    tag-stripping regex is exact here)."""
    text = _ANY_TAG.sub("", _BLOCK_TAG.sub(" ", value))
    return collapse(html.unescape(text))


def collapse(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def shorten(text: str, limit: int = SUMMARY_CHARS) -> str:
    """Cut at the last sentence end (or word) before ``limit``, marked with '…'."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 2:
        return head[: ends[-1]].rstrip() + " …"
    cut = head.rfind(" ")
    if cut < limit // 2:
        cut = limit  # one enormous word (a URL): cut it anyway
    return head[:cut].rstrip(" ,;:–—-") + "…"


def canonical_url(url: str, *, keep_fragment: bool = False) -> str:
    """Strip tracking parameters and the fragment so one story has one URL."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs
                if not k.lower().startswith("utm_") and k.lower() not in _TRACKING_PARAMS]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    # "#!" and "#/" fragments are client-side routes, part of the address.
    keep = keep_fragment or parts.fragment[:1] in ("!", "/")
    fragment = parts.fragment if keep else ""
    path = (parts.path or "/") if parts.netloc else parts.path
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, fragment))


def _is_web(url: object) -> TypeGuard[str]:
    return isinstance(url, str) and urlsplit(url).scheme in ("http", "https")


def _hash(text: str) -> str:
    return "sha1:" + hashlib.sha1(text.encode("utf-8")).hexdigest()


# -- not a feed --------------------------------------------------------------

def _not_a_feed(body: bytes, exc: object, base_url: str | None) -> str:
    head = body[:4096].lstrip().lower()
    if not body.strip():
        return "not a feed: the document is empty"
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head:
        finder = _FeedLinkFinder()
        # HTMLParser may give up on hopeless markup; the message is still true then.
        with contextlib.suppress(AssertionError):
            finder.feed(body[: 512 * 1024].decode("utf-8", "replace"))
        page = "not a feed: the server sent an HTML page"
        if finder.href:
            advertised = urljoin(base_url, finder.href) if _is_web(base_url) else finder.href
            return f"{page} (it advertises a feed at {advertised})"
        return page
    if isinstance(exc, xml.sax.SAXParseException):
        return (f"not a feed: could not parse XML ({exc.getMessage()} at line "
                f"{exc.getLineNumber()}, column {exc.getColumnNumber()})")
    if exc is not None:
        return f"not a feed: could not parse XML ({collapse(str(exc))[:200]})"
    return "not a feed: no RSS, Atom or RDF elements found"


class _FeedLinkFinder(HTMLParser):
    """Finds <link rel="alternate" type="application/rss+xml" href=...> in a page."""

    _TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json",
              "application/rdf+xml")

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


# -- JSON Feed (https://jsonfeed.org/version/1.1), which feedparser 6 does not read --

def _parse_json_feed(body: bytes, feed: Feed, *, now: datetime,
                     base_url: str | None) -> list[Article]:
    try:
        doc = json.loads(body.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError) as e:
        raise FeedError(f"not a feed: could not parse JSON ({e})") from None
    if not isinstance(doc, dict) or not str(doc.get("version", "")).startswith(
            "https://jsonfeed.org/version/"):
        raise FeedError("not a feed: JSON without a JSON Feed version")
    site = str(doc.get("home_page_url") or "")
    base = base_url if _is_web(base_url) else site
    out = []
    for item in doc.get("items") or ():
        if not isinstance(item, dict):
            continue
        article = _article(_json_entry(item), feed, now=now, base=base or "", site=site)
        if article is not None:
            out.append(article)
    return out


def _json_entry(item: dict[str, Any]) -> dict[str, Any]:
    """A JSON Feed item in feedparser's entry shape, so one code path normalises both."""
    content_html = item.get("content_html")
    content = ([{"value": content_html, "type": "text/html"}] if content_html else
               [{"value": item["content_text"], "type": "text/plain"}]
               if item.get("content_text") else [])
    authors = item.get("authors") or ([item["author"]] if item.get("author") else [])
    return {
        "id": str(item.get("id") or ""),
        "link": item.get("url") or item.get("external_url") or "",
        "title": item.get("title") or "",
        "title_detail": {"type": "text/plain"},
        "summary": item.get("summary") or "",
        "summary_detail": {"type": "text/plain"},
        "content": content,
        "published_parsed": _json_date(item.get("date_published") or item.get("date_modified")),
        "author_detail": {"name": (authors[0] or {}).get("name")} if authors else {},
        "tags": [{"term": t} for t in item.get("tags") or () if isinstance(t, str)],
        "media_content": [{"url": u, "medium": "image"}
                          for u in (item.get("image"), item.get("banner_image")) if u],
    }


def _json_date(value: object) -> time.struct_time | None:
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).astimezone(UTC).timetuple()
