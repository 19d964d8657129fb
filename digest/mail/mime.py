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

import html as htmllib
import re
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache

from digest.config import Config
from digest.mail import fields, headers
from digest.mail.clean import CleanMessage, clean_piece
from digest.models import MailFormat, Personal, Rendered, Subscriber
from digest.render import when
from digest.render.qp import CRLF, SOFT, body_text, qp_line, qp_text
from digest.render.variant import PLACEHOLDERS

# --- the prepared message ---------------------------------------------------------

_FIELDS = tuple(PLACEHOLDERS)  # name, email, unsubscribe_url, view_url
# Story times (digest.render.when) are slots too: filled per reader's zone, from a
# table computed once per (message, zone).
_TOKEN_SPLIT = re.compile("(" + "|".join([*map(re.escape, PLACEHOLDERS.values()),
                                          when.TOKEN_PATTERN.replace("(", "(?:")]) + ")")
_FIELD_OF = {token: i for i, token in enumerate(PLACEHOLDERS.values())}
_HTML_OFFSET = len(_FIELDS)  # value slots: text fields 0..3, html fields 4..7
_TIMES_OFFSET = 2 * _HTML_OFFSET  # then one slot per story time: 8, 9, ...
_PERSONAL_HEADERS = ("to", "date", "message-id", "list-unsubscribe")
_HEADER_SLOT = {name: -(i + 1) for i, name in enumerate(_PERSONAL_HEADERS)}


def _encode_part(content: str, offset: int, times: list[str]) -> list[str | int]:
    """A QP body as static strings and value-slot numbers (see the module docstring).
    Time tokens get slots after the personal fields, numbered by their place in
    ``times`` (shared by both parts: a time reads the same in HTML and text)."""
    pieces: list[str | int] = []
    segments = _TOKEN_SPLIT.split(body_text(content))
    for i, seg in enumerate(segments):
        if i % 2:
            if seg in _FIELD_OF:
                pieces.append(_FIELD_OF[seg] + offset)
            else:
                if seg not in times:
                    times.append(seg)
                pieces.append(_TIMES_OFFSET + times.index(seg))
            continue
        out = ""
        if i and not seg.startswith("\n"):
            out += SOFT  # end the value's last line; this text starts at column 0
        out += qp_text(seg) if seg else ""
        if i + 1 < len(segments) and seg and not seg.endswith("\n"):
            out += SOFT  # the value starts at column 0
        pieces.append(out)
    return pieces


@dataclass(frozen=True)
class PreparedMessage:
    """One variant's message, encoded once; :meth:`bytes_for` personalises it."""

    config: Config
    rendered: Rendered
    day: date
    fmt: MailFormat
    test: bool
    pieces: tuple[bytes | int, ...]  # static bytes; int = value slot (<0: headers)
    clean: bool = False  # every static piece is clean_piece(): see digest.mail.clean
    times: tuple[str, ...] = ()  # the story-time tokens, in slot order
    _zones: dict[str, list[bytes]] = field(default_factory=dict, compare=False, repr=False)

    def _times_for(self, zone: str) -> list[bytes]:
        # Once per zone per prepared message: the join below is all a message pays.
        values = self._zones.get(zone)
        if values is None:
            values = self._zones[zone] = [
                _qp_value(htmllib.escape(when.fill(t, zone), quote=True)) for t in self.times]
        return values

    def bytes_for(self, subscriber: Subscriber, personal: Personal, *, now: datetime,
                  message_id: str | None = None) -> bytes:
        """The complete RFC 5322 message for one subscriber, CRLF line ends.

        A non-ASCII local part makes raw UTF-8 in To (RFC 6532): the send stage then
        uses SMTPUTF8. Every header line comes from ``digest.mail.headers``."""
        if message_id is None:
            message_id = (fields.trial_message_id(self.config, self.day, subscriber.email, now)
                          if self.test else fields.message_id(self.config, self.day,
                                                              subscriber.email))
        raw = (personal.name, personal.email, personal.unsubscribe_url, personal.view_url)
        values: list[bytes] = [_qp_value(v) for v in raw]
        values += [_qp_value(htmllib.escape(v, quote=True)) for v in raw]
        if self.times:
            values += self._times_for(personal.timezone)
        values += [  # header slots, indexed from the end: -4 .. -1
            headers.list_unsubscribe(personal.unsubscribe_url,
                                     personal.unsubscribe_mailto).encode("ascii"),
            headers.message_id(message_id).encode("ascii"),
            headers.date(now).encode("ascii"),
            headers.mailbox("To", subscriber.name, subscriber.email).encode("utf-8"),
        ]
        out = b"".join([values[p] if isinstance(p, int) else p for p in self.pieces])
        # The quoted-printable values (fields and times) are clean by construction;
        # the header lines depend on the subscriber's name, so they are checked.
        if self.clean and all(clean_piece(v) for v in values[-len(_PERSONAL_HEADERS):]):
            return CleanMessage(out)
        return out


