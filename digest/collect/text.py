"""Feed text made safe and tidy: nh3 sanitizing, HTML -> text, summaries, canonical URLs.

Pure functions, shared by every parser path (lxml, feedparser, JSON Feed).
"""

from __future__ import annotations

import contextlib
import html
from typing import Literal, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nh3

from digest.plaintext import collapse, html_to_text, strip_boilerplate
from digest.textcut import cut

SUMMARY_CHARS = 300
# Only this much of a teaser's HTML is sanitized to make the ~300-character summary:
# sanitizing a 200 KB article body to keep its first paragraph is most of the cost.
_TEASER_HTML = 6000

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
    "form", "button", "select", "textarea", "frame", "frameset", "applet",
}
_URL_SCHEMES = {"http", "https", "mailto"}
# Click and campaign identifiers: they make one story look like many URLs.
_TRACKING_PARAMS = {
    "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "twclid",
    "ttclid", "li_fat_id", "igshid", "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok",
    "oly_anon_id", "oly_enc_id", "rb_clickid", "s_cid", "vero_id", "vero_conv", "wickedid",
    "__s", "_ga", "_gl", "ncid", "cmpid", "sr_share", "at_medium", "at_campaign",
}
_TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "itm_")

def _cleaner(base: str) -> nh3.Cleaner:
    # Relative URLs resolve in nh3 itself (as a browser would): a Python callback per
    # URL was a fifth of the sanitizing time. nh3 does not check the scheme of what it
    # resolved, so only an http(s) base resolves; with any other, or none, a relative
    # URL could only lead nowhere (or to a file:) and is dropped.
    if urlsplit(base).scheme.lower() in ("http", "https"):
        with contextlib.suppress(ValueError):  # a base nh3 cannot read ("http://")
            return _nh3_cleaner(("rewrite_with_base", base))
    return _nh3_cleaner("deny")


def _nh3_cleaner(relative: Literal["deny"] | tuple[Literal["rewrite_with_base"], str]
                 ) -> nh3.Cleaner:
    return nh3.Cleaner(tags=_TAGS, attributes=_ATTRIBUTES, clean_content_tags=_DROP_WITH_CONTENT,
                       url_schemes=_URL_SCHEMES, url_relative=relative,
                       link_rel="noopener noreferrer")


_CLEANERS: dict[str, nh3.Cleaner] = {}


def sanitize(value: str, kind: str = "text/html", *, base: str = "") -> str:
    """Feed HTML made safe for an email: allow-listed tags, no scripts, no on*
    attributes, only http(s)/mailto URLs, relative URLs resolved against ``base``."""
    if not value:
        return ""
    if kind == "text/plain":
        return "<p>" + html.escape(value).replace("\n\n", "</p><p>") + "</p>"
    cleaner = _CLEANERS.get(base)
    if cleaner is None:
        # One cleaner per base URL: building one costs more than a small clean.
        if len(_CLEANERS) > 256:
            _CLEANERS.clear()
        cleaner = _CLEANERS[base] = _cleaner(base)
    return cleaner.clean(value).strip()


def teaser_text(value: str, kind: str = "text/html", *, base: str = "") -> str:
    """Plain text of the start of a teaser, enough for a summary."""
    if kind == "text/plain":
        return collapse(value[:_TEASER_HTML])
    text = html_to_text(sanitize(value[:_TEASER_HTML], kind, base=base))
    if len(value) > _TEASER_HTML and len(text) < SUMMARY_CHARS:
        # The cut fell in a long run of markup: the whole teaser, then.
        text = html_to_text(sanitize(value, kind, base=base))
    return text


def shorten(text: str, limit: int = SUMMARY_CHARS, *, truncated: bool = False) -> str:
    """Cut at the last sentence end (or word, never inside a name) before ``limit``,
    marked with '…' (digest.textcut.cut: render cuts with the same function)."""
    return cut(text, limit, truncated=truncated)


# Boilerplate sits at the end of an item's text; past this much beyond the summary's
# length, the end is never shown, so only the start is read (and scanned).
_WINDOW = 400


def summarise(teaser: str, title: str = "", limit: int = SUMMARY_CHARS) -> str:
    """A readable summary from an item's teaser text: boilerplate gone, the title
    not repeated at its start (CMSs that put the headline in the body), cut by
    :func:`shorten`."""
    text = collapse(teaser)
    if len(text) > limit + _WINDOW:
        text = text[:text.rfind(" ", 0, limit + _WINDOW) + 1 or limit + _WINDOW]
    text, truncated = strip_boilerplate(text)
    if title and len(text) > len(title) and text[:len(title)].casefold() == title.casefold():
        rest = text[len(title):].lstrip(" :.–—-|")
        if rest:
            text = rest
    return shorten(text, limit, truncated=truncated)


def is_tracking_param(name: str) -> bool:
    key = name.lower()
    return key in _TRACKING_PARAMS or key.startswith(_TRACKING_PREFIXES)


def canonical_url(url: str, *, keep_fragment: bool = False) -> str:
    """Strip tracking parameters and the fragment so one story has one URL."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return url.strip()
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        kept = [(k, v) for k, v in pairs if not is_tracking_param(k)]
        if len(kept) != len(pairs):
            query = urlencode(kept)
    # "#!" and "#/" fragments are client-side routes, part of the address.
    keep = keep_fragment or parts.fragment[:1] in ("!", "/")
    fragment = parts.fragment if keep else ""
    path = (parts.path or "/") if parts.netloc else parts.path
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, query, fragment))


def is_web(url: object) -> TypeGuard[str]:
    # A prefix test, not urlsplit: this runs several times per item.
    return isinstance(url, str) and url[:8].lower().startswith(("http://", "https://"))
