"""digest.send.deliver against a real aiosmtpd server and a real SQLite journal."""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from sqlalchemy import select

from digest.config import Config, from_dict
from digest.errors import DeliveryError
from digest.models import Delivery
from digest.send.deliver import Outgoing, check, deliver, deliver_sync, is_dead, smtp_password
from digest.store.facade import Store
from digest.store.schema import deliveries
from tests.peers import SmtpServer, _Handler, free_port

DAY = date(2025, 3, 14)
SENDER = "digest@example.org"
EMAILS = [f"reader{i:02d}@example.com" for i in range(20)]


# -- peers and helpers --------------------------------------------------------

@dataclass
class Handler(_Handler):
    """The shared test handler, plus: which sessions carried mail, and drop-on-DATA."""

    sessions: dict[int, Any] = field(default_factory=dict)  # id -> session (kept alive)
    drop: set[str] = field(default_factory=set)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.sessions[id(session)] = session
        hit = self.drop & set(envelope.rcpt_tos)
        if hit:
            self.drop -= hit
            server.transport.abort()  # the connection dies before the reply
            return "250 never seen by the client"
        return await super().handle_DATA(server, session, envelope)


@contextmanager
def smtp(**kwargs: Any) -> Iterator[tuple[SmtpServer, Handler]]:
    server = SmtpServer(**kwargs)
    handler = Handler()
    server.handler = server.controller.handler = handler
    with server:
        yield server, handler


def config(tmp_path: Path, port: int, **smtp: Any) -> Config:
    # retry_within_run=0: deferred rows wait for the next run unless a test says otherwise.
    values = {"host": "127.0.0.1", "port": port, "security": "none", "connections": 2,
              "timeout": 10, "retry_within_run": 0, **smtp}
    return from_dict({"newsletter": {"from": f"Daily Selection <{SENDER}>"}, "smtp": values},
                     tmp_path / "config.toml")


