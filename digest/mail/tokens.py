"""Signed unsubscribe tokens, and the keyring that checks them across secret rotations.

A token is ``<payload>.<mac>``, both URL-safe base64 without padding. The payload is
the address and the day the token was issued; the MAC is HMAC-SHA256 over the list id
and the payload, so the endpoint needs no lookup table, and a guessed, edited or
moved token (another address, another list) is rejected.

Rotation: the current secret signs; retired secrets still verify the tokens they
signed, for ``newsletter.secret_grace_days`` after they were retired, so links in
digests already sent keep working after a rotation and stop working on their own
afterwards. Retired secrets are ``<secret_env>_OLD`` (comma separated, each optionally
``SECRET@YYYY-MM-DD`` with the day it was retired) and, once ``<secret_env>`` is set,
the random per-database secret that signed before it. Every retired secret has a
retirement day: the one written after ``@``, else the day digest first saw it retired
(kept in the database). A retired secret vouches only for tokens that claim an issue
day up to its retirement day and only until the grace has run out, so whoever learns
an old secret cannot mint links that stay valid. A secret that leaked should be
dropped, not retired: within the grace a retired secret can still sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.config import Config
    from digest.store.facade import Store

# 128 bits of HMAC-SHA256 (RFC 2104 allows truncation to half the output): forging
# stays out of reach and the unsubscribe URL stays short enough for a text line.
MAC_BYTES = 16
# Issue days are counted from here: four digits for decades, keeping the URL short.
_EPOCH = date(2020, 1, 1)
DEFAULT_GRACE_DAYS = 90


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    if not text or not all(c.isascii() and (c.isalnum() or c in "-_") for c in text):
        raise ValueError("not URL-safe base64")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, payload: str, list_id: str) -> bytes:
    # The list id is part of the MAC so one list's token cannot unsubscribe from another.
    msg = f"unsubscribe\0{list_id}\0{payload}".encode()
    return hmac.new(secret.encode(), msg, hashlib.sha256).digest()[:MAC_BYTES]


def _today() -> date:
    return datetime.now(UTC).date()


def make(secret: str, email: str, list_id: str, issued: date | None = None) -> str:
    """URL-safe token for ``email`` on ``list_id``, issued today unless given."""
    if not secret:
        raise ValueError("empty signing secret")
    days = ((issued or _today()) - _EPOCH).days
    payload = f"{email}\0{days}"
    return f"{_b64(payload.encode())}.{_b64(_mac(secret, payload, list_id))}"


@dataclass(frozen=True)
class Parsed:
    email: str
    issued: date | None  # None: a token from before issue days were recorded
    payload: str
    mac: bytes


def parse(token: str) -> Parsed | None:
    """Split a token into its parts without checking it; None if it is garbled."""
    head, dot, tail = token.strip().rpartition(".")
    if not dot or not head or not tail or "." in head:
        return None
    try:
        payload = _unb64(head).decode("utf-8")
        mac = _unb64(tail)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if len(mac) != MAC_BYTES:
        return None
    email, nul, days = payload.partition("\0")
    issued: date | None = None
    if nul:
        if not days.isascii() or not days.isdigit() or len(days) > 6:
            return None
        issued = _EPOCH + timedelta(days=int(days))
    if not email or "\0" in email:
        return None
    return Parsed(email=email, issued=issued, payload=payload, mac=mac)


def _signed_by(parsed: Parsed, secret: str, list_id: str) -> bool:
    return bool(secret) and hmac.compare_digest(parsed.mac, _mac(secret, parsed.payload, list_id))


def read(secret: str, token: str, list_id: str) -> str | None:
    """The email a token was made for with ``secret``, or None if forged or garbled."""
    parsed = parse(token)
    if parsed is None or not _signed_by(parsed, secret, list_id):
        return None
    return parsed.email


@dataclass(frozen=True)
class Retired:
    """A secret that no longer signs but still verifies the tokens it signed."""

    secret: str
    retired_on: date  # the day it stopped signing

    def accepts(self, issued: date | None, today: date, grace: timedelta) -> bool:
        if issued is None:
            return False  # age unknown: only the current secret vouches for it
        # Issued after the retirement day: not one we sent, a forgery. The retirement
        # day itself still counts: that morning's digest may have gone out before the
        # rotation, and refusing it would gain nothing, since whoever holds the old
        # secret can claim any earlier day. What bounds a leaked secret is the grace.
        return issued <= self.retired_on and today <= self.retired_on + grace


def split_entry(entry: str) -> tuple[str, date | None]:
    """``SECRET`` or ``SECRET@YYYY-MM-DD`` from ``<secret_env>_OLD``: (secret, day or None)."""
    secret, at, day = entry.strip().rpartition("@")
    if at and secret:
        try:
            return secret, date.fromisoformat(day)
        except ValueError:
            pass  # an '@' inside the secret itself
    return entry.strip(), None


@dataclass(frozen=True)
class Keyring:
    """The current secret plus retired ones, with how long retired ones stay valid."""

    current: str
    retired: tuple[Retired, ...] = ()
    grace_days: int = DEFAULT_GRACE_DAYS

    def make(self, email: str, list_id: str, issued: date | None = None) -> str:
        return make(self.current, email, list_id, issued)

    def verify(self, token: str, list_id: str, today: date | None = None) -> str | None:
        """The token's address if a current or still-valid retired secret signed it."""
        parsed = parse(token)
        if parsed is None:
            return None
        if _signed_by(parsed, self.current, list_id):
            return parsed.email
        today = today or _today()
        grace = timedelta(days=self.grace_days)
        for old in self.retired:
            if _signed_by(parsed, old.secret, list_id) and old.accepts(parsed.issued, today,
                                                                        grace):
                return parsed.email
        return None


