"""Rendered + Subscriber -> message bytes: what goes in the headers, signed tokens.

Unsubscribe tokens carry the address and an HMAC, so the unsubscribe endpoint needs
no lookup table and a guessed or edited link is rejected. DKIM signing belongs to
the send stage, which sees the final bytes.
"""

from __future__ import annotations

from datetime import date, datetime

from digest.config import Config
from digest.mail import tokens
from digest.mail.fields import from_domain, message_id, trial_message_id
from digest.mail.mime import PreparedMessage, prepare  # the fast path, re-exported
from digest.models import Personal, Rendered, Subscriber
from digest.render.variant import STRINGS, one_line

__all__ = ["PreparedMessage", "from_domain", "message_bytes", "message_id", "personal_for",
           "prepare", "trial_message_id"]


def make_token(secret: str, email: str, list_id: str) -> str:
    """URL-safe signed token for the unsubscribe link (see digest.mail.tokens)."""
    return tokens.make(secret, email, list_id)


def read_token(secret: str, token: str, list_id: str) -> str | None:
    """The email a token was made for, or None if it is forged, truncated or garbled."""
    return tokens.read(secret, token, list_id)


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
        timezone=subscriber.timezone or config.schedule.timezone,
    )


def message_bytes(config: Config, rendered: Rendered, subscriber: Subscriber, personal: Personal,
                  *, day: date, now: datetime, test: bool = False,
                  message_id: str | None = None) -> bytes:
    """The complete message for one subscriber (CRLF line ends, ready for SMTP + DKIM).

    The same bytes the bulk send makes (one variant prepared, this subscriber
    spliced in), for single messages: test sends, ``render --out``, the preview."""
    prepared = prepare(config, rendered, day=day, fmt=subscriber.format, test=test)
    return prepared.bytes_for(subscriber, personal, now=now, message_id=message_id)
