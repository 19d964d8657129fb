"""The journaled run (digest/send/run.py): the backoff ladder, what a deferred or
failed row tells progress and the log, and how outcomes reach the journal. Real
aiosmtpd, a real SQLite file, an injected clock. Written from the mutants
`make mutate GROUPS=send` left alive."""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from digest.errors import DeliveryError
from digest.models import Delivery
from digest.send.deliver import deliver
from digest.send.run import BACKOFF_MAX, backoff
from digest.store.facade import Store
from tests.peers import SmtpServer, _Handler
from tests.test_send import DAY, config, outgoing, smtp
from tests.test_send_lease import PEOPLE, T0, ManualClock, journal, rows

__all__ = ["journal"]  # the fixture, imported for its name


def test_the_backoff_doubles_from_the_first_wait_up_to_six_hours() -> None:
    s = timedelta(seconds=1)
    assert [backoff(60, n) for n in (0, 1, 2, 3, 4)] == [60 * s, 60 * s, 120 * s, 240 * s,
                                                        480 * s]
    assert backoff(60, 9) == 256 * 60 * s  # 4 h 16 min: still under the cap
    assert backoff(60, 10) == BACKOFF_MAX == timedelta(hours=6)
    assert backoff(60, 60) == BACKOFF_MAX  # no overflow, no negative
    assert backoff(4 * 3600, 2) == BACKOFF_MAX