def retired_from_env(value: str | None, first_seen: Callable[[str], date]) -> tuple[Retired, ...]:
    """The ``<secret_env>_OLD`` secrets; ``first_seen(secret)`` dates one written without
    a day (the store keeps the day it was first seen retired)."""
    entries = [split_entry(e) for e in (value or "").split(",") if e.strip()]
    return tuple(Retired(secret, day or first_seen(secret)) for secret, day in entries)


def signing_secret(config: Config, store: Store, today: date | None = None) -> str:
    """The secret that signs today: ``<secret_env>``, else the per-database one.

    Also keeps the record of which secret stopped signing when: the database secret
    is retired (today, unless recorded before) once the variable is set, and the secret
    that signs now is never on record as retired, so retiring it again later starts
    its grace from then.
    """
    today = today or _today()
    current = os.environ.get(config.newsletter.secret_env) or ""
    if current:
        stored = store.stored_secret()
        if stored is not None and stored != current:
            store.retired_on(stored, today)
    else:
        current = store.secret()
    store.unretire(current)
    return current


def keyring(config: Config, store: Store, today: date | None = None) -> Keyring:
    """The keyring `digest serve` checks tokens with, from the environment.

    Without the secret variable the random per-database secret signs (as in
    signing_secret). With it, that database secret is kept as a retired one, so
    links sent before the variable was set keep working for the grace period.
    """
    today = today or _today()
    nl = config.newsletter
    current = signing_secret(config, store, today)
    retired = retired_from_env(os.environ.get(f"{nl.secret_env}_OLD"),
                               lambda secret: store.retired_on(secret, today))
    stored = store.stored_secret()
    if stored is not None and stored != current:
        retired += (Retired(stored, store.retired_on(stored, today)),)
    return Keyring(current=current, retired=retired, grace_days=nl.secret_grace_days)


__all__ = ["Keyring", "Parsed", "Retired", "keyring", "make", "parse", "read",
           "retired_from_env", "signing_secret", "split_entry"]
