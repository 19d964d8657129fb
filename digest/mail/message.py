"""Rendered + Subscriber -> message bytes: what goes in the headers, signed tokens.

Unsubscribe tokens carry the address and an HMAC, so the unsubscribe endpoint needs
no lookup table and a guessed or edited link is rejected. DKIM signing belongs to
the send stage, which sees the final bytes.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from email.utils import parseaddr
from functools import lru_cache

from digest.config import Config
from digest.mail import headers, tokens
from digest.mail.mime import PreparedMessage, prepare  # the fast path, re-exported
from digest.models import Personal, Rendered, Subscriber
from digest.render.variant import STRINGS, one_line

__all__ = ["PreparedMessage", "message_bytes", "personal_for", "prepare"]


def make_token(secret: str, email: str, list_id: str) -> str:
    """URL-safe signed token for the unsubscribe link (see digest.mail.tokens)."""
    return tokens.make(secret, email, list_id)


def read_token(secret: str, token: str, list_id: str) -> str | None:
    """The email a token was made for, or None if it is forged, truncated or garbled."""
    return tokens.read(secret, token, list_id)


def from_domain(config: Config) -> str:
    return _domain_of(config.newsletter.from_address)


@lru_cache(maxsize=32)
def _domain_of(from_address: str) -> str:
    # Cached: parseaddr costs ~20 us and Message-IDs are made once per recipient.
    return parseaddr(from_address)[1].rpartition("@")[2].lower()


def message_id(config: Config, day: date, email: str) -> str:
    """Stable per (list, day, address): a rerun after a crash reuses it, so receivers
    and the journal can recognise a duplicate. Hashed so it does not reveal the address."""
    key = f"{config.newsletter.list_id}\0{day.isoformat()}\0{email.strip().lower()}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    return f"<{day:%Y%m%d}.{digest}@{from_domain(config)}>"


def trial_message_id(config: Config, day: date, email: str, now: datetime) -> str:
    # Gmail drops a second message with a Message-ID it has seen: each test send and
    # the real one later that day must differ.
    stable = message_id(config, day, email)
    return stable.replace("@", f".test{int(now.timestamp() * 1000)}@", 1)


def personal_for(config: Config, secret: str, subscriber: Subscriber, day: date) -> Personal:
    nl = config.newsletter
    token = make_token(secret, subscriber.email, nl.list_id)
    return Personal(
        email=subscriber.email,
        # "Hello there," reads better than "Hello ," for subscribers without a name.
        name=one_line(subscriber.name) or STRINGS[nl.language]["reader"],
        unsubscribe_url=f"{nl.base_url}/unsubscribe/{token}",
        unsubscribe_mailto=nl.unsubscribe_mailto or f"unsubscribe@{from_domain(config)}",
        view_url=f"{nl.base_url}/view/{day.isoformat()}",
    )


def header_values(config: Config, rendered: Rendered, subscriber: Subscriber, *,
                  unsubscribe: tuple[str, str], now: datetime, message_id: str,
                  test: bool = False) -> headers.Headers:
    """What goes in one message's header block (``digest.mail.headers`` encodes it)."""
    nl = config.newsletter
    from_name, from_email = parseaddr(nl.from_address)
    reply_to = None
    if nl.reply_to:
        reply_name, reply_email = parseaddr(nl.reply_to)
        reply_to = headers.Mailbox(reply_name, reply_email)
    return headers.Headers(
        sender=headers.Mailbox(from_name, from_email),
        to=headers.Mailbox(subscriber.name, subscriber.email),
        reply_to=reply_to,
        subject=("[TEST] " if test else "") + rendered.subject,
        date=now, message_id=message_id,
        list_name=nl.name, list_id=nl.list_id, unsubscribe=unsubscribe)


def message_bytes(config: Config, rendered: Rendered, subscriber: Subscriber, personal: Personal,
                  *, day: date, now: datetime, test: bool = False,
                  message_id: str | None = None) -> bytes:
    """The complete message for one subscriber (CRLF line ends, ready for SMTP + DKIM).

    The same bytes the bulk send makes (one variant prepared, this subscriber
    spliced in), for single messages: test sends, ``render --out``, the preview."""
    prepared = prepare(config, rendered, day=day, fmt=subscriber.format, test=test)
    return prepared.bytes_for(subscriber, personal, now=now, message_id=message_id)
