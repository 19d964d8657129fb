"""DKIM: our signature verifies with dkimpy against the published key, breaks once a
signed header (List-Unsubscribe) is altered, and survives the trip through SMTP."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.config import Config, from_dict
from digest.errors import ConfigError
from digest.mail import dkim
from digest.mail.message import message_bytes, personal_for, prepare
from digest.models import Rendered, Subscriber
from digest.send.deliver import Outgoing, check, deliver
from digest.store.facade import Store
from tests.peers import SmtpServer

DAY = date(2025, 3, 14)
NOW = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
RENDERED = Rendered(
    variant="all", subject="Today: harbour reopens  \u2014 and more", preheader="The day",
    mjml="", html="<html><body><p>Hello {{name}}</p>" + "<p>A story.</p>\n" * 200
    + "<p>  spaced   out\t</p></body></html>",
    text="Hello {{name}}\n\n" + "A story, told at length.\n" * 200 + ".dot line\n",
)


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_config(tmp_path: Path, key: bytes, port: int = 25) -> Config:
    (tmp_path / "dkim.pem").write_bytes(key)
    return from_dict({
        "newsletter": {"from": "Daily Selection <digest@example.org>",
                       "base_url": "https://news.example.org"},
        "dkim": {"selector": "mail2025", "private_key_file": "dkim.pem"},
        "smtp": {"host": "127.0.0.1", "port": port, "security": "none"},
    }, tmp_path / "config.toml")


def dns_for(signer: dkim.Signer) -> object:
    record = signer.public_record().encode()

    def dnsfunc(name: bytes | str, timeout: int = 5) -> bytes:
        wanted = f"{signer.selector}._domainkey.{signer.domain}."
        name = name.decode() if isinstance(name, bytes) else name
        return record if name.rstrip(".") == wanted.rstrip(".") else b""
    return dnsfunc


def digest_bytes(config: Config, email: str = "zoe@example.net", name: str = "Zoë") -> bytes:
    person = Subscriber(email=email, name=name)
    personal = personal_for(config, "secret", person, DAY)
    return prepare(config, RENDERED, day=DAY, fmt="html").bytes_for(person, personal, now=NOW)


def test_signature_verifies_and_breaks_when_list_unsubscribe_changes(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    config = make_config(tmp_path, pem(rsa_key))
    signer = dkim.load(config)
    assert signer is not None and signer.domain == "example.org"
    signed = signer.sign(digest_bytes(config))
    dns = dns_for(signer)

    assert dkimpy.verify(signed, dnsfunc=dns)
    header = signed.split(b"\r\n\r\n", 1)[0].decode()
    assert "a=rsa-sha256; c=relaxed/relaxed; d=example.org; s=mail2025;" in header
    h = header.split(" h=", 1)[1].split(";", 1)[0].lower().split(":")
    for name in ("from", "to", "subject", "date", "message-id", "list-id", "list-unsubscribe",
                 "list-unsubscribe-post"):
        assert name in h

    # The one-click URL is what an attacker would swap: the signature must catch it.
    start = signed.index(b"List-Unsubscribe: <https://news.example.org/unsubscribe/") + 60
    tampered = signed[:start] + bytes([signed[start] ^ 1]) + signed[start + 1:]
    assert not dkimpy.verify(tampered, dnsfunc=dns)
    assert not dkimpy.verify(signed.replace(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                                            b"List-Unsubscribe-Post: List-Unsubscribe=Two-Click"),
                             dnsfunc=dns)
    body_changed = signed.replace(b"A story, told at length.", b"A story, told at lenGth.", 1)
    assert not dkimpy.verify(body_changed, dnsfunc=dns)
    # Relaxed canonicalisation: refolding a header in transit does not break it.
    assert dkimpy.verify(signed.replace(b"List-Unsubscribe-Post: ", b"List-Unsubscribe-Post:  "),
                         dnsfunc=dns)


def test_the_email_package_path_and_whitespace_bodies_verify(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    config = make_config(tmp_path, pem(rsa_key))
    signer = dkim.load(config)
    assert signer is not None
    person = Subscriber(email="ada@example.com", name="Ada")
    msg = message_bytes(config, RENDERED, person, personal_for(config, "s", person, DAY),
                        day=DAY, now=NOW)
    assert dkimpy.verify(signer.sign(msg), dnsfunc=dns_for(signer))
    raw = (b"From: a@example.org\r\nTo: b@example.com\r\nSubject:  spaced \r\n\tout\r\n\r\n"
           b"trailing  \r\n\ttabs\tand  runs \r\n\r\n\r\n")
    assert dkimpy.verify(signer.sign(raw), dnsfunc=dns_for(signer))
    assert dkimpy.verify(signer.sign(b"From: a@example.org\r\nTo: b@example.com\r\n\r\n"),
                         dnsfunc=dns_for(signer))


def test_ed25519_signature_verifies(tmp_path: Path) -> None:
    pytest.importorskip("nacl")  # dkimpy verifies ed25519 through PyNaCl
    config = make_config(tmp_path, pem(ed25519.Ed25519PrivateKey.generate()))
    signer = dkim.load(config)
    assert signer is not None and signer.algorithm == "ed25519-sha256"
    signed = signer.sign(digest_bytes(config))
    assert dkimpy.verify(signed, dnsfunc=dns_for(signer))
    assert not dkimpy.verify(signed.replace(b"List-Unsubscribe: <https",
                                            b"List-Unsubscribe: <http"), dnsfunc=dns_for(signer))


async def test_messages_sent_over_smtp_arrive_signed(tmp_path: Path,
                                                      rsa_key: rsa.RSAPrivateKey) -> None:
    with SmtpServer() as server:
        config = make_config(tmp_path, pem(rsa_key), port=server.port)
        signer = dkim.load(config)
        assert signer is not None
        store = Store.open(tmp_path / "digest.db")
        people = [f"r{i}@example.com" for i in range(6)]
        store.plan_deliveries(DAY, [(e, "all") for e in people])
        outgoing = [Outgoing(e, lambda e=e: digest_bytes(config, e, "Reader"))  # type: ignore[misc]
                    for e in people]
        report = await deliver(config, store, DAY, outgoing)
        store.close()
        line = await check(config, None)
        assert line.endswith("; DKIM rsa-sha256 as mail2025._domainkey.example.org")
        assert report.sent == 6
        for got in server.received:
            assert got.data.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
            assert dkimpy.verify(got.data, dnsfunc=dns_for(signer))


def test_key_problems_are_one_line_config_errors(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config = make_config(tmp_path, b"not a key")
    with pytest.raises(ConfigError, match=r"dkim\.private_key_file .*not an unencrypted PEM"):
        dkim.load(config)
    (tmp_path / "dkim.pem").unlink()
    with pytest.raises(ConfigError, match=r"dkim\.private_key_file .*cannot read"):
        dkim.load(config)
    env_only = from_dict({"dkim": {"selector": "s1"}}, tmp_path / "config.toml")
    with pytest.raises(ConfigError, match=r"\$DKIM_PRIVATE_KEY unset"):
        dkim.load(env_only)
    monkeypatch.setenv("DKIM_PRIVATE_KEY",
                       pem(ed25519.Ed25519PrivateKey.generate()).decode())
    signer = dkim.load(env_only)
    assert signer is not None and signer.selector == "s1"
    assert dkim.load(from_dict({}, tmp_path / "config.toml")) is None  # no selector, no DKIM


def test_relaxed_body_canonicalisation_matches_dkimpy() -> None:
    # The fast bytes.replace passes against dkimpy's regex reference, on random bodies
    # full of the awkward cases: tab/space runs, blank lines, stray CR and LF.
    import random

    from digest.mail.dkim import _relaxed_body

    rng = random.Random(8058)
    for _ in range(3000):
        lines = ["".join(rng.choice(["a", " ", "\t", "b", "  ", "\r", "\n"])
                         for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(0, 6))]
        tail = rng.choice(["", "\r\n", "\r\n\r\n", " ", "\r\n \r\n", "\t\r\n"])
        body = ("\r\n".join(lines) + tail).encode()
        assert _relaxed_body(body) == dkimpy.RelaxedCanonicalization.canonicalize_body(body)


def test_clean_messages_skip_canonicalisation_and_agree_with_dkimpy(tmp_path: Path) -> None:
    from digest.mail.clean import CleanMessage
    from digest.mail.dkim import _relaxed_body

    config = make_config(tmp_path, b"")
    raw = digest_bytes(config)  # RENDERED has runs of blanks and a tab: all QP-escaped now
    assert isinstance(raw, CleanMessage)
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert _relaxed_body(body, clean=True) == \
        dkimpy.RelaxedCanonicalization.canonicalize_body(body)


def _signing_processes() -> list[int]:
    """Pids of this process's digest.mail.dkim_worker children."""
    import os

    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        if ppid == os.getpid() and b"digest.mail.dkim_worker" in cmdline:
            found.append(int(entry.name))
    return found