def build(email: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = f"Daily Selection <{SENDER}>"
    msg["To"] = email
    msg["Subject"] = "Today's selection"
    msg["Message-ID"] = make_msgid(domain="example.org")
    msg.set_content(f"Hello {email}\n.a line that needs dot-stuffing\n")
    return msg


def outgoing(emails: list[str] = EMAILS) -> list[Outgoing]:
    return [Outgoing(e, lambda e=e: build(e)) for e in emails]  # type: ignore[misc]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "digest.db")
    s.plan_deliveries(DAY, [(e, "v1") for e in EMAILS])
    yield s
    s.close()


def statuses(store: Store) -> dict[str, str]:
    return {d.email: d.status for d in store.deliveries(DAY)}


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    return "ca.pem"  # relative: resolved against the config's folder


# -- the main path --------------------------------------------------------------

async def test_sends_everyone_once_over_reused_connections(tmp_path: Path, store: Store) -> None:
    progress: list[Delivery] = []
    with smtp() as (server, handler):
        cfg = config(tmp_path, server.port)
        report = await deliver(cfg, store, DAY, outgoing(), on_progress=progress.append)

        assert (report.sent, report.failed, report.deferred, report.skipped) == (20, 0, 0, 0)
        assert report.total == 20 and report.failures == ()
        assert sorted(r.rcpt_tos[0] for r in server.received) == EMAILS
        assert {r.mail_from for r in server.received} == {SENDER}
        assert all(len(r.rcpt_tos) == 1 for r in server.received)
        assert len(handler.sessions) <= 2  # two pooled connections carried all 20

        rows = store.deliveries(DAY)
        assert {d.status for d in rows} == {"sent"}
        by_rcpt = {r.rcpt_tos[0]: r.message["Message-ID"] for r in server.received}
        assert all(d.message_id == by_rcpt[d.email] for d in rows)
        assert sorted(p.email for p in progress) == EMAILS
        assert {(p.status, p.attempts, p.variant) for p in progress} == {("sent", 1, "v1")}

        again = await deliver(cfg, store, DAY, outgoing())
        assert (again.sent, again.skipped) == (0, 20)
        assert len(server.received) == 20


async def test_reconnects_after_messages_per_connection(tmp_path: Path, store: Store) -> None:
    with smtp() as (server, handler):
        cfg = config(tmp_path, server.port, connections=1, messages_per_connection=3)
        report = await deliver(cfg, store, DAY, outgoing())
    assert report.sent == 20
    assert len(handler.sessions) == 7  # ceil(20 / 3)


def test_deliver_sync_and_message_id_added_when_missing(tmp_path: Path, store: Store) -> None:
    def bare(email: str) -> EmailMessage:
        msg = build(email)
        del msg["Message-ID"]
        return msg

    with smtp() as (server, _):
        report = deliver_sync(config(tmp_path, server.port), store, DAY,
                              [Outgoing(EMAILS[0], lambda: bare(EMAILS[0]))])
        (got,) = server.received
    assert report.sent == 1
    (row,) = [d for d in store.deliveries(DAY) if d.status == "sent"]
    assert row.message_id == got.message["Message-ID"]
    assert row.message_id and row.message_id.endswith("@example.org>")


# -- per-recipient replies ------------------------------------------------------

async def test_a_550_fails_that_recipient_only(tmp_path: Path, store: Store) -> None:
    bad = EMAILS[3]
    with smtp() as (server, handler):
        handler.reject[bad] = "550 5.1.1 No such user"
        report = await deliver(config(tmp_path, server.port), store, DAY, outgoing())
        assert len(server.received) == 19
    assert (report.sent, report.failed, report.deferred) == (19, 1, 0)
    assert report.failures == ((bad, "550 5.1.1 No such user"),)
    row = next(d for d in store.deliveries(DAY) if d.email == bad)
    assert (row.status, row.last_error) == ("failed", "550 5.1.1 No such user")
    assert set(statuses(store).values()) == {"sent", "failed"}


def next_attempt(store: Store, email: str) -> datetime | None:
    with store.begin() as conn:
        return conn.execute(select(deliveries.c.next_attempt).where(
            (deliveries.c.day == DAY.isoformat()) & (deliveries.c.email == email))).scalar_one()


async def test_a_451_defers_and_a_later_run_sends_it(tmp_path: Path, store: Store) -> None:
    slow = EMAILS[7]
    t0 = datetime(2025, 3, 14, 6, 0, tzinfo=UTC)
    with smtp() as (server, handler):
        cfg = config(tmp_path, server.port)
        handler.reject[slow] = "451 4.7.1 Greylisted, try again later"
        first = await deliver(cfg, store, DAY, outgoing(), now=lambda: t0)
        assert (first.sent, first.failed, first.deferred) == (19, 0, 1)
        row = next(d for d in store.deliveries(DAY) if d.email == slow)
        assert (row.status, row.last_error) == ("deferred", "451 4.7.1 Greylisted, try again later")
        due = next_attempt(store, slow)
        assert due is not None and due > t0

        del handler.reject[slow]
        early = await deliver(cfg, store, DAY, outgoing(), now=lambda: t0 + timedelta(seconds=1))
        assert (early.sent, early.skipped) == (0, 20)  # not due yet

        later = await deliver(cfg, store, DAY, outgoing(), now=lambda: due)
        assert (later.sent, later.skipped) == (1, 19)
        assert sorted(r.rcpt_tos[0] for r in server.received) == EMAILS
    assert set(statuses(store).values()) == {"sent"}


async def test_a_dropped_connection_defers_and_goes_on(tmp_path: Path, store: Store) -> None:
    lost = EMAILS[5]
    with smtp() as (server, handler):
        handler.drop.add(lost)
        report = await deliver(config(tmp_path, server.port, connections=1), store, DAY,
                               outgoing())
        assert len(server.received) == 19
        assert len(handler.sessions) == 2  # reconnected once
    assert (report.sent, report.deferred, report.failed) == (19, 1, 0)
    row = next(d for d in store.deliveries(DAY) if d.email == lost)
    assert row.status == "deferred" and "connection lost" in (row.last_error or "")


# -- TLS and AUTH ---------------------------------------------------------------

async def test_starttls_with_a_private_ca_and_verification_on(
        tmp_path: Path, store: Store, server_tls: ssl.SSLContext, ca_file: str) -> None:
    with smtp(tls_context=server_tls, require_starttls=True) as (server, _):
        cfg = config(tmp_path, server.port, security="starttls", ca_file=ca_file)
        report = await deliver(cfg, store, DAY, outgoing())
        assert report.sent == 20 and len(server.received) == 20
        line = await check(cfg, None)
    assert line.startswith(f"smtp 127.0.0.1:{server.port}: OK (TLSv1.")
    assert "no login" in line


async def test_a_wrong_ca_is_one_clear_error_and_nothing_fails(
        tmp_path: Path, store: Store, server_tls: ssl.SSLContext) -> None:
    trustme.CA().cert_pem.write_to_path(str(tmp_path / "other.pem"))
    with smtp(tls_context=server_tls, require_starttls=True) as (server, _):
        cfg = config(tmp_path, server.port, security="starttls", ca_file="other.pem")
        with pytest.raises(DeliveryError) as err:
            await deliver(cfg, store, DAY, outgoing())
        assert server.received == []
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(f"smtp 127.0.0.1:{server.port}: certificate verify failed")
    assert "smtp.ca_file" in text
    assert set(statuses(store).values()) == {"pending"}


async def test_implicit_tls(tmp_path: Path, store: Store, server_tls: ssl.SSLContext,
                            ca_file: str) -> None:
    handler = _Handler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(),
                            ssl_context=server_tls)
    controller.start()
    try:
        cfg = config(tmp_path, controller.port, security="tls", ca_file=ca_file)
        report = await deliver(cfg, store, DAY, outgoing(EMAILS[:3]))
    finally:
        controller.stop()
    assert report.sent == 3 and len(handler.received) == 3


