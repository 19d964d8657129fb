"""The sender against a misbehaving server: aiosmtpd with STARTTLS and AUTH whose
handler answers at random with 421, 451, 454 and 550, hangs up during DATA before
replying, and replies slowly. Every deliverable subscriber must get exactly one
copy, permanent failures must be recorded with the reply, and temporary ones
retried until they go through.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trustme

from digest.send.deliver import Outgoing, deliver
from digest.send.pool import open_session, settings, transact
from digest.store.facade import Store
from tests.peers import SmtpServer, _Handler
from tests.test_send import DAY, SENDER, config

PEOPLE = [f"reader{i:03d}@example.com" for i in range(200)]


@dataclass
class FaultyHandler(_Handler):
    """Random temporary trouble; permanent 550 for a fixed set of addresses."""

    rng: random.Random = field(default_factory=lambda: random.Random(6))
    unknown: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)
    p: float = 0.08  # chance of each kind of temporary fault at each step

    def _roll(self, kind: str) -> bool:
        if self.rng.random() < self.p:
            self.faults[kind] += 1
            return True
        return False

    async def _slow(self) -> None:
        if self._roll("slow"):
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))

    async def handle_MAIL(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:
        await self._slow()
        if self._roll("421"):
            server.transport.close()  # 421: the server closes the connection
            return "421 4.7.0 Too many connections, slow down"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        await self._slow()
        if address in self.unknown:
            return "550 5.1.1 No such user here"
        if self._roll("454"):
            return "454 4.7.1 Throttled: try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await self._slow()
        if self._roll("drop"):
            server.transport.abort()  # gone during DATA: the message was never accepted
            return "250 never seen by the client"
        if self._roll("451"):
            return "451 4.3.0 Local problem, try again"
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture(params=[True, False], ids=["pipelining", "one-command-at-a-time"])
def faulty(request: pytest.FixtureRequest,
           server_tls: ssl.SSLContext) -> Iterator[tuple[SmtpServer, FaultyHandler]]:
    server = SmtpServer(tls_context=server_tls, require_starttls=True, auth=("digest", "pw"))
    handler = FaultyHandler(unknown={PEOPLE[7], PEOPLE[42], PEOPLE[199]},
                            pipelining=request.param)
    server.handler = server.controller.handler = handler
    with server:
        yield server, handler


def message(email: str) -> bytes:
    return (f"From: Daily Selection <{SENDER}>\r\nTo: {email}\r\nSubject: Today\r\n"
            f"Message-ID: <{email.replace('@', '.')}@example.org>\r\n\r\n"
            f"Hello {email}\r\n.a line that needs dot-stuffing\r\n..and two\r\n").encode()


async def test_every_deliverable_subscriber_gets_exactly_one_copy(
        tmp_path: Path, ca: trustme.CA, faulty: tuple[SmtpServer, FaultyHandler]) -> None:
    server, handler = faulty
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    store = Store.open(tmp_path / "digest.db")
    store.plan_deliveries(DAY, [(e, "all") for e in PEOPLE])
    cfg = config(tmp_path, server.port, security="starttls", ca_file="ca.pem",
                 username="digest", connections=4, messages_per_connection=9,
                 retry_first=0.01, retry_within_run=120)
    outgoing = [Outgoing(e, lambda e=e: message(e)) for e in PEOPLE]  # type: ignore[misc]

    report = await deliver(cfg, store, DAY, outgoing, password="pw")

    copies = Counter(r.rcpt_tos[0] for r in server.received)
    deliverable = set(PEOPLE) - handler.unknown
    assert set(copies) == deliverable and set(copies.values()) == {1}  # one copy each
    assert (report.sent, report.failed, report.deferred) == (197, 3, 0)
    rows = {d.email: d for d in store.deliveries(DAY)}
    for bad in handler.unknown:
        assert (rows[bad].status, rows[bad].last_error) == ("failed", "550 5.1.1 No such user here")
    assert sorted(e for e, _ in report.failures) == sorted(handler.unknown)
    assert {rows[e].status for e in deliverable} == {"sent"}
    # Every kind of fault happened, and the temporary ones were retried to success.
    assert {"421", "454", "451", "drop", "slow"} <= set(handler.faults)
    assert sum(rows[e].attempts > 1 for e in deliverable) >= 10
    got = next(r for r in server.received if r.rcpt_tos == [PEOPLE[0]])
    assert got.data.endswith(b"\r\n.a line that needs dot-stuffing\r\n..and two\r\n")
    store.close()


async def test_deferred_rows_past_the_run_window_wait_for_the_next_run(
        tmp_path: Path, ca: trustme.CA, faulty: tuple[SmtpServer, FaultyHandler]) -> None:
    server, handler = faulty
    handler.p = 0.3
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    store = Store.open(tmp_path / "digest.db")
    people = PEOPLE[:40]
    store.plan_deliveries(DAY, [(e, "all") for e in people])
    cfg = config(tmp_path, server.port, security="starttls", ca_file="ca.pem",
                 username="digest", retry_first=0.01, retry_within_run=0)
    outgoing = [Outgoing(e, lambda e=e: message(e)) for e in people]  # type: ignore[misc]
    first = await deliver(cfg, store, DAY, outgoing, password="pw")
    assert first.deferred > 0 and first.sent + first.failed + first.deferred == 40
    assert {d.status for d in store.deliveries(DAY)} <= {"sent", "failed", "deferred"}

    handler.p = 0.0
    # The next run, an hour on (an injected clock, not a wait): every retry is due.
    second = await deliver(cfg, store, DAY, outgoing, password="pw",
                           now=lambda: datetime.now(UTC) + timedelta(hours=1))
    # Every deferred row ends now. An unknown reader whose first try met a fault
    # before RCPT (a 421 at MAIL) learns of its 550 only in this run.
    assert second.sent + second.failed == first.deferred and second.deferred == 0
    assert second.failed <= len(handler.unknown & set(people))
    copies = Counter(r.rcpt_tos[0] for r in server.received)
    assert set(copies.values()) == {1} and set(copies) == set(people) - handler.unknown
    store.close()


async def test_a_partly_refused_recipient_list(tmp_path: Path, ca: trustme.CA,
                                               faulty: tuple[SmtpServer, FaultyHandler]) -> None:
    server, handler = faulty
    handler.p = 0.0
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    cfg = config(tmp_path, server.port, security="starttls", ca_file="ca.pem",
                 username="digest")
    session = await open_session(await settings(cfg, "pw"))
    try:
        rcpts = [PEOPLE[0], PEOPLE[7], PEOPLE[1]]  # PEOPLE[7] is unknown: 550
        outcome = await transact(session, SENDER, rcpts, message(PEOPLE[0]) + b".\r\n", 10)
        assert outcome.reply is not None and outcome.reply.code == 250
        assert {k: v.code for k, v in outcome.refused.items()} == {PEOPLE[7]: 550}
        # All refused: no DATA, the session is reset and usable for the next message.
        outcome = await transact(session, SENDER, [PEOPLE[7]], b"x\r\n.\r\n", 10)
        assert outcome.reply is None and set(outcome.refused) == {PEOPLE[7]}
        outcome = await transact(session, SENDER, [PEOPLE[2]], message(PEOPLE[2]) + b".\r\n", 10)
        assert outcome.reply is not None and outcome.reply.code == 250
    finally:
        session.close()
    assert [r.rcpt_tos for r in server.received] == [[PEOPLE[0], PEOPLE[1]], [PEOPLE[2]]]
