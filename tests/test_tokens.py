"""Unsubscribe tokens: unforgeable, bound to one address and one list, rotatable."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest import pipeline
from digest.mail import tokens
from digest.mail.message import make_token, read_token
from digest.mail.tokens import Keyring, Retired
from tests.peers import FeedServer, free_port

if TYPE_CHECKING:
    from digest.config import Config
    from digest.store.facade import Store

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
    assert Keyring("new", (Retired("s3cret", TODAY),)).verify(legacy, LIST, TODAY) is None


def _undated(secret: str) -> date:
    raise AssertionError(f"{secret} carries its retirement day")


def test_rotation_keeps_old_links_for_the_grace_period() -> None:
    old_token = tokens.make("old-secret", "ada@example.org", LIST, TODAY)
    ring = Keyring("new-secret", tokens.retired_from_env(f"old-secret@{TODAY}", _undated),
                   grace_days=30)
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
    seen = {"a": TODAY - timedelta(days=1), "b@c": TODAY - timedelta(days=2)}
    ring = Keyring("new", tokens.retired_from_env(f"a,b@c,old@{retired_on.isoformat()}",
                                                  seen.__getitem__), grace_days=60)
    assert [(r.secret, r.retired_on) for r in ring.retired] == [
        ("a", seen["a"]), ("b@c", seen["b@c"]), ("old", retired_on)]
    before = tokens.make("old", "ada@example.org", LIST, retired_on - timedelta(days=5))
    on_the_day = tokens.make("old", "ada@example.org", LIST, retired_on)
    after = tokens.make("old", "ada@example.org", LIST, retired_on + timedelta(days=1))
    assert ring.verify(before, LIST, retired_on + timedelta(days=59)) == "ada@example.org"
    assert ring.verify(before, LIST, retired_on + timedelta(days=61)) is None
    # That morning's digest may have gone out before the rotation.
    assert ring.verify(on_the_day, LIST, retired_on + timedelta(days=60)) == "ada@example.org"
    # Signed after the secret was retired: it cannot be one we sent.
    assert ring.verify(after, LIST, retired_on + timedelta(days=2)) is None


FORGED_FOR = "victim@example.org"


def test_a_leaked_retired_secret_cannot_mint_lasting_links() -> None:
    """The attacker has an old secret and picks the issue day the token claims."""
    retired_on = TODAY
    ring = Keyring("new", (Retired("leaked", retired_on),), grace_days=90)

    def forged(issued: date) -> str:
        return tokens.make("leaked", FORGED_FOR, LIST, issued)

    for today in (retired_on, retired_on + timedelta(days=30), retired_on + timedelta(days=400)):
        # Claiming to be issued today (or any day after the retirement): refused.
        assert ring.verify(forged(today + timedelta(days=1)), LIST, today) is None
        if today > retired_on:
            assert ring.verify(forged(today), LIST, today) is None
    # Claiming a day before the retirement works only until the grace runs out.
    assert ring.verify(forged(retired_on - timedelta(days=1)), LIST,
                       retired_on + timedelta(days=90)) == FORGED_FOR
    for claimed in (retired_on - timedelta(days=1), retired_on - timedelta(days=500)):
        assert ring.verify(forged(claimed), LIST, retired_on + timedelta(days=91)) is None


def _project(tmp_path: Path, grace_days: int = 90) -> tuple[Config, Store]:
    from digest.config import from_dict
    from digest.store.facade import Store

    config = from_dict({"newsletter": {"secret_grace_days": grace_days}},
                       tmp_path / "config.toml")
    return config, Store.open(tmp_path / "var" / "digest.db")


def test_keyring_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = _project(tmp_path, grace_days=7)
    try:
        store.secret()  # signed before DIGEST_SECRET was set
        monkeypatch.setenv("DIGEST_SECRET", "current")
        monkeypatch.setenv("DIGEST_SECRET_OLD", f"older, oldest@{TODAY - timedelta(days=3)}")
        ring = tokens.keyring(config, store, TODAY)
        assert ring.current == "current" and ring.grace_days == 7
        # The per-database secret signed before DIGEST_SECRET was set: kept as retired.
        # Undated secrets are retired from the day digest first saw them retired.
        assert [(r.secret, r.retired_on) for r in ring.retired] == [
            ("older", TODAY), ("oldest", TODAY - timedelta(days=3)), (store.secret(), TODAY)]
        later = tokens.keyring(config, store, TODAY + timedelta(days=5))
        assert later.retired == ring.retired  # the first sighting is what counts
        monkeypatch.delenv("DIGEST_SECRET")
        assert tokens.keyring(config, store).current == store.secret()
    finally:
        store.close()


def test_a_fresh_install_with_the_variable_set_retires_no_database_secret(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = _project(tmp_path)
    try:
        monkeypatch.delenv("DIGEST_SECRET_OLD", raising=False)
        assert tokens.keyring(config, store, TODAY).retired == ()
        assert store.stored_secret() is None  # none made just to be retired
    finally:
        store.close()


def _as_the_previous_release_left_it(tmp_path: Path) -> str:
    """A database from before retirement days: the secret in meta, no record of when it
    stopped signing. Returns that secret."""
    _config, store = _project(tmp_path)
    try:
        secret = store.secret()
        with store.begin() as conn:
            conn.exec_driver_sql("DROP TABLE retired_secrets")
    finally:
        store.close()
    return secret


def test_migration_dates_the_database_secret_the_day_digest_first_sees_it_retired(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _as_the_previous_release_left_it(tmp_path)
    sent = tokens.make(old, "ada@example.org", LIST, TODAY - timedelta(days=20))  # in a mailbox
    upgrade = TODAY
    monkeypatch.setenv("DIGEST_SECRET", "new-secret")
    config, store = _project(tmp_path)  # the new release opens it
    try:
        # The first send after the upgrade signs with the variable and dates the old one
        # (pipeline.signing_secret is this, on today's clock).
        assert tokens.signing_secret(config, store, upgrade) == "new-secret"
        ring = tokens.keyring(config, store, upgrade + timedelta(days=10))
    finally:
        store.close()
    assert ring.retired == (Retired(old, upgrade),)
    assert ring.verify(sent, LIST, upgrade + timedelta(days=90)) == "ada@example.org"
    assert ring.verify(sent, LIST, upgrade + timedelta(days=91)) is None
    forged = tokens.make(old, "victim@example.org", LIST, upgrade + timedelta(days=1))
    assert ring.verify(forged, LIST, upgrade + timedelta(days=2)) is None


def test_the_keyring_records_retirement_with_an_injected_clock(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    old = _as_the_previous_release_left_it(tmp_path)
    monkeypatch.setenv("DIGEST_SECRET", "new-secret")
    monkeypatch.setenv("DIGEST_SECRET_OLD", "env-old")
    config, store = _project(tmp_path)
    try:
        first = tokens.keyring(config, store, TODAY)  # `digest serve` starts on TODAY
        sent = tokens.make(old, "ada@example.org", LIST, TODAY - timedelta(days=1))
        forged = tokens.make("env-old", FORGED_FOR, LIST, TODAY + timedelta(days=3))
        assert first.verify(sent, LIST, TODAY + timedelta(days=90)) == "ada@example.org"
        later = tokens.keyring(config, store, TODAY + timedelta(days=91))  # a restart
        assert later.verify(sent, LIST, TODAY + timedelta(days=91)) is None
        assert later.verify(forged, LIST, TODAY + timedelta(days=4)) is None
        # Back to the database secret, then away from it again: the grace starts anew.
        monkeypatch.delenv("DIGEST_SECRET")
        assert pipeline.signing_secret(config, store) == old
        monkeypatch.setenv("DIGEST_SECRET", "newer-secret")
        again = tokens.keyring(config, store, TODAY + timedelta(days=200))
        assert Retired(old, TODAY + timedelta(days=200)) in again.retired
    finally:
        store.close()


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        tokens.make("", "ada@example.org", LIST)
    assert Keyring("").verify(tokens.make("x", "a@b.c", LIST), LIST) is None


def test_serve_refuses_a_link_forged_with_the_retired_database_secret(
        tmp_path: Path, feed_server: FeedServer) -> None:
    """Over real HTTP: the database secret signed until ten days ago, when DIGEST_SECRET
    was set (the test environment sets it). A link it signed before then still
    unsubscribes; one claiming to be issued today was forged with the old secret."""
    from digest import config as configuration
    from digest.store.facade import Store
    from tests.test_e2e import make_project
    from tests.test_serve import Server, base_port

    path = make_project(tmp_path, feed_server, free_port())
    path.write_text(path.read_text().replace(
        'base_url = "http://127.0.0.1:8025"', f'base_url = "http://127.0.0.1:{free_port()}"'))
    config = configuration.load(path)
    today = tokens._today()
    store = Store.open(config.db_path)
    try:
        old = store.secret()
        assert store.retired_on(old, today - timedelta(days=10)) == today - timedelta(days=10)
    finally:
        store.close()
    list_id = config.newsletter.list_id
    sent = tokens.make(old, "ada@example.org", list_id, today - timedelta(days=11))
    forged = tokens.make(old, "ada@example.org", list_id, today)

    with Server(config, base_port(config)), httpx.Client(timeout=10) as http:
        base = f"{config.newsletter.base_url}/unsubscribe"
        assert http.get(f"{base}/{forged}").status_code == 400
        refused = http.post(f"{base}/{forged}", content=b"List-Unsubscribe=One-Click")
        assert refused.status_code == 400 and "Link not valid" in refused.text
        page = http.get(f"{base}/{sent}")
        assert page.status_code == 200 and "ada@example.org" in page.text


# -- the edges mutation testing found unguarded (make mutate) ---------------------

def _token(payload: str, secret: str = "s") -> str:
    """A token around any payload, signed as make() would sign it."""
    return f"{tokens._b64(payload.encode())}.{tokens._b64(tokens._mac(secret, payload, LIST))}"


def test_base64_keeps_a_trailing_x() -> None:
    assert tokens._b64(b"\x00\x00\x17") == "AAAX"  # only padding is stripped, not 'X'
    assert tokens._unb64("AAAX") == b"\x00\x00\x17"


@pytest.mark.parametrize("text", ["", "QUJD!", "QUJD+", "QU/D", "QUJDé", "QU JD"])
def test_only_url_safe_base64_decodes(text: str) -> None:
    # b64decode would quietly drop the stray characters and decode the rest.
    with pytest.raises(ValueError, match=r"^not URL-safe base64$"):
        tokens._unb64(text)


def test_an_empty_secret_signs_nothing() -> None:
    with pytest.raises(ValueError, match=r"^empty signing secret$"):
        tokens.make("", "ada@example.org", LIST)
    with pytest.raises(ValueError, match=r"^empty signing secret$"):
        Keyring(current="").make("ada@example.org", LIST)


def test_issue_day_field_is_at_most_six_digits() -> None:
    six = tokens.parse(_token("ada@example.org\x00999999"))
    assert six is not None and six.issued == date(2020, 1, 1) + timedelta(days=999999)
    assert tokens.parse(_token("ada@example.org\x001000000")) is None
    assert tokens.parse(_token("ada@example.org\x00-12")) is None
    assert tokens.parse(_token("ada@example.org\x00١٢")) is None  # Arabic-Indic digits


def test_a_token_without_an_address_is_garbled() -> None:
    assert tokens.parse(_token("\x002522")) is None
    assert tokens.parse(_token("")) is None
    assert tokens.read("s", _token("\x002522"), LIST) is None


def test_keyring_make_keeps_the_issue_day() -> None:
    ring = Keyring(current="s")
    parsed = tokens.parse(ring.make("ada@example.org", LIST, TODAY))
    assert parsed is not None and parsed.issued == TODAY


def test_split_entry_takes_the_last_at() -> None:
    assert tokens.split_entry(" se@cret@2026-01-02 ") == ("se@cret", date(2026, 1, 2))
    assert tokens.split_entry("@2026-01-02") == ("@2026-01-02", None)  # no secret before it
    assert tokens.split_entry("secret@tuesday") == ("secret@tuesday", None)


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Pacific/Pago_Pago"])
def test_today_is_the_utc_day_whatever_the_local_zone(zone: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import time
    from datetime import UTC, datetime

    # +14 h and -11 h: at any hour one of the two is on another date than UTC.
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        assert tokens._today() == datetime.now(UTC).date()
    finally:
        monkeypatch.undo()
        time.tzset()
