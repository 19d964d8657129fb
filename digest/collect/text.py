"""Feed text made safe and tidy: nh3 sanitizing, HTML -> text, summaries, canonical URLs.

Pure functions, shared by every parser path (lxml, feedparser, JSON Feed).
"""

from __future__ import annotations

import contextlib
import html
import re
from typing import Literal, TypeGuard
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import nh3

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

_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dd|dt|h[1-6]|tr|td|th|table|blockquote|figure|figcaption|pre)\b[^>]*>",
    re.I,
)
_ANY_TAG = re.compile(r"<[^>]*>")
_PARTIAL_TAG = re.compile(r"<[^>]*$")
_TAG_IN_TEXT = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")


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


def html_to_text(value: str, limit: int | None = None) -> str:
    """Readable text of sanitized HTML (nh3 output escapes every '<' in text, so a
    tag-stripping regex is exact here). ``limit`` reads only that many characters."""
    if limit is not None and len(value) > limit:
        value = _PARTIAL_TAG.sub("", value[:limit])
    text = html.unescape(_ANY_TAG.sub("", _BLOCK_TAG.sub(" ", value)))
    if "<" in text:
        # HTML escaped twice by its CMS ("In reply to &amp;lt;a href=..."): the
        # unescaped text is still markup, and markup is not a summary.
        text = _TAG_IN_TEXT.sub("", text)
    return collapse(text)


def collapse(text: str) -> str:
    # str.split() splits on exactly what \s matches (str.isspace), at a third of
    # the regex's cost; this runs several times per item.
    return " ".join(text.split())


def shorten(text: str, limit: int = SUMMARY_CHARS, *, truncated: bool = False) -> str:
    """Cut at the last sentence end (or word, never inside a name) before ``limit``,
    marked with '…' (digest.textcut.cut: render cuts with the same function)."""
    return cut(text, limit, truncated=truncated)


# -- feed boilerplate ---------------------------------------------------------
# Found in the shared corpus (50 feeds, 2,442 items) and the wild: WordPress's
# "The post X appeared first on Y." footer (and Yoast's "first appeared on"),
# excerpt markers "[…]" / "[...]" / "… Continue reading →", page-builder shortcodes
# ("[fusion_builder_container hundred_percent=…"), share widgets (Jetpack's
# "Share this: Click to share on X (Opens in new window)"), syndication notes
# ("This article originally appeared on …"). Each pattern is anchored where the
# boilerplate sits (the end, or the start) so the same words in prose stay:
# "Detective Chimp first appeared in 1952" is a sentence, not a footer.

_FOOTER = re.compile(
    r"\s*\b(?:"
    # WordPress ("appeared first on") and Yoast ("first appeared on"), and the same
    # footer in German, French and Spanish installs
    r"The post (?:(?!\bThe post ).){1,300}? (?:appeared first|first appeared) on "
    r"|Der Beitrag (?:(?!\bDer Beitrag ).){1,300}? erschien zuerst auf "
    r"|L[’']article (?:(?!\bL[’']article ).){1,300}? est apparu en premier sur "
    r"|La entrada (?:(?!\bLa entrada ).){1,300}? se publicó primero en "
    r")[^\n]{1,200}$")
_SYNDICATED = re.compile(
    r"\s*\b(?:This|The) (?:article|story|post|piece|essay|interview|column)"
    r"(?: was| has been| is)? (?:originally|first) (?:appeared|published|posted|ran)"
    r"[^.!?]{0,200}[.!?]?\s*$")
_SYNDICATED_HEAD = re.compile(
    r"^(?:This|The) (?:article|story|post|piece|essay|interview|column)"
    r"(?: was| has been| is)? (?:originally|first) (?:appeared|published|posted|ran)"
    r"[^.!?]{0,200}[.!?]\s+")
# A "read on" link ends a teaser, after a sentence end, an ellipsis or at the start.
_AFTER_BREAK = r"(?:(?<=^)|(?<=[.!?…\]\)\"”’»:])\s*|\s+(?=\(more))\s*(?:\[?(?:…|\.\.\.)\]?\s*)?"
# "Continue reading" may name the post after it ("Continue reading “Title”").
_CONTINUE = re.compile(
    _AFTER_BREAK + r"(?:Continue reading|Keep reading|Weiterlesen|Lire la suite|Leer más|"
    r"Seguir leyendo)\b[^\n]{0,200}$")
