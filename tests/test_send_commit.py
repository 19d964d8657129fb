"""The group commit, held to the README's number: "the replies that arrive within 5 ms
of each other share one transaction". After the SMTP server accepts a message its
outcome is not in the journal before 5 ms of the run's clock have passed, and is in
(seen from a second connection to the same SQLite file) once they have. A longer
wait widens what a crash can repeat; no wait costs a commit per reply. Real aiosmtpd,
a real SQLite file, the manual clock: nothing here waits for time to pass."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from digest.models import Delivery
from digest.send.deliver import deliver
from digest.store.facade import Finished, Store
from tests.peers import SmtpServer, _Handler
from tests.test_send import DAY, config, outgoing, smtp
from tests.test_send_lease import PEOPLE, T0, ManualClock, committing, journal, rows

__all__ = ["journal"]  # the fixture, imported for its name

# The README's figure, written here rather than imported from digest.send.tasks: a
# wait changed in the code and not in the README must fail this test.
COMMIT_WAIT = 0.005
# Only for the float sums of the manual clock's steps: a microsecond, not a margin.
ROUNDING = 1e-6


# The sender's other sleeps here: its rate limiter's (~10 s) and its keeper's (40 s).
SHORT = 5.0


def waiting(clock: ManualClock) -> bool:
    """Whether the commit is still waiting on the clock: its sleep (the only short
    one here) is there and not yet due."""
    return any(s < SHORT and due > clock.mono for due, s, _ in clock.sleepers)


async def commit_or_wait(clock: ManualClock, committed: asyncio.Event,
                         asleep: Callable[[], bool] | None = None) -> None:
    """Return once the commit went through or is (still) asleep on the clock (by
    default: waiting, not yet due): one of the two soon holds, so a wrong wait fails
    an assertion rather than hangs."""
    cond = asleep or (lambda: waiting(clock))
    waits = {asyncio.ensure_future(clock.until(cond)),
             asyncio.ensure_future(committed.wait())}
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


# A commit wait as long as the rate limiter's would never show: fail, not hang.
@pytest.mark.timeout(30)
async def test_an_accepted_message_is_committed_once_5_ms_have_passed_not_before(
        tmp_path: Path, journal: Path) -> None:
    clock = ManualClock(T0)
    store = committing(journal)
    with smtp() as (server, _):
        # One message every 10 s: after the first, the sender waits in its rate
        # limiter (10 s on the clock) and its keeper (40 s); the only short wait left
        # is the commit's. Nothing else moves while the test steps through 5 ms.
        cfg = config(tmp_path, server.port, connections=1, rate_per_second=0.1)
        run = asyncio.create_task(deliver(cfg, store, DAY, outgoing(PEOPLE), clock=clock))
        # Until the reply is in and its commit sleeps on the clock (due or not: a
        # zero wait is due at once), or (a commit off the clock) went through
        # without the clock moving at all.
        await commit_or_wait(clock, store.committed, lambda: run.done() or any(
            s < SHORT for _, s, _ in clock.sleepers))
        assert not run.done() and not store.committed.is_set()
        (accepted,) = server.received
        first = accepted.rcpt_tos[0]
        message_id = accepted.message["Message-ID"]

        def status() -> str:
            return rows(journal)[first].status  # a second Store on the same file

        for at in (0.0, 0.001, COMMIT_WAIT - ROUNDING):
            clock.advance(at - clock.mono)
            await commit_or_wait(clock, store.committed)
            assert (at, store.committed.is_set(), status()) == (at, False, "sending")
        clock.advance(COMMIT_WAIT + ROUNDING - clock.mono)
        await commit_or_wait(clock, store.committed)
        assert store.committed.is_set()
        got = rows(journal)[first]
        assert (got.status, got.message_id) == ("sent", message_id)

        await clock.run(run)  # the other 19, 10 s of clock apart
        report = run.result()
    store.close()
    assert (report.sent, report.failed) == (len(PEOPLE), 0)
    assert sorted(r.rcpt_tos[0] for r in server.received) == sorted(PEOPLE)
    assert {d.status for d in rows(journal).values()} == {"sent"}


class Recording(Store):
    """The real store, keeping which rows each group commit carried."""

    commits: list[list[str]]
    committed: asyncio.Event

    def finish_many(self, day: date, rows: list[Finished], *args: Any, **kwargs: Any) -> list[str]:
        lost = super().finish_many(day, rows, *args, **kwargs)
        self.commits.append([r.email for r in rows])
        self.committed.set()
        return lost


@pytest.mark.timeout(30)
async def test_replies_within_5_ms_share_one_transaction(tmp_path: Path, journal: Path) -> None:
    """Two connections' replies at the same clock time, a third message held at the
    server so the run goes on: 5 ms on, one commit carries both outcomes."""
    gate, here, entered = threading.Event(), asyncio.get_running_loop(), asyncio.Event()
    first, second, held = PEOPLE[:3]

    @dataclass
    class Holding(_Handler):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if held in envelope.rcpt_tos:  # its reply waits for the test
                here.call_soon_threadsafe(entered.set)
                await asyncio.get_running_loop().run_in_executor(None, gate.wait)
            return await super().handle_DATA(server, session, envelope)

    sent: list[str] = []
    both = asyncio.Event()

    def seen(d: Delivery) -> None:
        sent.append(d.email)
        if {first, second} <= set(sent):
            both.set()

    clock = ManualClock(T0)
    store = Recording.open(journal)
    assert isinstance(store, Recording)
    store.commits, store.committed = [], asyncio.Event()
    server = SmtpServer(handler=Holding())
    try:
        with server:
            cfg = config(tmp_path, server.port, connections=2)
            run = asyncio.create_task(deliver(cfg, store, DAY, outgoing([first, second, held]),
                                              clock=clock, on_progress=seen))
            await entered.wait()
            await both.wait()
            await commit_or_wait(clock, store.committed)
            assert store.commits == [] and not run.done()
            clock.advance(COMMIT_WAIT + ROUNDING)
            await commit_or_wait(clock, store.committed)
            assert [sorted(c) for c in store.commits] == [sorted([first, second])]
            assert {e: rows(journal)[e].status for e in (first, second, held)} == {
                first: "sent", second: "sent", held: "sending"}
            gate.set()
            await clock.run(run)
    finally:
        gate.set()
        store.close()
    assert run.result().sent == 3
