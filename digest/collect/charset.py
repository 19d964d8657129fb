"""Which encoding a feed document is really in.

The wild serves BOMs, UTF-16, leading whitespace before the XML declaration, and
declared charsets that lie (a "utf-8" feed with Windows-1252 bytes, or an
"iso-8859-1" one that is really UTF-8). The rule here: a byte-order mark wins;
then the first of (XML declaration, HTTP charset, UTF-8, Windows-1252) that
decodes cleanly — except that valid multi-byte UTF-8 beats a declared single-byte
charset, because such bytes are almost never Latin-1 text by accident.
"""

from __future__ import annotations

import codecs
import re

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_XML_DECL = re.compile(rb"^\s*<\?xml[^>]*?\bencoding\s*=\s*[\"']([A-Za-z0-9._:-]+)[\"']")
_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
_DECL_BYTES = re.compile(rb"^\s*<\?xml[^>]*\?>")
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([A-Za-z0-9._:-]+)", re.I)
_SINGLE_BYTE = {"windows-1252", "cp1252", "iso8859-15"}
# Entity declarations have no place in a feed; they are how billion-laughs and XXE
# documents work. The internal subset goes, the rest of the document stays.
_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^\[>]*\[.*?\]\s*>", re.S | re.I)


def strip_entity_declarations(body: bytes) -> bytes:
    """The document without a DOCTYPE internal subset that declares entities."""
    head = body[:65536]
    if b"<!ENTITY" not in head.upper() and b"<!entity" not in head:
        return body
    return _DOCTYPE_SUBSET.sub(b"", body, count=1)


def detect(body: bytes, content_type: str | None = None) -> tuple[str, int]:
    """(codec name, bytes of BOM to skip) for a feed document."""
    for bom, name in _BOMS:
        if body.startswith(bom):
            return name, len(bom)
    # UTF-16 without a BOM still starts with "<" (or whitespace) and a zero byte.
    start = body.lstrip(b"\0 \t\r\n")[:1]
    if body[1:2] == b"\0" and body[:1] in (b"<", b" ", b"\t", b"\r", b"\n"):
        return "utf-16-le", 0
    if body[:1] == b"\0" and start == b"<":
        return "utf-16-be", 0
    declared = _codec(_declared(body))
    header = _codec(_header_charset(content_type))
    candidates = [c for c in (declared, header, "utf-8", "windows-1252") if c]
    ascii_start = body.lstrip()[:2].isascii() and b"\0" not in body[:4]
    for name in dict.fromkeys(candidates):
        if name.startswith(("utf-16", "utf-32")) and ascii_start:
            continue  # "utf-16" declared in plainly 8-bit bytes: a lie
        if name in _SINGLE_BYTE and _is_multibyte_utf8(body):
            return "utf-8", 0
        try:
            body.decode(name)
        except (UnicodeDecodeError, LookupError):
            continue
        return name, 0
    return "utf-8", 0


def decode(body: bytes, content_type: str | None = None) -> str:
    """The document as text, by ``detect``'s rule (never raises)."""
    name, skip = detect(body, content_type)
    return body[skip:].decode(name, "replace")


def to_xml_bytes(body: bytes, content_type: str | None = None) -> bytes | None:
    """UTF-8 bytes lxml reads exactly, or None when this is not an XML-looking body.

    Already-valid UTF-8 (the common case) is passed through without a copy beyond
    trimming what precedes the root; anything else is decoded and re-encoded with
    the declaration's encoding removed.
    """
    name, skip = detect(body, content_type)
    if name == "utf-8":
        data = body[skip:].lstrip()
        if not data.startswith(b"<"):
            return None
        declared = _declared(data)
        if declared and _codec(declared) != "utf-8":
            # The declaration lies; lxml would believe it. Without one it reads UTF-8.
            data = _DECL_BYTES.sub(b"", data, count=1)
        return strip_entity_declarations(data)
    text = body[skip:].decode(name, "replace").lstrip()
    if not text.startswith("<"):
        return None
    text = _DECL.sub("", text, count=1)
    return strip_entity_declarations(text.encode("utf-8"))


def _declared(body: bytes) -> str | None:
    m = _XML_DECL.match(body[:512])
    return m.group(1).decode("ascii").lower() if m else None


def _header_charset(content_type: str | None) -> str | None:
    m = _CHARSET.search(content_type or "")
    return m.group(1).lower() if m else None


def _codec(name: str | None) -> str | None:
    if not name:
        return None
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return None
    # Browsers read "iso-8859-1" and "ascii" as Windows-1252; so do the feeds' authors.
    if canonical in ("latin-1", "iso8859-1", "ascii"):
        return "windows-1252"
    return "utf-8" if canonical == "utf-8" else canonical


def _is_multibyte_utf8(body: bytes) -> bool:
    if body.isascii():
        return False
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True
