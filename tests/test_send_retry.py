"""Retries within a run fall due on the injected clock, the one the journal's
next_attempt, the leases and the rate limiter use: a run held on a manual clock
retries a 451 when the clock says so, never on the event loop's own time. Real
aiosmtpd, a real SQLite file; nothing here waits for time to pass."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from digest.models import Delivery
from digest.send.deliver import deliver
from digest.store.facade import Store
from tests.test_send import DAY, config, outgoing, smtp
from tests.test_send_lease import PEOPLE, T0, ManualClock, journal, rows

__all__ = ["journal"]  # the fixture, imported for its name

SLOW = PEOPLE[0]


def greylist_once(reject: dict[str, str]) -> Callable[[Delivery], None]:
    """SLOW gets a 451 once; the progress callback it returns lifts it."""
    reject[SLOW] = "451 4.7.1 Greylisted, try again later"

    def seen(d: Delivery) -> None:
        if d.status == "deferred":
            reject.pop(d.email, None)  # the next try goes through

    return seen


# A run that waits on the event loop's time instead would sit 300 real seconds: the
# timeout turns that into a failure here rather than a hang.
@pytest.mark.timeout(30)
@pytest.mark.parametrize("window", [3600, 300], ids=["inside", "due-as-the-window-ends"])
async def test_a_retry_in_the_run_falls_due_on_the_injected_clock(
        tmp_path: Path, journal: Path, window: int) -> None:
    clock = ManualClock(T0)
    store = Store.open(journal)
    try:
        with smtp() as (server, handler):
            seen = greylist_once(handler.reject)
            cfg = config(tmp_path, server.port, connections=1, retry_first=300,
                         retry_within_run=window)
            run = asyncio.create_task(deliver(cfg, store, DAY, outgoing(PEOPLE[:1]),
                                              clock=clock, on_progress=seen))
            # Deferred, the run sleeps on the clock until its retry is due.
            await clock.until(lambda: any(s == 300 for _, s, _ in clock.sleepers) or run.done())
            assert not run.done() and server.received == []
            clock.advance(299)
            await clock.settle()
            assert not run.done() and server.received == []  # one second short
            clock.advance(1)
            report = await run
            assert [r.rcpt_tos for r in server.received] == [[SLOW]]
    finally:
        store.close()
    assert (report.sent, report.deferred) == (1, 0)
    got = rows(journal)[SLOW]
    assert (got.status, got.attempts, got.updated) == ("sent", 2, clock.now())


async def test_a_retry_due_past_the_run_window_on_the_clock_waits_for_the_next_run(
        tmp_path: Path, journal: Path) -> None:
    clock = ManualClock(T0)
    store = Store.open(journal)
    try:
        with smtp() as (server, handler):
            seen = greylist_once(handler.reject)
            # Due at 300 s; the run retries only what falls due within 299 s.
            cfg = config(tmp_path, server.port, connections=1, retry_first=300,
                         retry_within_run=299)
            report = await deliver(cfg, store, DAY, outgoing(PEOPLE[:1]), clock=clock,
                                   on_progress=seen)
            assert server.received == []
            # On time, the next run sends it.
            clock.advance(300)
            again = await deliver(cfg, store, DAY, outgoing(PEOPLE[:1]), clock=clock)
    finally:
        store.close()
    assert (report.sent, report.deferred) == (0, 1)
    assert (again.sent, again.deferred) == (1, 0)
