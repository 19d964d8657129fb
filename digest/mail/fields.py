"""What goes in a message's header block besides the body's own fields: the
Message-IDs and the values of From, To, Subject and the list fields
(digest.mail.headers encodes them)."""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from email.utils import parseaddr
from functools import lru_cache

from digest.config import Config
from digest.mail import headers
from digest.models import Rendered, Subscriber


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
