"""Ready-to-send bytes for many subscribers: MIME built once per variant, then spliced.

The ``email`` package needs ~10 ms to build and serialise one 60 KB message. A day's
digest is the same message for everyone but a handful of fields (To, Date,
Message-ID, List-Unsubscribe and four placeholders in the body), so
:func:`prepare` encodes the whole message once and :meth:`PreparedMessage.bytes_for`
joins the static pieces with each subscriber's freshly encoded fields.

Why the splice is exact under quoted-printable: soft line breaks depend on the
column, and the column after a personal value depends on the value's length. So
every placeholder is cut out of the text *before* encoding, the static text around
it ends in a soft line break (``=`` CRLF, invisible once decoded) and the value is
encoded on lines of its own, followed by another soft break. Every static piece
therefore starts at column 0 whatever the subscriber's name, and its encoding
computed once is valid for all of them.

The encoder also writes a ``.`` at the start of a line as ``=2E``, so the body never
needs SMTP dot-stuffing, and keeps every line at most 76 characters (RFC 2045).
"""

from __future__ import annotations

import base64
import html as htmllib
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from email.utils import format_datetime
from functools import lru_cache

import idna

from digest.clean import CleanMessage, clean_piece
from digest.config import Config
from digest.models import MailFormat, Personal, Rendered, Subscriber
from digest.qp import CRLF, SOFT, body_text, qp_line, qp_text
from digest.render import PLACEHOLDERS, one_line

# --- headers ---------------------------------------------------------------------

# atext plus space: such a display name needs neither quotes nor encoding.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/?^_`{|}~ -]+")
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_HEADER_WIDTH = 78
# Longest line (RFC 5322 2.1.1) before a name is split into several encoded words.
_HARD_WIDTH = 998


def _encoded_word(name: str) -> str:
    return f"=?utf-8?b?{base64.b64encode(name.encode('utf-8')).decode('ascii')}?="


def _fold(line: str) -> str:
    """Fold at spaces (not escaped ones) so lines stay within 78 columns where they can."""
    out, current = [], ""
    for word in re.split(r"(?<!\\) ", line):
        if current and len(current) + 1 + len(word) > _HEADER_WIDTH:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    return CRLF.join([*out, current]) + CRLF


@lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def addr_spec(email: str) -> str:
    """The address as it goes in a header: IDNA domain, local part quoted if it must be."""
    local, _, domain = email.strip().rpartition("@")
    if any(c in email for c in "\r\n<>"):
        raise ValueError(f"unsafe address: {email!r}")
    if not _DOT_ATOM.fullmatch(local):
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{_domain(domain)}"


def to_header(name: str, email: str) -> str:
    """'To: ...' CRLF for an ASCII-local-part address, folded within 78 columns.

    The email package mangles long non-ASCII names (it splits encoded words inside
    words and doubles spaces); this keeps every name exact.
    """
    spec = f"<{addr_spec(email)}>"
    name = one_line(name)
    if not name:
        return f"To: {spec[1:-1]}{CRLF}"
    if all(" " <= c <= "~" for c in name) and "=?" not in name:
        phrase = name if _PLAIN_NAME.fullmatch(name) else \
            '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return _fold(f"To: {phrase} {spec}")
    # One encoded word, even past RFC 2047's 75 characters: adjacent encoded words
    # are joined without their whitespace by RFC 2047 readers but with a space by
    # Python's address parser, so only a single word reads the same everywhere.
    # A name past ~735 UTF-8 bytes is cut (at a character) to keep the line legal.
    room = (_HARD_WIDTH - len("To: =?utf-8?b??=")) // 4 * 3
    word = _encoded_word(name.encode("utf-8")[:room].decode("utf-8", "ignore"))
    if len(word) + len(spec) + 5 <= _HEADER_WIDTH:
        return f"To: {word} {spec}{CRLF}"
    return f"To: {word}{CRLF} {spec}{CRLF}"