@lru_cache(maxsize=1024)
def _qp_value(value: str) -> bytes:
    # The view URL and many URL prefixes repeat across a run; names mostly do not.
    return qp_line(value).encode("ascii")


def _merge(pieces: list[str | int]) -> tuple[bytes | int, ...]:
    """Adjacent static strings joined and encoded once: fewer pieces, faster joins."""
    out: list[bytes | int] = []
    for p in pieces:
        if isinstance(p, int):
            out.append(p)
        elif out and isinstance(out[-1], bytes):
            out[-1] += p.encode("utf-8")
        else:
            out.append(p.encode("utf-8"))
    return tuple(out)


def prepare(config: Config, rendered: Rendered, *, day: date, fmt: MailFormat,
            test: bool = False) -> PreparedMessage:
    """Build and encode one variant's message once, for :meth:`PreparedMessage.bytes_for`."""
    # The personal fields are slots, filled per subscriber by the same functions.
    probe = Subscriber(email="probe@example.org", name="Probe", format=fmt)
    block = headers.block(fields.header_values(
        config, rendered, probe, unsubscribe=("https://x.invalid/u", "u@x.invalid"),
        now=datetime(2000, 1, 1).astimezone(), message_id="<probe@x.invalid>", test=test))
    pieces: list[str | int] = [_HEADER_SLOT.get(name, text) for name, text in block]
    pieces.append(f"MIME-Version: 1.0{CRLF}")
    part_head = (f'Content-Type: text/{{}}; charset="utf-8"{CRLF}'
                 f"Content-Transfer-Encoding: quoted-printable{CRLF}")
    times: list[str] = []
    if fmt == "text":
        pieces += [part_head.format("plain"), CRLF, *_encode_part(rendered.text, 0, times)]
        return _prepared(config, rendered, day, fmt, test, pieces, times)
    # '=_' cannot occur in quoted-printable output, so no body line can match it.
    boundary = f"=_digest_{secrets.token_hex(12)}"
    pieces += [f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"{CRLF}',
               CRLF, f"--{boundary}{CRLF}", part_head.format("plain"), CRLF,
               *_encode_part(rendered.text, 0, times), f"{CRLF}--{boundary}{CRLF}",
               part_head.format("html"), CRLF,
               *_encode_part(rendered.html, _HTML_OFFSET, times),
               f"{CRLF}--{boundary}--{CRLF}"]
    return _prepared(config, rendered, day, fmt, test, pieces, times)


def _prepared(config: Config, rendered: Rendered, day: date, fmt: MailFormat, test: bool,
              pieces: list[str | int], times: list[str]) -> PreparedMessage:
    merged = _merge(pieces)
    clean = all(clean_piece(p) for p in merged if isinstance(p, bytes))
    return PreparedMessage(config, rendered, day, fmt, test, merged, clean, tuple(times))
