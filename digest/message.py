"""Rendered + Subscriber -> EmailMessage: MIME structure, list headers, signed tokens.

Unsubscribe tokens carry the address and an HMAC, so the unsubscribe endpoint needs
no lookup table and a guessed or edited link is rejected. DKIM signing belongs to
the send stage, which sees the final bytes.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, SMTPUTF8, Policy
from email.utils import format_datetime, parseaddr
from functools import lru_cache

import idna

from digest import tokens
from digest.config import Config
from digest.mime import PreparedMessage, prepare  # the fast path, re-exported
from digest.models import Personal, Rendered, Subscriber
from digest.render import STRINGS, one_line, personalise

__all__ = ["PreparedMessage", "build_message", "personal_for", "prepare"]


def make_token(secret: str, email: str, list_id: str) -> str:
    """URL-safe signed token for the unsubscribe link (see digest.tokens)."""
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


def address(name: str, email: str) -> Address:
    """An Address with an IDNA (punycode) domain; the email package encodes the name."""
    local, _, domain = email.strip().rpartition("@")
    if domain and not domain.isascii():
        domain = idna.encode(domain, uts46=True).decode("ascii")
    return Address(display_name=one_line(name), username=local, domain=domain)


def _list_id(config: Config) -> str:
    name = one_line(config.newsletter.name)
    if name.isascii():
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{config.newsletter.list_id}>'
    # A quoted string cannot hold encoded words; an unquoted phrase can, so drop the
    # specials and let the email package encode the non-ASCII words.
    phrase = "".join(c for c in name if c not in '()<>@,;:\\".[]')
    return f"{one_line(phrase)} <{config.newsletter.list_id}>"


class _VerbatimHeader(str):
    """A header the email package must not refold.

    It folds a long unstructured value by turning URLs into RFC 2047 encoded words,
    which breaks List-Unsubscribe; this value is ASCII and folded here, between URIs.
    """

    name: str
    parts: tuple[str, ...]

    def __new__(cls, name: str, parts: tuple[str, ...]) -> _VerbatimHeader:
        self = super().__new__(cls, ", ".join(parts))
        self.name = name
        self.parts = parts
        return self

    def fold(self, *, policy: Policy) -> str:
        sep = "," + policy.linesep + " "
        return f"{self.name}: {sep.join(self.parts)}{policy.linesep}"


def _list_unsubscribe(personal: Personal) -> _VerbatimHeader:
    for value in (personal.unsubscribe_url, personal.unsubscribe_mailto):
        if not value.isascii() or any(c in value for c in "\r\n<> "):
            raise ValueError(f"unsafe List-Unsubscribe target: {value!r}")
    return _VerbatimHeader("List-Unsubscribe", (
        f"<{personal.unsubscribe_url}>",
        f"<mailto:{personal.unsubscribe_mailto}?subject=unsubscribe>",
    ))  # fmt: skip


def build_message(config: Config, rendered: Rendered, subscriber: Subscriber, personal: Personal,
                  *, day: date, now: datetime, test: bool = False) -> EmailMessage:
    """The complete message for one subscriber (CRLF line ends, ready for SMTP + DKIM)."""
    nl = config.newsletter
    html, text = personalise(rendered, personal)
    to = address(subscriber.name, subscriber.email)
    # A non-ASCII local part exists only under SMTPUTF8 (RFC 6531): raw UTF-8 headers,
    # and the send stage must use SMTPUTF8 for that message. IDNA covers the domain.
    msg = EmailMessage(policy=SMTP if to.username.isascii() else SMTPUTF8)
    from_name, from_email = parseaddr(nl.from_address)
    msg["From"] = address(from_name, from_email)
    msg["To"] = to
    if nl.reply_to:
        reply_name, reply_email = parseaddr(nl.reply_to)
        msg["Reply-To"] = address(reply_name, reply_email)
    # The subject comes from feed text: one_line removes every CR/LF, so nothing in a
    # headline can start a header of its own.
    msg["Subject"] = ("[TEST] " if test else "") + one_line(rendered.subject)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = (trial_message_id(config, day, subscriber.email, now) if test
                         else message_id(config, day, subscriber.email))
    msg["List-Id"] = _list_id(config)
    msg["List-Unsubscribe"] = _list_unsubscribe(personal)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    # Quoted-printable keeps mostly-ASCII text readable and costs ~7% (base64: 33%).
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if subscriber.format == "html":
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if "MIME-Version" not in msg:
        msg["MIME-Version"] = "1.0"
    return msg
