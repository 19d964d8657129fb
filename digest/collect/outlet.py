"""Who published a feed: the outlet name a reader knows, from the feed's own title.

Feeds title themselves for a feed reader's sidebar, not for a byline: "World -
CBSNews.com", "NPR Topics: World", "Tech – TIME", "TheWeek feed", "Fox News – Breaking
News, World News and Video from Fox News", or just "World". ``outlet_name`` keeps the
part that names the publisher and drops the section and the tagline; when the title
names no publisher at all (a bare section, "RSS", nothing) the site's host does.

The outlet is what variety caps count (``selection.per_source``) and what coverage
counts, so it must name the publisher, not the section: two CBS feeds are one outlet,
while two blogs on one host (feedburner, github.io) are two.
"""

from __future__ import annotations

import html
import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

# Titles longer than this are a sentence, not a name.
MAX_NAME = 60

# " - ", " – ", " — ", " | ", " : ", ": ", " • ", " » ": what separates a publisher
# from its section or tagline. A dash needs blanks around it ("J-F Gagné" is a name).
_SEPARATOR = re.compile(r"\s+[-–—|•·»:]+\s+|\s+[-–—|•·»]+$|^[-–—|•·»]+\s+|:\s+")
_TAG = re.compile(r"<[^<>]*>")
_COMMENTS = re.compile(r"^comments? (?:on|for)\s*:?\s*", re.I)
# Hugo's default list title: "{{ .Title }} on {{ .Site.Title }}" ("Posts on Alex Blackie").
_HUGO = re.compile(r"^(?P<what>.+?) on (?P<site>[^\s].*)$")
_HUGO_WHAT = re.compile(r"^(?:recent content|all posts|posts|blog)$", re.I)
# Words that name a section or the feed itself, never a publisher.
_GENERIC = frozenset("""
    all articles audio blog blogs breaking business culture entertainment europe feed
    feeds health home index latest main news opinion podcast podcasts politics posts
    rss atom science sport sports stories tech technology top topics us uk video web
    world headlines updates recent content international national local economy
    nachrichten welt politik wirtschaft kultur startseite aktuell schlagzeilen
    actualites monde noticias mundo portada
    """.split())
# A title that is only an address names no outlet the host does not name better.
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://|www\.)\S*$", re.I)
# Trailing words that describe the feed, not the outlet ("NPR Topics", "TheWeek feed").
_TRAILING = re.compile(r"(?:\s+(?:rss|atom|feed|feeds|topics|headlines|news feed))+$", re.I)


def outlet_name(title: str, site_url: str, feed_url: str) -> str:
    """The outlet a feed stands for: its title trimmed of section and tagline, else
    the site's host without "www." (``site_url``: the feed's own link to its site,
    may be empty or relative; ``feed_url`` is the last resort)."""
    host = site_host(site_url, feed_url)
    clean = _plain(title)
    clean = _COMMENTS.sub("", clean)
    if not clean or _ADDRESS.match(clean):
        return host
    hugo = _HUGO.match(clean)
    if hugo and _hugo_site(hugo["what"], hugo["site"], host):
        clean = hugo["site"]
    parts = [p.strip() for p in _SEPARATOR.split(clean)]
    parts = [p for p in parts if p and not _is_generic(p)]
    if not parts:
        return host
    name = _trim(_publisher(parts, host))
    if not name or _is_generic(name) or len(name) > MAX_NAME:
        return host
    return name


def _hugo_site(what: str, site: str, host: str) -> bool:
    """Whether "<what> on <site>" is Hugo's list title. Its own words ("Posts on X"),
    or a site that is the host; else a long description before " on " ("Canadian
    entrepreneur and software developer on Alex Blackie") and a name after it, in
    capitals. A short start is a title of its own ("Notes on Programming")."""
    words = site.split()
    if len(words) > 4 or _SEPARATOR.search(site):
        return False
    if _HUGO_WHAT.match(what) or _matches_host(site, _host_labels(host)):
        return True
    return len(what.split()) >= 3 and all(w[:1].isupper() or w[:1].isdigit() for w in words)


def _plain(title: str) -> str:
    """The title as one line of text: entities decoded, markup and control and format
    characters dropped (it becomes a byline in every email)."""
    text = _TAG.sub(" ", html.unescape(title or ""))
    # A zero-width character goes; any other control or separator is a blank.
    text = "".join("" if unicodedata.category(c) == "Cf" else
                   " " if unicodedata.category(c)[0] in "CZ" else c for c in text)
    return " ".join(text.split())


def site_host(site_url: str, feed_url: str) -> str:
    """The host of the site (else of the feed) without "www.", or a local file's stem."""
    for url in (site_url, feed_url):
        parts = urlsplit(url or "")
        if parts.hostname and parts.scheme in ("http", "https"):
            return parts.hostname.removeprefix("www.")
    parts = urlsplit(feed_url)
    return Path(unquote(parts.path)).stem or feed_url


def _publisher(parts: list[str], host: str) -> str:
    """The part that names the site (it matches the host), else the first part that
    is not a tagline."""
    labels = _host_labels(host)
    for part in parts:
        if _matches_host(part, labels):
            return part
    for part in parts:
        if not _is_tagline(part):
            return part
    return ""


def _trim(name: str) -> str:
    return _TRAILING.sub("", name).strip(" -–—|:•")


def _fold(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


def _words(text: str) -> list[str]:
    return [_fold(w) for w in text.split() if _fold(w)]


def _host_labels(host: str) -> tuple[str, str]:
    """(the whole host folded, its name label): "cbsnews.com" -> ("cbsnewscom", "cbsnews")."""
    labels = [x for x in host.split(".") if x]
    name = labels[-2] if len(labels) >= 2 else (labels[0] if labels else "")
    return _fold(host), _fold(name)


def _matches_host(part: str, labels: tuple[str, str]) -> bool:
    whole, name = labels
    folded = _fold(part)
    if not folded or not name:
        return False
    if folded in (whole, name) or name in _words(part):
        return True
    # "David duChemin" for davidduchemin.com, "TechTinkering" for techtinkering.com;
    # short labels only as whole words ("NPR" in "NPR Topics"), never inside one.
    return len(name) >= 4 and len(folded) >= 4 and (name in folded or folded in name)


def _is_generic(part: str) -> bool:
    words = _words(part)
    return bool(words) and all(w in _GENERIC for w in words)


def _is_tagline(part: str) -> bool:
    """A description rather than a name: a list, or a sentence."""
    return "," in part or len(part.split()) >= 6
