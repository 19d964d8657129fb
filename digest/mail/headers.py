"""The header block of every message digest makes, built and encoded here.

Python's ``email`` package decodes RFC 2047 encoded words when a header is *set*
from a string, and can write the decoded CR/LF back out (the class of
CVE-2024-6923): a feed title such as ``=?utf-8?q?=0D=0ABcc:_x@evil?=`` would
add a header, or end the header block early. So no value from outside (feed
titles, subscriber names, config strings) is ever handed to the email package's
header machinery. Each is normalised to one line (:func:`header_text`) and encoded
here: left as it is when it is printable ASCII and holds nothing a reader could
take for an encoded word, otherwise as encoded words of our own making. The
folded lines go into the message bytes verbatim.

:func:`block` is the one place a message's header block is made: the bulk splice
(``digest.mail.mime``), SMTPUTF8 messages, test sends, ``render --out``, the preview's
``.eml``, and any later mail use it, and the splice fills its per-subscriber
slots with the same field functions.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from functools import lru_cache

import idna

CRLF = "\r\n"
WIDTH = 78  # RFC 5322 2.1.1: lines SHOULD stay within 78 characters...
HARD_WIDTH = 998  # ...and MUST stay within 998.
# Display names longer than this are cut: one encoded word of this many 4-byte
# characters still fits on a 998-octet line (see _phrase for why one word).
NAME_MAX = 150
# UTF-8 bytes per encoded word of an unstructured field: 52 base64 characters, so
# each word is 64 long and a field name of up to 12 characters keeps 78 columns.
_EW_BYTES = 39

# Controls, line and paragraph separators, and lone surrogates (unencodable): each
# becomes a space before runs of whitespace collapse.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# atext plus space: such a display name needs neither quotes nor encoding.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/?^_`{|}~ -]+")
# RFC 6532 widens atext to UTF-8: a non-ASCII local part needs no quotes either.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\u0080-\U0010ffff-]"
_DOT_ATOM = re.compile(f"{_ATEXT}+(?:\\.{_ATEXT}+)*")
_PRINTABLE_ASCII = re.compile(r"[ -~]*")


def header_text(s: str) -> str:
    """Outside text as one header-safe line: every control character, line or
    paragraph separator and run of whitespace becomes one space; no lone surrogates."""
    if not s.isascii() or not s.isprintable():
        s = _UNSAFE.sub(" ", s)
    return " ".join(s.split())


def display_name(s: str) -> str:
    """A name as it goes in an address header: :func:`header_text`, at most NAME_MAX
    characters."""
    s = header_text(s)
    return s if len(s) <= NAME_MAX else s[:NAME_MAX].rstrip()


def _needs_encoding(s: str) -> bool:
    # '=?' could open an encoded word that a reader would decode (Python's parser
    # does so even inside quoted strings), so such text is encoded, never left bare.
    return not _PRINTABLE_ASCII.fullmatch(s) or "=?" in s


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _encoded_words(s: str) -> list[str]:
    """``s`` as encoded words of at most _EW_BYTES bytes each, cut between characters
    (RFC 2047 6.3: a word may not split a character)."""
    words, chunk = [], b""
    for ch in s:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) > _EW_BYTES:
            words.append(_encoded_word(chunk))
            chunk = b""
        chunk += b
    if chunk or not words:
        words.append(_encoded_word(chunk))
    return words


def _fold(tokens: list[str]) -> str:
    """Join tokens with single spaces, breaking lines before a token where the line
    would pass WIDTH. A token is never split (callers keep each within HARD_WIDTH)."""
    lines, current = [], ""
    for i, token in enumerate(tokens):
        # Never break right after the field name: "To:" alone on a line helps no one.
        if i > 1 and len(current) + 1 + len(token) > WIDTH:
            lines.append(current)
            current = " " + token
        else:
            current = f"{current} {token}" if current else token
    return CRLF.join([*lines, current]) + CRLF


def unstructured(field: str, value: str) -> str:
    """``Field: value`` CRLF for free text (Subject), normalised and folded.

    Words that are printable ASCII stay readable; each run of the others (non-ASCII,
    '=?', too long to fold) becomes encoded words, the run's own spaces inside them.
    RFC 2047 readers (Python's unstructured parser too) drop the folding white
    space between two encoded words and keep it between a word and an encoded one.
    """
    value = header_text(value)
    if not value:
        return f"{field}:{CRLF}"
    tokens: list[str] = [f"{field}:"]
    run: list[str] = []
    for word in value.split(" "):
        if _needs_encoding(word) or len(word) > WIDTH - 2:
            run.append(word)
            continue
        if run:
            tokens += _encoded_words(" ".join(run))
            run = []
        tokens.append(word)
    if run:
        tokens += _encoded_words(" ".join(run))
    return _fold(tokens)


def _phrase(name: str, *, quoted: bool = False) -> list[str]:
    """A display name as phrase tokens: atoms, a quoted string cut at its spaces,
    or a single encoded word.

    One word, because Python's address parser keeps (even doubles) the blank
    between two encoded words where RFC 2047 readers drop it: only one word reads
    the same everywhere. NAME_MAX keeps that word within a legal line.
    """
    if _needs_encoding(name):
        return [_encoded_word(name.encode("utf-8"))]
    if _PLAIN_NAME.fullmatch(name) and not quoted:
        return name.split(" ")
    text = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    # Folding white space may sit inside a quoted string (RFC 5322 3.2.4); a blank
    # escaped by a backslash stays where it is.
    return re.split(r"(?<!\\) ", text)


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def addr_spec(email: str) -> str:
    """The address as it goes in a header: IDNA domain, local part quoted if it must be.

    A non-ASCII local part stays UTF-8 (RFC 6532: the message needs SMTPUTF8)."""
    email = email.strip()
    if _UNSAFE.search(email) or any(c in email for c in "<>"):
        raise ValueError(f"unsafe address: {email!r}")
    local, _, domain = email.rpartition("@")
    if not local or not domain:
        raise ValueError(f"not an address: {email!r}")
    if not _DOT_ATOM.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{_domain(domain)}"


def mailbox(field: str, name: str, email: str) -> str:
    """``To: Name <address>`` CRLF (any address field), the name normalised by
    :func:`display_name` and folded within RFC 5322's limits."""
    spec = addr_spec(email)
    name = display_name(name)
    if not name:
        return f"{field}: {spec}{CRLF}"
    return _fold([f"{field}:", *_phrase(name), f"<{spec}>"])


def list_id(name: str, identifier: str) -> str:
    """``List-Id: "Name" <id>`` CRLF (RFC 2919); the name is a phrase like a display name."""
    if any(c in identifier for c in "<> \r\n") or not _PRINTABLE_ASCII.fullmatch(identifier):
        raise ValueError(f"unsafe List-Id: {identifier!r}")
    name = display_name(name)
    # Quoted even when atoms would do: RFC 2919's own examples quote the name.
    return _fold(["List-Id:", *(_phrase(name, quoted=True) if name else []), f"<{identifier}>"])


def _safe_target(value: str) -> str:
    if not value.isascii() or _UNSAFE.search(value) or any(c in value for c in "<> ,"):
        raise ValueError(f"unsafe List-Unsubscribe target: {value!r}")
    return value


def list_unsubscribe(url: str, mailto: str) -> str:
    """``List-Unsubscribe`` with the one-click URL and a mailto, one per line (RFC 2369).

    Folded between the URIs only: the email package would fold a long one into
    encoded words, which breaks it."""
    return (f"List-Unsubscribe: <{_safe_target(url)}>,{CRLF}"
            f" <mailto:{_safe_target(mailto)}?subject=unsubscribe>{CRLF}")


def message_id(value: str) -> str:
    if not _PRINTABLE_ASCII.fullmatch(value) or " " in value or len(value) > HARD_WIDTH - 13:
        raise ValueError(f"unsafe Message-ID: {value!r}")
    return f"Message-ID: {value}{CRLF}"


@lru_cache(maxsize=16)
def date(now: datetime) -> str:
    # A sending run stamps thousands of messages with few distinct clocks.
    return f"Date: {format_datetime(now)}{CRLF}"


@dataclass(frozen=True)
class Mailbox:
    name: str
    email: str


@dataclass(frozen=True)
class Headers:
    """Every header digest writes on a message; values as they came (the fields
    normalise and encode them)."""

    sender: Mailbox  # From
    to: Mailbox
    subject: str
    date: datetime
    message_id: str
    reply_to: Mailbox | None = None
    list_name: str = ""
    list_id: str | None = None
    unsubscribe: tuple[str, str] | None = None  # (one-click URL, mailto address)


def block(h: Headers) -> list[tuple[str, str]]:
    """The header fields in order, as (lower-case name, folded field with CRLF).

    MIME-Version and the Content-* fields belong to the body's builder."""
    fields = [("from", mailbox("From", h.sender.name, h.sender.email)),
              ("to", mailbox("To", h.to.name, h.to.email))]
    if h.reply_to is not None:
        fields.append(("reply-to", mailbox("Reply-To", h.reply_to.name, h.reply_to.email)))
    fields += [("subject", unstructured("Subject", h.subject)),
               ("date", date(h.date)),
               ("message-id", message_id(h.message_id))]
    if h.list_id is not None:
        fields.append(("list-id", list_id(h.list_name, h.list_id)))
    if h.unsubscribe is not None:
        fields += [("list-unsubscribe", list_unsubscribe(*h.unsubscribe)),
                   ("list-unsubscribe-post",
                    f"List-Unsubscribe-Post: List-Unsubscribe=One-Click{CRLF}")]
    return fields
