"""Feed HTML as plain text, and feed boilerplate taken out of it: pure functions in
the bottom layer, so collect (the stored summary) and rank (the story summaries,
digest.rank.summarise) read an item's text the same way.
"""

from __future__ import annotations

import html
import re

_BLOCK_TAG = re.compile(
    r"</?(?:p|div|br|hr|li|ul|ol|dd|dt|h[1-6]|tr|td|th|table|blockquote|figure|figcaption|pre)\b[^>]*>",
    re.I,
)
_ANY_TAG = re.compile(r"<[^>]*>")
_PARTIAL_TAG = re.compile(r"<[^>]*$")
_TAG_IN_TEXT = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*(?:\s[^<>]*)?/?>")


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