def list_unsubscribe_header(personal: Personal) -> str:
    for value in (personal.unsubscribe_url, personal.unsubscribe_mailto):
        if not value.isascii() or any(c in value for c in "\r\n<> "):
            raise ValueError(f"unsafe List-Unsubscribe target: {value!r}")
    return (f"List-Unsubscribe: <{personal.unsubscribe_url}>,{CRLF}"
            f" <mailto:{personal.unsubscribe_mailto}?subject=unsubscribe>{CRLF}")


# --- the prepared message ---------------------------------------------------------

_FIELDS = tuple(PLACEHOLDERS)  # name, email, unsubscribe_url, view_url
_TOKEN_SPLIT = re.compile("(" + "|".join(map(re.escape, PLACEHOLDERS.values())) + ")")
_FIELD_OF = {token: i for i, token in enumerate(PLACEHOLDERS.values())}
_HTML_OFFSET = len(_FIELDS)  # value slots: text fields 0..3, html fields 4..7
_PERSONAL_HEADERS = ("to", "date", "message-id", "list-unsubscribe")
_DROPPED_HEADERS = ("content-type", "content-transfer-encoding", "mime-version")
_HEADER_SLOT = {name: -(i + 1) for i, name in enumerate(_PERSONAL_HEADERS)}


def _encode_part(content: str, offset: int) -> list[str | int]:
    """A QP body as static strings and value-slot numbers (see the module docstring)."""
    pieces: list[str | int] = []
    segments = _TOKEN_SPLIT.split(body_text(content))
    for i, seg in enumerate(segments):
        if i % 2:
            pieces.append(_FIELD_OF[seg] + offset)
            continue
        out = ""
        if i and not seg.startswith("\n"):
            out += SOFT  # end the value's last line; this text starts at column 0
        out += qp_text(seg) if seg else ""
        if i + 1 < len(segments) and seg and not seg.endswith("\n"):
            out += SOFT  # the value starts at column 0
        pieces.append(out)
    return pieces


def _header_fields(head: bytes) -> list[tuple[str, str]]:
    """(lower-case name, the field's folded text with CRLF) from a serialised header."""
    fields: list[tuple[str, str]] = []
    for line in head.decode("ascii").split(CRLF):
        if line[:1] in (" ", "\t") and fields:
            name, text = fields[-1]
            fields[-1] = (name, text + line + CRLF)
        elif line:
            fields.append((line.split(":", 1)[0].lower(), line + CRLF))
    return fields


@dataclass(frozen=True)
class PreparedMessage:
    """One variant's message, encoded once; :meth:`bytes_for` personalises it."""

    config: Config
    rendered: Rendered
    day: date
    fmt: MailFormat
    test: bool
    pieces: tuple[bytes | int, ...]  # static bytes; int = value slot (<0: headers)
    clean: bool = False  # every static piece is clean_piece(): see digest.clean

    def bytes_for(self, subscriber: Subscriber, personal: Personal, *, now: datetime,
                  message_id: str | None = None) -> bytes:
        """The complete RFC 5322 message for one subscriber, CRLF line ends."""
        from digest import message as msgmod

        local = subscriber.email.rpartition("@")[0]
        if not local.isascii():
            # SMTPUTF8 messages carry raw UTF-8 headers; rare enough for the slow path.
            msg = msgmod.build_message(self.config, self.rendered, subscriber, personal,
                                       day=self.day, now=now, test=self.test)
            if message_id:
                msg.replace_header("Message-ID", message_id)
            return msg.as_bytes()
        if message_id is None:
            message_id = (msgmod.trial_message_id(self.config, self.day, subscriber.email, now)
                          if self.test else msgmod.message_id(self.config, self.day,
                                                              subscriber.email))
        if any(c in message_id for c in "\r\n"):
            raise ValueError(f"unsafe Message-ID: {message_id!r}")
        raw = (personal.name, personal.email, personal.unsubscribe_url, personal.view_url)
        values: list[bytes] = [_qp_value(v) for v in raw]
        values += [_qp_value(htmllib.escape(v, quote=True)) for v in raw]
        values += [  # header slots, indexed from the end: -4 .. -1
            list_unsubscribe_header(personal).encode("ascii"),
            f"Message-ID: {message_id}{CRLF}".encode("ascii"),
            _date_header(now),
            to_header(subscriber.name, subscriber.email).encode("ascii"),
        ]
        out = b"".join([values[p] if isinstance(p, int) else p for p in self.pieces])
        # The quoted-printable values (the first eight) are clean by construction;
        # the header lines depend on the subscriber's name, so they are checked.
        if self.clean and all(clean_piece(v) for v in values[2 * _HTML_OFFSET:]):
            return CleanMessage(out)
        return out