async def test_auth_success_and_failure(tmp_path: Path, store: Store,
                                        server_tls: ssl.SSLContext, ca_file: str) -> None:
    with smtp(tls_context=server_tls, require_starttls=True, auth=("digest", "s3cret")) \
            as (server, _):
        cfg = config(tmp_path, server.port, security="starttls", ca_file=ca_file,
                     username="digest")

        with pytest.raises(DeliveryError, match="authentication failed for user 'digest'") \
                as err:
            await deliver(cfg, store, DAY, outgoing(), password="wrong")
        assert "SMTP_PASSWORD" in str(err.value)
        assert set(statuses(store).values()) == {"pending"}
        with pytest.raises(DeliveryError, match="authentication failed"):
            await check(cfg, "wrong")

        assert "logged in as 'digest'" in await check(cfg, "s3cret")
        report = await deliver(cfg, store, DAY, outgoing(), password="s3cret")
        assert report.sent == 20 and len(server.received) == 20


def test_smtp_password_comes_from_the_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert smtp_password(config(tmp_path, 25)) is None  # no username, no password needed
    cfg = config(tmp_path, 25, username="digest", password_env="DIGEST_SMTP_PW")
    with pytest.raises(DeliveryError, match=r"\$DIGEST_SMTP_PW is not set"):
        smtp_password(cfg)
    monkeypatch.setenv("DIGEST_SMTP_PW", "s3cret")
    assert smtp_password(cfg) == "s3cret"


async def test_connection_refused_is_one_clear_error(tmp_path: Path, store: Store) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError, match=rf"smtp 127\.0\.0\.1:{port}: connection refused "
                                            r"\(is the server running\? check smtp\.host/port\)"):
        await deliver(config(tmp_path, port, connections=4), store, DAY, outgoing())
    assert set(statuses(store).values()) == {"pending"}


