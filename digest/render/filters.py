"""The template's filters and the URL and text rules behind them: one line, a clip
at a word, the summary cut both parts share, links and images an email may show,
and the text part's wrapping (with story-time tokens measured as the times they
become).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from digest.render import when
from digest.textcut import cut

TEXT_WIDTH = 78


def one_line(s: str) -> str:
    """Collapse every run of whitespace (CR/LF included) to one space: safe in a header."""
    return " ".join(s.split())


def clip(s: str, limit: int, end: str = "…") -> str:
    """Cut ``s`` to at most ``limit`` characters at a word boundary."""
    s = one_line(s)
    if len(s) <= limit:
        return s
    head = s[: limit - len(end) + 1].rsplit(" ", 1)[0].rstrip(" ,;:-–—")
    return (head or s[: limit - len(end)]) + end


_LINK_SCHEMES = ("http", "https", "mailto")


def safe_url(url: str | None) -> str:
    """``url`` if it is an absolute http(s) or mailto link, else ''.

    Feed links reach both parts of the email, and a template may print them without
    the ``href`` filter: a ``javascript:`` or ``data:`` link, one hidden behind
    control characters (browsers drop leading C0 controls and tabs before the
    scheme) or a relative one (it points nowhere in a mailbox) must never get there.
    """
    if not url:
        return ""
    url = url.strip()
    if not url.isprintable():
        return ""
    parts = urlsplit(url)
    if parts.scheme.lower() not in _LINK_SCHEMES:
        return ""
    if parts.scheme.lower() != "mailto" and not parts.netloc:
        return ""
    return url.replace(" ", "%20")


def _href(url: str | None) -> str:
    """Only http(s)/mailto links reach the email; anything else (javascript:) becomes ''."""
    return safe_url(url)


# The longest a story time's label gets ("yesterday 22:10"): a time token is wrapped
# as a word this wide, so the line it lands on fits once the label replaces it.
_WHEN_WIDTH = 15


def _wrap(text: str, width: int = TEXT_WIDTH, indent: str = "", first: str | None = None) -> str:
    """textwrap.fill for the text part; long URLs stay whole rather than break."""
    text = one_line(str(text))
    tokens = [m.group(0) for m in when.TOKEN.finditer(text)] if "__dgst_at_" in text else []
    if tokens:
        stand_ins = [f"\x00{i:0{_WHEN_WIDTH - 2}d}\x00" for i in range(len(tokens))]
        for token, stand_in in zip(tokens, stand_ins, strict=True):
            text = text.replace(token, stand_in, 1)
        wrapped = _fill(text, width, indent, first)
        for token, stand_in in zip(tokens, stand_ins, strict=True):
            wrapped = wrapped.replace(stand_in, token)
        return wrapped
    return _fill(text, width, indent, first)


def _fill(text: str, width: int, indent: str, first: str | None) -> str:
    return textwrap.fill(
        text,
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )


def _underline(text: str, char: str = "-") -> str:
    return char * min(len(text), TEXT_WIDTH)


# How long a summary may be where it is shown. Both parts of the email cut with
# this one table and one function (digest.textcut.cut), so the HTML and the text
# part always end a summary at the same word.
SUMMARY_LIMITS = {"lead": 420, "card": 200}


def _summary(text: str, place: str = "card") -> str:
    """The summary as shown at ``place`` ("lead" or "card"): one cut for both parts."""
    return cut(text, SUMMARY_LIMITS.get(place, SUMMARY_LIMITS["card"]))


def email_image(url: str | None) -> str:
    """``url`` if an email may show it: https only. An http image would be blocked
    (mixed content) or shown as a broken box, so it is dropped, not shown."""
    safe = safe_url(url)
    return safe if safe[:8].lower() == "https://" else ""


FILTERS: dict[str, Callable[..., Any]] = {
    "wrap": _wrap, "clip": clip, "href": _href, "underline": _underline,
    "summary": _summary, "image": email_image,
}
