"""OPML, the file every feed reader imports and exports: read one, write one.

Readers write OPML 1.0 or 2.0 with the same shape: ``<opml><head/><body>`` and
``<outline>`` elements, a feed being an outline with an ``xmlUrl`` (plus ``htmlUrl``,
``title`` and ``text``), a folder an outline without one holding others, nested
to any depth. Attribute names vary in case between readers (``xmlUrl``,
``xmlurl``), so they are matched without it.

An OPML file comes from elsewhere (a download, a colleague): a document that
declares entities (billion laughs, external entities reading local files) or names
a DTD is refused before it is parsed, and the parser itself expands nothing and
fetches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from lxml import etree

from digest.collect.charset import decode, to_xml_bytes
from digest.errors import DigestError

MAX_BYTES = 20 * 2**20  # an OPML of 10,000 feeds is ~2 MB
# Where digest keeps what OPML has no attribute for (a feed's weight), on export.
DIGEST_NS = "https://github.com/digest/opml"
_ENTITY = re.compile(r"<!ENTITY", re.I)
# A bare <!DOCTYPE opml> is harmless; one that names a DTD could make a parser read a
# file or a URL, and one with an internal subset could declare what the check above
# did not spell out.
_EXTERNAL_DTD = re.compile(r"<!DOCTYPE\s+[^\s>\[]+\s*(?:SYSTEM|PUBLIC|\[)", re.I)
_PARSER: dict[str, Any] = {
    "resolve_entities": False, "load_dtd": False, "no_network": True, "dtd_validation": False,
    "huge_tree": False, "recover": False, "remove_pis": True,
}


class OpmlError(DigestError):
    """An OPML file digest will not read: malformed, not OPML, or hostile."""


@dataclass(frozen=True)
class Outline:
    """One feed of an OPML file."""

    xml_url: str
    html_url: str
    title: str  # ``title``, else ``text`` ("" if neither)
    folders: tuple[str, ...]  # the folders it sits in, outermost first
    categories: tuple[str, ...]  # OPML 2.0 ``category`` ("/tech,/news" -> tech, news)
    weight: float | None  # digest's own attribute, on files digest exported
    line: int


@dataclass(frozen=True)
class Opml:
    title: str
    feeds: tuple[Outline, ...]
    no_url: tuple[tuple[int, str], ...]  # (line, title) of outlines that are neither


def read_opml(path: Path) -> Opml:
    """Read an OPML file; OpmlError (one line: file, line, what, fix) if it cannot be."""
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise OpmlError(f"{path}: {size // 2**20} MB is too large for an OPML file "
                            f"(at most {MAX_BYTES // 2**20} MB)")
        body = path.read_bytes()
    except OSError as e:
        raise OpmlError(f"{path}: cannot read: {e.strerror}") from None
    text = decode(body)
    m = _ENTITY.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise OpmlError(f"{path}:{line}: the file declares XML entities (<!ENTITY>), which "
                        "OPML never needs; refused", hint="export it again from the feed reader")
    m = _EXTERNAL_DTD.search(text)
    if m:
        line = text.count("\n", 0, m.start()) + 1
        raise OpmlError(f"{path}:{line}: the file points to a DTD (<!DOCTYPE ... SYSTEM/"
                        "PUBLIC/[...]>), which OPML never needs; refused",
                        hint="export it again from the feed reader")
    data = to_xml_bytes(body)
    if data is None:
        raise OpmlError(f"{path}:1: not OPML (not an XML document)",
                        hint="export the subscriptions as OPML from the feed reader")
    try:
        root = etree.fromstring(data, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError as e:
        message = re.sub(r", line \d+, column \d+$", "", str(e.msg or e))
        raise OpmlError(f"{path}:{e.lineno or 1}: not well-formed XML: {message}",
                        hint="export it again, or fix that line") from None
    if _local(root) != "opml":
        raise OpmlError(f"{path}:{root.sourceline or 1}: not OPML (the root element is "
                        f"<{_local(root) or '?'}>, not <opml>)")
    body_el = _first(root, "body")
    if body_el is None:
        raise OpmlError(f"{path}:{root.sourceline or 1}: OPML without a <body>")
    head = _first(root, "head")
    title_el = _first(head, "title") if head is not None else None
    title = " ".join((title_el.text or "").split()) if title_el is not None else ""
    feeds, no_url = _walk(body_el)
    return Opml(title, tuple(feeds), tuple(no_url))


def _walk(body: Any) -> tuple[list[Outline], list[tuple[int, str]]]:
    feeds: list[Outline] = []
    no_url: list[tuple[int, str]] = []
    # Depth first, in document order, without recursion: nesting depth is the file's.
    stack: list[tuple[Any, tuple[str, ...]]] = [(body, ())]
    while stack:
        el, folders = stack.pop()
        children = [c for c in el if _local(c) == "outline"]
        for child in reversed(children):
            a = _attrs(child)
            name = _clean(a.get("title") or a.get("text") or "")
            url = a.get("xmlurl", "").strip()
            if url:
                feeds.append(Outline(url, a.get("htmlurl", "").strip(), name, folders,
                                     _categories(a.get("category", "")),
                                     _weight(a.get(f"{{{DIGEST_NS}}}weight")),
                                     child.sourceline or 0))
            if any(_local(c) == "outline" for c in child):
                stack.append((child, folders + ((name,) if name else ())))
            elif not url:
                no_url.append((child.sourceline or 0, name))
    feeds.sort(key=lambda o: o.line)
    no_url.sort()
    return feeds, no_url


def _local(el: Any) -> str:
    return el.tag.rpartition("}")[2] if isinstance(el.tag, str) else ""


def _first(el: Any, name: str) -> Any:
    return next((c for c in el if _local(c) == name), None)


def _attrs(el: Any) -> dict[str, str]:
    """Attributes by lower-case name (namespaced ones keep their ``{ns}`` form)."""
    return {(k if k.startswith("{") else k.lower()): v for k, v in el.attrib.items()}


def _clean(text: str) -> str:
    return " ".join("".join(c for c in text if c.isprintable() or c.isspace()).split())


def _categories(value: str) -> tuple[str, ...]:
    parts = (p.strip().strip("/").rpartition("/")[2].strip() for p in value.split(","))
    return tuple(p for p in parts if p)


def _weight(value: str | None) -> float | None:
    try:
        w = float(value) if value is not None else None
    except ValueError:
        return None
    return w if w is not None and 0 <= w < 1000 else None


# -- writing -------------------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    """One feed to export."""

    name: str
    url: str
    site: str = ""
    weight: float = 1.0
    topics: Sequence[str] = ()


def write_opml(title: str, entries: Iterable[Entry], *, now: datetime) -> bytes:
    """OPML 2.0 of ``entries``: what any feed reader imports, and `digest feeds import`
    reads back to the same entries (topics as ``category``, weight as ``digest:weight``)."""
    root = etree.Element("opml", version="2.0", nsmap={"digest": DIGEST_NS})
    head = etree.SubElement(root, "head")
    etree.SubElement(head, "title").text = title
    etree.SubElement(head, "dateCreated").text = format_datetime(now, usegmt=True)
    body = etree.SubElement(root, "body")
    for e in entries:
        el = etree.SubElement(body, "outline", type="rss", text=e.name, title=e.name,
                              xmlUrl=e.url)
        if e.site:
            el.set("htmlUrl", e.site)
        if e.topics:
            el.set("category", ",".join(f"/{t}" for t in e.topics))
        if e.weight != 1.0:
            el.set(f"{{{DIGEST_NS}}}weight", f"{e.weight:g}")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + bytes(
        etree.tostring(root, encoding="UTF-8", pretty_print=True))