_MORE = re.compile(
    _AFTER_BREAK + r"(?:Read more|Read More|READ MORE|Read on|Mehr lesen|"
    r"Read the (?:full|whole|rest of the|complete|original) (?:story|article|post|piece|report)|"
    r"Read (?:full|original) (?:story|article|post)|\(more…\)|\(more\.\.\.\)|More »)"
    r"(?: (?:at|on|in|here)\b[^.!?\n]{0,60})?[\s.:→»›>…]*$")
# YARPP and similar plugins: "Related posts: A, B, C" closing the text.
_RELATED = re.compile(r"\s*\bRelated(?: posts| articles| stories| reading)?:[^\n]{0,400}$")
_ADVERT = re.compile(r"(?<=[.!?”\"]) (?:ADVERTISEMENT|Advertisement)(?= [A-Z“\"]|$)")
_SHARE = re.compile(
    r"\s*(?:Share this:|Like this:|Like Loading\.\.\.|Related$|"
    r"Click to (?:share on \S+|email a link to a friend|email|print)"
    r"(?: \(Opens in new window\))?|"
    r"\(Opens in new window\)|"
    r"Share (?:on|via|to) (?:Facebook|Twitter|X|LinkedIn|WhatsApp|Reddit|Pinterest|Email|"
    r"Bluesky|Threads|Mastodon|Telegram|Tumblr|Pocket)|"
    r"(?:Tweet|Pin it|Email this|Print this)(?=\s*$))")
_SHORTCODE = re.compile(
    r"\[/?(?:[a-z]+_[a-z0-9_]+|caption|gallery|embed|audio|video|playlist)\b[^\]]*(?:\]|$)")
_MARKER_END = re.compile(r"\s*(?:\[(?:…|\.\.\.|&hellip;)\]|…|\.\.\.|\. \. \.)\s*$")
_MARKER_MID = re.compile(r"\s*\[(?:…|\.\.\.)\]\s*")
_ENTITY_LEFT = re.compile(r"&(?:#\d{2,6}|#x[0-9a-fA-F]{2,5}|[a-zA-Z]{2,8});")


# Words every boilerplate pattern above starts with: one scan for them spares a text
# without any (nearly all) the dozen anchored scans.
_TRIGGER = re.compile(
    r"The post|Der Beitrag|L[’']article|La entrada|originally|first (?:appeared|published|"
    r"posted|ran)|Continue reading|Keep reading|Weiterlesen|Lire la suite|Leer más|"
    r"Seguir leyendo|Read|READ MORE|Mehr lesen|\(more|More »|Related|Share|Like |Click to|"
    r"Opens in new|Tweet|Pin it|Email this|Print this")
_MARKER_ENDS = ("…", "...", "]", ". . .")
# Boilerplate sits at the end of an item's text; past this much beyond the summary's
# length, the end is never shown, so only the start is read (and scanned).
_WINDOW = 400


def strip_boilerplate(text: str) -> tuple[str, bool]:
    """(``text`` without feed boilerplate, whether its source cut it short)."""
    if "&" in text and _ENTITY_LEFT.search(text):
        text = html.unescape(text)  # escaped twice by its CMS: "utt&nbsp;!"
    text = _SHORTCODE.sub(" ", text) if "[" in text else text
    text = _SYNDICATED_HEAD.sub("", text) if text[:4] in ("This", "The ") else text
    if "dvertisement" in text or "ADVERTISEMENT" in text:
        text = _ADVERT.sub("", text)
    truncated = False
    while True:
        before = text
        if _TRIGGER.search(text):
            for pattern in (_FOOTER, _SYNDICATED, _CONTINUE, _MORE, _RELATED, _SHARE):
                text = pattern.sub("", text)
        text = text.rstrip()
        if text.endswith(_MARKER_ENDS):
            stripped = _MARKER_END.sub("", text)
            if stripped != text:
                truncated, text = True, stripped.rstrip()
        if text == before:
            break
    if "[" in text:
        text = _MARKER_MID.sub(" … ", text)
    if _TRIGGER.search(text):
        text = _SHARE.sub(" ", text)
    return collapse(text), truncated


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
