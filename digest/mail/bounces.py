"""Reading bounces and complaints: the bytes of one message in, the ``Bounce``es it
reports out. Pure: no store, no clock but the one passed in.

Three shapes are read, in this order:

- RFC 3464 delivery status notifications (multipart/report; report-type=
  delivery-status): what Postfix, Gmail, Outlook/Exchange and most MTAs send.
  ``Action: failed`` with a 5.x.x status is hard, a 4.x.x status or ``delayed`` soft.
- RFC 5965 ARF feedback reports (report-type=feedback-report): a complaint, whatever
  the Feedback-Type says (abuse, fraud, ...: each means "stop mailing me").
- Anything else goes to flufl.bounce's detectors (Exim's and Yahoo's plain-text
  bounces, qmail, ...), whose permanent failures are hard and temporary ones soft.

A message that is none of these (an auto-reply, a person writing back) gives nothing.
"""

from __future__ import annotations

import email
import logging
import re
from datetime import UTC, datetime
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime

from digest.models import Bounce, BounceKind

# A report naming more recipients than this is cut: no mailing of ours ever goes out
# as one message to many, so a report with thousands is forged or broken, and reading
# them all would let one message cost unbounded work.
MAX_RECIPIENTS = 50
# The size of message read; a real DSN is a few KB plus the returned original.
MAX_BYTES = 2_000_000
_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
_ADDRESS = re.compile(r"^[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+$")


def parse(data: bytes, *, now: datetime | None = None) -> tuple[Bounce, ...]:
    """The bounces and complaints one message reports; () for any other message."""
    try:
        msg = email.message_from_bytes(data[:MAX_BYTES])
    except Exception:
        return ()
    arrived = _date(msg, now)
    reporter = _addr(str(msg.get("From", "")))
    if msg.get_content_type() == "multipart/report":
        kind = str(msg.get_param("report-type", "", header="content-type")).lower()
        if kind == "delivery-status":
            return _dsn(msg, reporter, arrived)
        if kind == "feedback-report":
            return _arf(msg, reporter, arrived)
    return _other(msg, reporter, arrived)


def _dsn(msg: Message, reporter: str, arrived: datetime | None) -> tuple[Bounce, ...]:
    out: list[Bounce] = []
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        blocks = [b for b in payload if isinstance(b, Message)] if isinstance(payload, list) else []
        if not blocks:
            continue
        mta = _after_semicolon(str(blocks[0].get("Reporting-MTA", ""))) or reporter
        for block in blocks[1:]:
            bounce = _recipient(block, mta, arrived)
            if bounce is not None and bounce.address not in {b.address for b in out}:
                out.append(bounce)
            if len(out) >= MAX_RECIPIENTS:
                return tuple(out)
    return tuple(out)


def _recipient(block: Message, mta: str, arrived: datetime | None) -> Bounce | None:
    # Original-Recipient is the address we wrote to; Final-Recipient may be where a
    # forward took it, which is no address of ours.
    address = _address(_after_semicolon(str(block.get("Original-Recipient", ""))))
    address = address or _address(_after_semicolon(str(block.get("Final-Recipient", ""))))
    action = str(block.get("Action", "")).strip().lower()
    if not address or action not in ("failed", "delayed"):
        return None  # delivered, relayed, expanded: no failure
    found = _STATUS.search(str(block.get("Status", "")))
    status = found.group(0) if found else ""
    diagnostic = _one_line(_after_semicolon(str(block.get("Diagnostic-Code", ""))))
    if not status:  # some MTAs give the code only in the diagnostic
        found = _STATUS.search(diagnostic)
        status = found.group(0) if found else ""
    kind: BounceKind = "hard" if action == "failed" and not status.startswith("4") else "soft"
    return Bounce(address, kind, status, diagnostic, mta, arrived)


def _arf(msg: Message, reporter: str, arrived: datetime | None) -> tuple[Bounce, ...]:
    fields: Message | None = None
    original: Message | None = None
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report" and fields is None:
            fields = _fields(part)
        elif ctype in ("message/rfc822", "text/rfc822-headers") and original is None:
            original = _fields(part)
    if fields is None:
        return ()
    feedback = _one_line(str(fields.get("Feedback-Type", ""))).lower() or "abuse"
    agent = _one_line(str(fields.get("User-Agent", ""))) or reporter
    rcpts = [_address(str(v)) for v in fields.get_all("Original-Rcpt-To", [])]
    if not any(rcpts) and original is not None:
        # Many providers redact Original-Rcpt-To; the returned message's To is ours.
        rcpts = [_address(str(v)) for v in original.get_all("To", [])]
    seen = list(dict.fromkeys(a for a in rcpts if a))[:MAX_RECIPIENTS]
    return tuple(Bounce(a, "complaint", "", feedback, agent, arrived) for a in seen)


def _other(msg: Message, reporter: str, arrived: datetime | None) -> tuple[Bounce, ...]:
    from flufl.bounce import all_failures

    # flufl.bounce catches a detector that trips on odd input and logs it with a
    # traceback; for us that only means "not this format", no error of digest's.
    logging.getLogger("flufl.bounce").setLevel(logging.CRITICAL)
    try:
        temporary, permanent = all_failures(msg)
    except Exception:
        return ()
    out: list[Bounce] = []
    found: list[tuple[bytes, BounceKind]] = [(r, "hard") for r in sorted(permanent)]
    found += [(r, "soft") for r in sorted(temporary)]
    for raw, kind in found:
        address = _address(raw.decode("utf-8", "replace"))
        if address and address not in {b.address for b in out}:
            out.append(Bounce(address, kind, "", "flufl.bounce: " + _subject(msg),
                              reporter, arrived))
        if len(out) >= MAX_RECIPIENTS:
            break
    return tuple(out)


def _fields(part: Message) -> Message:
    """The header block inside a message/* or text/rfc822-headers part."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True) or b""
    return email.message_from_bytes(text if isinstance(text, bytes) else b"")


def _address(text: str) -> str:
    """A plausible lower-cased address out of a field, or ""."""
    _, addr = parseaddr(text.strip().strip("<>"))
    addr = addr.strip().lower()
    return addr if len(addr) <= 254 and _ADDRESS.match(addr) else ""


def _addr(text: str) -> str:
    return parseaddr(text)[1].lower()


def _after_semicolon(value: str) -> str:
    """``rfc822; ada@example.org`` -> ``ada@example.org`` (the address type dropped)."""
    return value.split(";", 1)[1].strip() if ";" in value else value.strip()


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(text.split())[:limit]


def _subject(msg: Message) -> str:
    return _one_line(str(msg.get("Subject", "")), 120)


def _date(msg: Message, now: datetime | None) -> datetime | None:
    try:
        when = parsedate_to_datetime(str(msg.get("Date", "")))
    except (TypeError, ValueError, IndexError):
        return now
    if when.tzinfo is None:
        return now
    when = when.astimezone(UTC)
    # A date from the future is a forged or broken clock: the arrival time is ours.
    return now if now is not None and when > now else when
