"""Find a site's feed from an address a person pastes, and read it once.

People paste the address they see in the browser: a home page, an article, or the
feed itself. A page names its feeds in ``<link rel="alternate" type="application/
rss+xml" href>`` (the autodiscovery convention every feed reader follows); the first
RSS or Atom one is the site's main feed (WordPress lists "Comments Feed" after it),
a JSON Feed only when the page offers nothing else. The feed is then fetched with
the collector's own fetcher (its timeouts, size cap and redirect rules) and parsed
with the collector's own parser, so what `digest feeds add` accepts, `digest
collect` can read.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree

from digest.collect.charset import decode, to_xml_bytes
from digest.collect.fetch import Fetched, Fetcher, FetchError
from digest.collect.parse import parse_feed
from digest.collect.text import collapse, html_to_text
from digest.errors import FeedError
from digest.models import Feed

# rdf+xml is RSS 1.0; the bare XML and JSON types appear on older pages.
_XML_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml",
              "application/xml", "text/xml")
_JSON_TYPES = ("application/feed+json", "application/json")
# Autodiscovery links sit in <head>; a page's first megabyte holds them.
_PAGE_BYTES = 1024 * 1024
_SAFE_XML: dict[str, Any] = {
    "recover": True, "resolve_entities": False, "load_dtd": False, "no_network": True,
    "huge_tree": True,
}


@dataclass(frozen=True)
class FeedLink:
    """One ``<link rel="alternate">`` of a page, its href made absolute."""

    url: str
    type: str
    title: str = ""

    @property
    def is_xml(self) -> bool:
        return self.type in _XML_TYPES


@dataclass(frozen=True)
class Found:
    """A feed found and read once."""

    url: str  # what to list: the feed's address (its new home if it moved for good)
    fetched_url: str  # where the body came from, after every redirect
    title: str  # the feed's own title ("" if it has none)
    site: str  # the site the feed describes ("" if it does not say)
    items: int  # entries the parser turned into articles
    page: str | None = None  # the HTML page the feed was found on, if any
    others: tuple[FeedLink, ...] = ()  # the page's other feeds, not taken
    moved: bool = False  # every redirect to the feed was permanent


def feed_address(text: str) -> str:
    """The http(s) address in what a person or an OPML file gave, or FeedError saying why
    it is not one (another scheme, a local path, spaces, no host)."""
    url = text.strip()
    if url[:5].lower() == "feed:":  # feed://host/x and feed:https://host/x, from old readers
        rest = url[5:]
        url = rest if rest[:4].lower() == "http" else "http:" + rest
    if not url:
        raise FeedError("an empty address")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url) or len(url) > 2048:
        raise FeedError(f"{collapse(url)[:80]!r} is not a web address (spaces, control "
                        "characters or too long)")
    scheme = url.partition(":")[0].lower() if ":" in url else ""
    if url.startswith(("/", "~", ".", "\\")) or re.match(r"[A-Za-z]:[\\/]", url) or \
            scheme == "file" or (not scheme and "." not in url.split("/")[0]):
        raise FeedError(f"{url!r} is a local path, not a web address",
                        hint="only http(s) feeds can be added here")
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not scheme.isascii() or scheme not in ("http", "https"):
        if not scheme or (re.fullmatch(r"[\w.-]+", scheme) and "." in scheme):
            raise FeedError(f"{url[:80]!r} is not a web address (no scheme)",
                            hint=f"did you mean https://{url[:80]}?")
        raise FeedError(f"{url[:80]!r} is not a web address ({scheme[:20]}:)",
                        hint="give an http:// or https:// address")
    if not host:
        raise FeedError(f"{url!r} is not a web address (no host)")
    return url


def feed_links(page: str, base_url: str) -> list[FeedLink]:
    """The feeds a page advertises, in page order, absolute, http(s) only, no repeats."""
    finder = _LinkFinder()
    # HTMLParser may give up on hopeless markup: what it found before still counts.
    with contextlib.suppress(AssertionError):
        finder.feed(page)
        finder.close()
    base = urljoin(base_url, finder.base) if finder.base else base_url
    out: list[FeedLink] = []
    seen: set[str] = set()
    for href, kind, title in finder.links:
        url = urljoin(base, href)
        if urlsplit(url).scheme not in ("http", "https") or url in seen:
            continue  # javascript:, data: and the like are not feeds
        seen.add(url)
        out.append(FeedLink(url, kind, collapse(title)))
    return out


def choose(links: list[FeedLink]) -> tuple[FeedLink, tuple[FeedLink, ...]]:
    """The first RSS/Atom link (else the first JSON Feed), and the others."""
    chosen = next((link for link in links if link.is_xml), links[0])
    return chosen, tuple(link for link in links if link is not chosen)


def looks_like_html(body: bytes, content_type: str | None) -> bool:
    """An HTML page rather than a feed (by the header, then by the first bytes)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    head = decode(body[:4096], content_type).lstrip().lower()
    if head.startswith("{") or any(root in head for root in ("<rss", "<feed", "<rdf:rdf")):
        return False  # a feed's root comes first; some servers label everything text/html
    return kind in ("text/html", "application/xhtml+xml") or "<html" in head or \
        head.startswith("<!doctype html")