async def test_a_signing_process_that_dies_leaves_the_rest_pending(
        tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> None:
    import os
    import signal

    from digest.errors import DeliveryError

    with SmtpServer() as server:
        config = make_config(tmp_path, pem(rsa_key), port=server.port)
        store = Store.open(tmp_path / "digest.db")
        people = [f"r{i}@example.com" for i in range(40)]
        store.plan_deliveries(DAY, [(e, "all") for e in people])
        outgoing = [Outgoing(e, lambda e=e: digest_bytes(config, e, "Reader"))  # type: ignore[misc]
                    for e in people]
        killed: list[int] = []

        def kill_the_signer(delivery: object) -> None:
            if not killed:
                killed.extend(_signing_processes())
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)

        with pytest.raises(DeliveryError, match="DKIM signing process stopped"):
            await deliver(config, store, DAY, outgoing, on_progress=kill_the_signer)
        assert len(killed) == 1
        counts = store.delivery_counts(DAY)
        assert counts.get("failed", 0) == 0 and counts.get("sending", 0) == 0
        first = len(server.received)
        assert 1 <= first < len(people) and counts["sent"] == first
        report = await deliver(config, store, DAY, outgoing)  # a new signer; the rest go
        store.close()
        assert report.sent == len(people) - first
        assert sorted(m.rcpt_tos[0] for m in server.received) == sorted(people)
        assert not _signing_processes()  # none left behind