async def test_a_refused_sender_stops_the_run(tmp_path: Path, store: Store) -> None:
    # An AUTH-required server refuses MAIL FROM with 530 when we did not log in:
    # that would fail every row alike, so it is a DeliveryError, not 20 failures.
    with smtp(auth=("digest", "s3cret")) as (server, _), \
            pytest.raises(DeliveryError, match=r"sender 'digest@example\.org' refused: 530"):
        await deliver(config(tmp_path, server.port), store, DAY, outgoing())
    assert set(statuses(store).values()) == {"pending"}


# -- two senders at once --------------------------------------------------------

def test_two_concurrent_senders_never_repeat_anyone(tmp_path: Path, store: Store) -> None:
    reports = []
    with smtp() as (server, _):
        cfg = config(tmp_path, server.port, connections=3)

        def run(name: str) -> None:
            own = Store.open(tmp_path / "digest.db")  # a separate engine, as another process
            try:
                reports.append(deliver_sync(cfg, own, DAY, outgoing(), worker=name))
            finally:
                own.close()

        threads = [threading.Thread(target=run, args=(f"w{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        got = sorted(r.rcpt_tos[0] for r in server.received)
    assert got == EMAILS  # each exactly once
    assert sum(r.sent for r in reports) == 20
    assert sum(r.skipped for r in reports) == 20
    assert set(statuses(store).values()) == {"sent"}


async def test_two_concurrent_delivers_in_one_loop(tmp_path: Path, store: Store) -> None:
    other = Store.open(tmp_path / "digest.db")
    try:
        with smtp() as (server, _):
            cfg = config(tmp_path, server.port)
            a, b = await asyncio.gather(deliver(cfg, store, DAY, outgoing(), worker="a"),
                                        deliver(cfg, other, DAY, outgoing(), worker="b"))
            assert sorted(r.rcpt_tos[0] for r in server.received) == EMAILS
    finally:
        other.close()
    assert a.sent + b.sent == 20 and a.skipped + b.skipped == 20


def test_send_progress_counts_sent_deferred_failed_and_rate() -> None:
    from digest.console import SendProgress

    bar = SendProgress(4, enabled=False)
    for email, status, attempts in [("a@x.org", "sent", 1), ("b@x.org", "deferred", 1),
                                    ("c@x.org", "failed", 1), ("b@x.org", "sent", 2)]:
        bar.advance(Delivery(day=DAY, email=email, status=status, attempts=attempts))
    assert (bar.sent, len(bar.deferred), bar.failed) == (2, 0, 1)
    bar.advance(Delivery(day=DAY, email="d@x.org", status="deferred"))
    assert bar.line().startswith("sending: 2 sent, 1 deferred, 1 failed, ")
    assert bar.line().endswith("/s")


def test_journal_counts_and_orphans(tmp_path: Path, store: Store) -> None:
    # Rows held by a sender process that is gone come back due at once.
    assert store.claim_many(DAY, EMAILS[:3], f"{socket.gethostname()}:999999999:x") != {}
    assert store.claim_many(DAY, EMAILS[3:5], f"{socket.gethostname()}:{os.getpid()}:y")
    assert store.delivery_counts(DAY) == {"pending": 15, "sending": 5, "sent": 0, "failed": 0,
                                          "deferred": 0}
    assert store.release_orphans(DAY, is_dead) == 3  # pid 999999999 does not exist
    counts = store.delivery_counts(DAY)
    assert (counts["sending"], counts["deferred"]) == (2, 3)
    again = store.claim_many(DAY, EMAILS[:5], "next")
    # Claims are not attempts: the orphans were never seen through an SMTP transaction.
    assert sorted(again) == EMAILS[:3] and {a for a, _ in again.values()} == {0}