@lru_cache(maxsize=1024)
def _qp_value(value: str) -> bytes:
    # The view URL and many URL prefixes repeat across a run; names mostly do not.
    return qp_line(value).encode("ascii")


@lru_cache(maxsize=16)
def _date_header(now: datetime) -> bytes:
    # A sending run stamps thousands of messages with few distinct clocks.
    return f"Date: {format_datetime(now)}{CRLF}".encode("ascii")


def _merge(pieces: list[str | int]) -> tuple[bytes | int, ...]:
    """Adjacent static strings joined and encoded once: fewer pieces, faster joins."""
    out: list[bytes | int] = []
    for p in pieces:
        if isinstance(p, int):
            out.append(p)
        elif out and isinstance(out[-1], bytes):
            out[-1] += p.encode("ascii")
        else:
            out.append(p.encode("ascii"))
    return tuple(out)


def prepare(config: Config, rendered: Rendered, *, day: date, fmt: MailFormat,
            test: bool = False) -> PreparedMessage:
    """Build and encode one variant's message once, for :meth:`PreparedMessage.bytes_for`."""
    from digest import message as msgmod

    # The static headers come from the reference builder, so both paths agree on
    # From, Subject, List-Id, ... byte for byte; only the personal ones are slots.
    probe = Subscriber(email="probe@example.org", name="Probe", format=fmt)
    personal = Personal(email=probe.email, name="Probe", unsubscribe_url="https://x.invalid/u",
                        unsubscribe_mailto="u@x.invalid", view_url="https://x.invalid/v")
    proto = msgmod.build_message(config, rendered, probe, personal, day=day,
                                 now=datetime(2000, 1, 1).astimezone(), test=test)
    head = proto.as_bytes().split(b"\r\n\r\n", 1)[0] + b"\r\n"
    pieces: list[str | int] = []
    for name, text in _header_fields(head):
        if name in _HEADER_SLOT:
            pieces.append(_HEADER_SLOT[name])
        elif name not in _DROPPED_HEADERS:
            pieces.append(text)
    pieces.append(f"MIME-Version: 1.0{CRLF}")
    part_head = (f'Content-Type: text/{{}}; charset="utf-8"{CRLF}'
                 f"Content-Transfer-Encoding: quoted-printable{CRLF}")
    if fmt == "text":
        pieces += [part_head.format("plain"), CRLF, *_encode_part(rendered.text, 0)]
        return _prepared(config, rendered, day, fmt, test, pieces)
    # '=_' cannot occur in quoted-printable output, so no body line can match it.
    boundary = f"=_digest_{secrets.token_hex(12)}"
    pieces += [f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}',
               CRLF, f"--{boundary}{CRLF}", part_head.format("plain"), CRLF,
               *_encode_part(rendered.text, 0), f"{CRLF}--{boundary}{CRLF}",
               part_head.format("html"), CRLF, *_encode_part(rendered.html, _HTML_OFFSET),
               f"{CRLF}--{boundary}--{CRLF}"]
    return _prepared(config, rendered, day, fmt, test, pieces)


def _prepared(config: Config, rendered: Rendered, day: date, fmt: MailFormat, test: bool,
              pieces: list[str | int]) -> PreparedMessage:
    merged = _merge(pieces)
    clean = all(clean_piece(p) for p in merged if isinstance(p, bytes))
    return PreparedMessage(config, rendered, day, fmt, test, merged, clean)
