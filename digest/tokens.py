"""Signed unsubscribe tokens, and the keyring that checks them across secret rotations.

A token is ``<payload>.<mac>``, both URL-safe base64 without padding. The payload is
the address and the day the token was issued; the MAC is HMAC-SHA256 over the list id
and the payload, so the endpoint needs no lookup table, and a guessed, edited or
moved token (another address, another list) is rejected.

Rotation: the current secret signs; retired secrets (``<secret_env>_OLD``, comma
separated, each optionally ``SECRET@YYYY-MM-DD`` with the day it was retired) still
verify tokens for ``newsletter.secret_grace_days``, so links in digests already sent
keep working after a rotation and stop working on their own afterwards. A secret that
leaked should be dropped, not retired: a retired secret can still sign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from digest.config import Config
    from digest.store import Store

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
    """A secret that no longer signs but still verifies recent tokens."""

    secret: str
    retired_on: date | None = None

    @classmethod
    def from_entry(cls, entry: str) -> Retired:
        secret, at, day = entry.strip().rpartition("@")
        if at and secret:
            try:
                return cls(secret, date.fromisoformat(day))
            except ValueError:
                pass  # an '@' inside the secret itself
        return cls(entry.strip())

    def accepts(self, issued: date | None, today: date, grace: timedelta) -> bool:
        if issued is None:
            return False  # age unknown: only the current secret vouches for it
        if self.retired_on is not None:
            # A token signed after retirement cannot be genuine.
            return issued <= self.retired_on and today <= self.retired_on + grace
        return today - issued <= grace


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


def retired_from_env(value: str | None) -> tuple[Retired, ...]:
    return tuple(Retired.from_entry(e) for e in (value or "").split(",") if e.strip())


def keyring(config: Config, store: Store) -> Keyring:
    """The keyring `digest serve` checks tokens with, from the environment.

    Without the secret variable the random per-database secret signs (as in
    pipeline.signing_secret). With it, that database secret is kept as a retired
    one, so links sent before the variable was set keep working for the grace period.
    """
    nl = config.newsletter
    grace = nl.secret_grace_days
    retired = retired_from_env(os.environ.get(f"{nl.secret_env}_OLD"))
    current = os.environ.get(nl.secret_env) or ""
    if current:
        retired += (Retired(store.secret()),)
    else:
        current = store.secret()
    return Keyring(current=current, retired=retired, grace_days=grace)


__all__ = ["Keyring", "Parsed", "Retired", "keyring", "make", "parse", "read",
           "retired_from_env"]