async def test_deferred_and_failed_rows_tell_progress_the_log_and_the_report(
        tmp_path: Path, journal: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = ManualClock(T0)
    store = Store.open(journal)
    seen: list[Delivery] = []
    slow, gone = PEOPLE[1], PEOPLE[2]
    try:
        with smtp() as (server, handler), caplog.at_level(logging.WARNING, "digest.send"):
            handler.reject[slow] = "451 4.7.1 Greylisted"
            handler.reject[gone] = "550 5.1.1 No such user"
            cfg = config(tmp_path, server.port, connections=1, retry_first=300)
            report = await deliver(cfg, store, DAY, outgoing(PEOPLE[:4]), clock=clock,
                                   on_progress=seen.append)
    finally:
        store.close()
    assert (report.sent, report.failed, report.deferred, report.skipped, report.total) == \
        (2, 1, 1, 0, 4)
    assert report.failures == ((gone, "550 5.1.1 No such user"),)
    by = {d.email: d for d in seen}
    assert by[slow] == Delivery(day=DAY, email=slow, status="deferred", variant="all",
                                attempts=1, message_id=None,
                                last_error="451 4.7.1 Greylisted", updated=T0)
    assert by[gone] == Delivery(day=DAY, email=gone, status="failed", variant="all",
                                attempts=1, message_id=None,
                                last_error="550 5.1.1 No such user", updated=T0)
    assert by[PEOPLE[0]].status == "sent" and by[PEOPLE[0]].message_id
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"{slow}: deferred until 2025-03-14 07:05:00 UTC: 451 4.7.1 Greylisted" in warnings
    assert f"{gone}: failed: 550 5.1.1 No such user" in warnings
    got = rows(journal)
    assert (got[slow].status, got[slow].attempts, got[gone].status) == ("deferred", 1, "failed")


async def test_a_retried_row_counts_once_and_grows_its_backoff(
        tmp_path: Path, journal: Path) -> None:
    """Two 451s then a 250 within one run: the second wait is twice the first, the
    row ends sent with three attempts, and the report counts it once, not deferred."""
    clock = ManualClock(T0)
    store = Store.open(journal)
    slow = PEOPLE[0]
    tries: list[Delivery] = []

    def seen(d: Delivery) -> None:
        tries.append(d)
        if d.status == "deferred" and len(tries) == 2:
            handler.reject.pop(slow)  # the third try goes through

    try:
        with smtp() as (server, handler):
            handler.reject[slow] = "451 4.7.1 Greylisted"
            cfg = config(tmp_path, server.port, connections=1, retry_first=100,
                         retry_within_run=3600)
            task = asyncio.create_task(deliver(cfg, store, DAY, outgoing(PEOPLE[:1]),
                                               clock=clock, on_progress=seen))
            for wait in (100, 200):  # the run sleeps on the clock until the retry is due
                await clock.until(lambda w=wait: any(s == w for _, s, _ in clock.sleepers)
                                  or task.done())
                assert not task.done()
                clock.advance(wait)
            report = await task
            assert len(server.received) == 1
    finally:
        store.close()
    assert [(d.status, d.attempts, d.updated - T0) for d in tries] == [
        ("deferred", 1, timedelta(0)), ("deferred", 2, timedelta(seconds=100)),
        ("sent", 3, timedelta(seconds=300))]
    assert (report.sent, report.deferred, report.total) == (1, 0, 1)
    assert rows(journal)[slow].attempts == 3


async def test_a_server_gone_mid_run_leaves_its_row_untried_and_the_rest_pending(
        tmp_path: Path, journal: Path) -> None:
    """The server takes one message and goes away: the connection's reconnects wait on
    the run's clock, then the row it was for is deferred without an attempt counted
    (nothing reached a server), the rest stays pending, and the run says so."""
    clock = ManualClock(T0)
    store = Store.open(journal)
    server = SmtpServer().__enter__()
    running = True

    def seen(d: Delivery) -> None:
        nonlocal running
        if d.status == "sent" and running:
            running = False
            server.controller.stop()  # before the worker opens its next connection

    try:
        cfg = config(tmp_path, server.port, connections=1, messages_per_connection=1)
        task = asyncio.create_task(deliver(cfg, store, DAY, outgoing(PEOPLE[:3]), clock=clock,
                                           on_progress=seen))
        for wait in (0.5, 2.0):  # the two reconnects' waits
            await clock.until(lambda w=wait: any(s == w for _, s, _ in clock.sleepers)
                              or task.done())
            assert not task.done()
            clock.advance(wait)
        with pytest.raises(DeliveryError, match=r"after 1 sent; the rest is left pending"):
            await task
    finally:
        if running:
            server.controller.stop()
        store.close()
    got = rows(journal)
    assert got[PEOPLE[0]].status == "sent"
    assert (got[PEOPLE[1]].status, got[PEOPLE[1]].attempts) == ("deferred", 0)
    assert got[PEOPLE[1]].last_error is not None
    assert got[PEOPLE[1]].last_error.startswith("no connection: ")
    assert (got[PEOPLE[2]].status, got[PEOPLE[2]].attempts) == ("pending", 0)


async def test_an_outcome_the_sender_no_longer_holds_is_not_recorded_and_said_so(
        tmp_path: Path, journal: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The window leases leave open: A's DATA reply comes after its lease ran out and
    B took the row (A stopped meanwhile: no renewal). B's outcome stands; A's is not
    recorded, and A says why in one warning line."""
    gate = threading.Event()
    here, entered = asyncio.get_running_loop(), asyncio.Event()

    @dataclass
    class Holding(_Handler):
        held_once: bool = False

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if not self.held_once:  # A's message: the reply waits for the test
                self.held_once = True
                here.call_soon_threadsafe(entered.set)
                await asyncio.get_running_loop().run_in_executor(None, gate.wait)
            return await super().handle_DATA(server, session, envelope)

    clock = ManualClock(T0)
    a_store, b_store = Store.open(journal), Store.open(journal)
    server = SmtpServer(handler=Holding())
    try:
        with server, caplog.at_level(logging.WARNING, "digest.send"):
            cfg = config(tmp_path, server.port, connections=1)
            a = asyncio.create_task(deliver(cfg, a_store, DAY, outgoing(PEOPLE[:1]),
                                            worker="a", clock=clock))
            await entered.wait()  # A's DATA is in, its reply held
            clock.advance(200, wake=False)  # A is stopped past its lease, its keeper too
            b = await deliver(cfg, b_store, DAY, outgoing(PEOPLE[:1]), worker="b", clock=clock)
            b_id = rows(journal)[PEOPLE[0]].message_id
            gate.set()
            clock.wake()
            await clock.run(a)
    finally:
        gate.set()
        a_store.close()
        b_store.close()
    assert b.sent == 1 and len(server.received) == 2  # the double send leases cannot close
    got = rows(journal)[PEOPLE[0]]
    assert (got.status, got.message_id) == ("sent", b_id)  # B's outcome stands
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert ("1 outcomes not recorded: another sender took those rows after this one's "
            f"lease ran out ({PEOPLE[0]})") in warnings