def feed_meta(body: bytes, content_type: str | None = None) -> tuple[str, str]:
    """(the feed's title, its site link) from the document; "" for what it lacks."""
    stripped = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped[:1] == b"{":
        return _json_meta(body)
    data = to_xml_bytes(body, content_type)
    root = None
    if data is not None:
        with contextlib.suppress(etree.XMLSyntaxError, ValueError):
            root = etree.fromstring(data, etree.XMLParser(**_SAFE_XML))
    if root is None or not isinstance(root.tag, str):
        return "", ""
    channel = _child(root, "channel")
    top = channel if channel is not None else root
    title = _child(top, "title")
    text = "".join(title.itertext()) if title is not None else ""
    if title is not None and title.get("type") in ("html", "text/html"):
        text = html_to_text(text)  # Atom's escaped HTML: "A &lt;b&gt;B&lt;/b&gt;" is "A B"
    return collapse(text), _site_link(top)


async def find_feed(fetcher: Fetcher, url: str, *, now: datetime) -> Found:
    """Fetch ``url``; if it is a page, fetch the feed it advertises; read the feed once.

    Raises FeedError (one line, naming the address) when nothing readable is found.
    """
    fetched = await _get(fetcher, url)
    page: str | None = None
    others: tuple[FeedLink, ...] = ()
    body = fetched.body or b""
    if looks_like_html(body, fetched.content_type):
        links = feed_links(decode(body[:_PAGE_BYTES], fetched.content_type), fetched.url)
        if not links:
            raise FeedError(f"{url}: a web page that names no feed (no <link rel=\"alternate\" "
                            "type=\"application/rss+xml\"> in it)",
                            hint="find the feed's address on the site (often /feed or "
                                 "/rss.xml) and add that")
        chosen, others = choose(links)
        page, url = url, chosen.url
        fetched = await _get(fetcher, url)
        body = fetched.body or b""
        if looks_like_html(body, fetched.content_type):
            raise FeedError(f"{url}: the feed {page} names is an HTML page, not a feed",
                            hint="add the feed's own address")
    feed = Feed(url=fetched.url, name="")
    try:
        items = len(parse_feed(body, feed, now=now, base_url=fetched.url,
                               content_type=fetched.content_type))
    except FeedError as e:
        raise FeedError(f"{url}: {e.message}", hint=e.hint) from None
    title, site = feed_meta(body, fetched.content_type)
    listed = fetched.moved_to or url
    return Found(url=listed, fetched_url=fetched.url, title=title,
                 site=urljoin(fetched.url, site) if site else "", items=items, page=page,
                 others=others, moved=fetched.moved_to is not None)


async def _get(fetcher: Fetcher, url: str) -> Fetched:
    try:
        fetched = await fetcher.get(url)
    except FetchError as e:
        raise FeedError(f"{url}: {e.message}", hint="check the address; try it in a browser") \
            from None
    if fetched.body is None:  # a 304 to a request without validators: a broken server
        raise FeedError(f"{url}: the server sent no content (304 Not Modified)")
    return fetched


class _LinkFinder(HTMLParser):
    """Every ``<link rel="alternate">`` of a feed type, and the page's ``<base href>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[str, str, str]] = []
        self.base = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k.lower(): (v or "").strip() for k, v in attrs}
        if tag == "base" and a.get("href") and not self.base:
            self.base = a["href"]
            return
        if tag != "link" or "alternate" not in a.get("rel", "").lower().split():
            return
        kind = a.get("type", "").split(";")[0].strip().lower()
        if kind in _XML_TYPES + _JSON_TYPES and a.get("href"):
            self.links.append((a["href"], kind, a.get("title", "")))

    handle_startendtag = handle_starttag


# -- the feed's own title and site ---------------------------------------------------

def _local(el: Any) -> str:
    tag = el.tag if isinstance(el.tag, str) else ""
    return tag.rpartition("}")[2]


def _namespace(el: Any) -> str:
    return el.tag[1:].partition("}")[0] if el.tag[:1] == "{" else ""


def _own(el: Any) -> bool:
    # The feed's own vocabulary (none, RSS 1.0/0.9, Atom), not itunes:title or media:title.
    ns = _namespace(el)
    return not ns or "rss" in ns or "Atom" in ns or "atom" in ns or "netscape" in ns


def _child(el: Any, name: str) -> Any:
    return next((c for c in el if _local(c) == name and _own(c)), None)


def _site_link(top: Any) -> str:
    for c in top:
        if _local(c) != "link" or not _own(c):
            continue
        href = c.get("href")
        if href is None:  # RSS: <link>https://site/</link>
            text = (c.text or "").strip()
            if text:
                return text
        elif c.get("rel", "alternate") == "alternate" and \
                c.get("type", "text/html") in ("text/html", "application/xhtml+xml"):
            return href.strip()
    return ""


def _json_meta(body: bytes) -> tuple[str, str]:
    import json

    with contextlib.suppress(ValueError):
        doc = json.loads(decode(body, "application/json; charset=utf-8"))
        if isinstance(doc, dict):
            return collapse(str(doc.get("title") or "")), str(doc.get("home_page_url") or "")
    return "", ""
