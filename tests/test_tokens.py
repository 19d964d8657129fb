"""Unsubscribe tokens: unforgeable, bound to one address and one list, rotatable."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import tokens
from digest.message import make_token, read_token
from digest.tokens import Keyring, Retired

LIST = "daily.example.org"
TODAY = date(2026, 11, 27)

# Addresses as they reach make(): normalised, but any Unicode local part and domain.
local = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="@\0"),
                min_size=1, max_size=30)
domain = st.from_regex(r"[a-z0-9ü]{1,12}\.[a-z]{2,6}", fullmatch=True)
addresses = st.builds(lambda lp, d: f"{lp}@{d}", local, domain)
secrets = st.text(min_size=8, max_size=40)
FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(addresses, secrets, st.dates(min_value=date(2020, 1, 1), max_value=date(2100, 1, 1)))
def test_round_trip_and_url_safe(email: str, secret: str, issued: date) -> None:
    token = tokens.make(secret, email, LIST, issued)
    assert all(c.isascii() and (c.isalnum() or c in "-_.") for c in token)
    parsed = tokens.parse(token)
    assert parsed is not None and parsed.issued == issued
    assert tokens.read(secret, token, LIST) == email


@FAST
@given(addresses, addresses, secrets)
def test_a_token_cannot_move_to_another_address(a: str, b: str, secret: str) -> None:
    """Splicing b's payload onto a's MAC (or the reverse) never verifies as anyone."""
    if a == b:
        return
    ta, tb = tokens.make(secret, a, LIST, TODAY), tokens.make(secret, b, LIST, TODAY)
    pa, ma = ta.split(".")
    pb, mb = tb.split(".")
    assert tokens.read(secret, f"{pb}.{ma}", LIST) is None
    assert tokens.read(secret, f"{pa}.{mb}", LIST) is None
    assert tokens.read(secret, ta, LIST) == a != tokens.read(secret, tb, LIST)


@FAST
@given(addresses, secrets, secrets, st.text(min_size=1, max_size=20))
def test_other_secrets_and_lists_are_rejected(email: str, secret: str, other: str,
                                              other_list: str) -> None:
    token = tokens.make(secret, email, LIST, TODAY)
    if other != secret:
        assert tokens.read(other, token, LIST) is None
    if other_list != LIST:
        assert tokens.read(secret, token, other_list) is None


@FAST
@given(addresses, secrets, st.data())
def test_any_change_to_a_token_is_rejected(email: str, secret: str, data: st.DataObject) -> None:
    token = tokens.make(secret, email, LIST, TODAY)
    i = data.draw(st.integers(0, len(token) - 1))
    c = data.draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                  "0123456789-_."))
    mutated = token[:i] + c + token[i + 1:]
    if mutated == token:
        return
    got = tokens.read(secret, mutated, LIST)
    # base64's last character may carry unused bits: an edit there can decode to the
    # same bytes. It must then still be the same address, never another one.
    assert got is None or got == email


@FAST
@given(addresses, secrets, st.text(max_size=60))
def test_forged_tokens_without_the_secret_fail(email: str, secret: str, junk: str) -> None:
    """An attacker who knows the format and the address but not the secret gets nowhere."""
    forged = tokens.make(secret + "x", email, LIST, TODAY)
    assert tokens.read(secret, forged, LIST) is None
    assert tokens.read(secret, junk, LIST) is None
    assert tokens.read(secret, f"{junk}.{junk}", LIST) is None


def test_message_wrappers_delegate() -> None:
    token = make_token("s3cret", "zoe@example.net", LIST)
    assert read_token("s3cret", token, LIST) == "zoe@example.net"
    assert tokens.read("s3cret", token, LIST) == "zoe@example.net"


def test_tokens_from_before_issue_days_still_verify_with_the_current_secret() -> None:
    # The foundation's format: base64(email) with the MAC over the bare address.
    import base64
    import hashlib
    import hmac

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    mac = hmac.new(b"s3cret", f"unsubscribe\0{LIST}\0ada@example.org".encode(),
                   hashlib.sha256).digest()[:16]
    legacy = f"{b64(b'ada@example.org')}.{b64(mac)}"
    assert Keyring("s3cret").verify(legacy, LIST) == "ada@example.org"
    assert Keyring("new", (Retired("s3cret"),)).verify(legacy, LIST, TODAY) is None


def test_rotation_keeps_old_links_for_the_grace_period() -> None:
    old_token = tokens.make("old-secret", "ada@example.org", LIST, TODAY)
    ring = Keyring("new-secret", tokens.retired_from_env("old-secret"), grace_days=30)
    assert ring.verify(old_token, LIST, TODAY + timedelta(days=30)) == "ada@example.org"
    assert ring.verify(old_token, LIST, TODAY + timedelta(days=31)) is None
    # The new secret signs, and its tokens do not expire.
    new_token = ring.make("ada@example.org", LIST, TODAY)
    assert tokens.read("new-secret", new_token, LIST) == "ada@example.org"
    assert ring.verify(new_token, LIST, TODAY + timedelta(days=3650)) == "ada@example.org"
    # A token only the old secret signed, moved to another address, still fails.
    payload = tokens.make("old-secret", "eve@example.org", LIST, TODAY).split(".")[0]
    assert ring.verify(f"{payload}.{old_token.split('.')[1]}", LIST, TODAY) is None


def test_retirement_date_bounds_what_an_old_secret_vouches_for() -> None:
    retired_on = TODAY
    ring = Keyring("new", tokens.retired_from_env(f"a,b@c,old@{retired_on.isoformat()}"),
                   grace_days=60)
    assert [r.secret for r in ring.retired] == ["a", "b@c", "old"]
    before = tokens.make("old", "ada@example.org", LIST, retired_on - timedelta(days=5))
    after = tokens.make("old", "ada@example.org", LIST, retired_on + timedelta(days=1))
    assert ring.verify(before, LIST, retired_on + timedelta(days=59)) == "ada@example.org"
    assert ring.verify(before, LIST, retired_on + timedelta(days=61)) is None
    # Signed after the secret was retired: it cannot be one we sent.
    assert ring.verify(after, LIST, retired_on + timedelta(days=2)) is None


def test_keyring_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:


    from digest.config import from_dict
    from digest.store import Store

    root = tmp_path
    config = from_dict({"newsletter": {"secret_grace_days": 7}}, root / "config.toml")
    store = Store.open(root / "var" / "digest.db")
    try:
        monkeypatch.setenv("DIGEST_SECRET", "current")
        monkeypatch.setenv("DIGEST_SECRET_OLD", "older, oldest")
        ring = tokens.keyring(config, store)
        assert ring.current == "current" and ring.grace_days == 7
        # The per-database secret signed before DIGEST_SECRET was set: kept as retired.
        assert [r.secret for r in ring.retired] == ["older", "oldest", store.secret()]
        monkeypatch.delenv("DIGEST_SECRET")
        assert tokens.keyring(config, store).current == store.secret()
    finally:
        store.close()


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        tokens.make("", "ada@example.org", LIST)
    assert Keyring("").verify(tokens.make("x", "a@b.c", LIST), LIST) is None
