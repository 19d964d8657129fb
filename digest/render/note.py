"""The editor's note (digest desk note): a small Markdown subset, read by digest
alone so nothing else can slip through.

    paragraphs (blank lines), *em*, **strong**, [text](https://…)

Everything else is text: every character is HTML-escaped before any markup is
made, and a link whose target is not http(s) (``javascript:``, ``data:``…) stays
the words it was written as. The text part gets the words, links as "text <url>".
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from markupsafe import Markup, escape

_LINK = re.compile(r"\[([^\[\]\n]+)\]\(([^()\s]+)\)")
_STRONG = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_EM = re.compile(r"(?<![*\w])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![*\w])")


def paragraphs(note: str) -> list[str]:
    text = note.replace("\r\n", "\n").replace("\r", "\n")
    return [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]


def safe_url(url: str) -> str | None:
    parts = urlsplit(url)
    return url if parts.scheme.lower() in ("http", "https") and parts.netloc else None


def _inline_html(text: str) -> str:
    out: list[str] = []
    pos = 0
    for m in _LINK.finditer(text):
        out.append(_emphasis(str(escape(text[pos:m.start()]))))
        label = _emphasis(str(escape(m[1])))
        url = safe_url(m[2])
        if url is None:
            out.append(label)  # not a web link: its words, never its target
        else:
            out.append(f'<a href="{escape(url)}" style="color:inherit;">{label}</a>')
        pos = m.end()
    out.append(_emphasis(str(escape(text[pos:]))))
    return "".join(out)


def _emphasis(escaped: str) -> str:
    # Runs on text already escaped: the asterisks are the only markup it adds.
    escaped = _STRONG.sub(r"<strong>\1</strong>", escaped)
    return _EM.sub(r"<em>\1</em>", escaped)


def to_html(note: str) -> Markup:
    """The note as HTML paragraphs, every outside character escaped."""
    return Markup("".join(f'<p style="margin:0 0 10px;">{_inline_html(p)}</p>'
                          for p in paragraphs(note)))


def to_text(note: str) -> str:
    """The note for the plain-text part: paragraphs, markup gone, links as <url>."""
    out = []
    for p in paragraphs(note):
        def link(m: re.Match[str]) -> str:
            url = safe_url(m[2])
            return f"{m[1]} <{url}>" if url else m[1]
        p = _LINK.sub(link, p)
        p = _STRONG.sub(r"\1", p)
        out.append(_EM.sub(r"\1", p))
    return "\n\n".join(out)
