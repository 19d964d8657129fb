"""Leases with fencing on the delivery journal: a live sender held past its lease
loses its rows to another sender and drops them unsent; only a row's holder records
its outcome; a live sender's renewals keep its rows; claims are sized to the rate.
Also: every time the journal writes is bound one way (naive ones refused), and
attempts count SMTP transactions, not claims. Real aiosmtpd, a real SQLite file,
an injected clock (nothing here waits for time to pass)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from digest.errors import DeliveryError
from digest.models import Delivery
from digest.send.deliver import deliver
from digest.send.tasks import FLUSH_AFTER
from digest.store.facade import Finished, Store
from digest.store.schema import deliveries
from tests.peers import free_port
from tests.test_send import DAY, config, outgoing, smtp

T0 = datetime(2025, 3, 14, 7, 0, tzinfo=UTC)
PEOPLE = [f"reader{i:02d}@example.com" for i in range(20)]


class ManualClock:
    """Wall and monotonic time that move only when the test says so. ``advance(...,
    wake=False)`` moves time without waking anyone: the senders asleep on this clock
    stay as if their process had been stopped (SIGSTOP, a suspended machine)."""

    def __init__(self, start: datetime) -> None:
        self.t = start
        self.mono = 0.0
        self.sleepers: list[tuple[float, float, asyncio.Future[None]]] = []
        self.changed = asyncio.Event()

    def now(self) -> datetime:
        return self.t

    def monotonic(self) -> float:
        return self.mono

    async def sleep(self, seconds: float) -> None:
        fut = asyncio.get_running_loop().create_future()
        entry = (self.mono + seconds, seconds, fut)
        self.sleepers.append(entry)
        self.changed.set()
        try:
            await fut
        finally:
            self.sleepers.remove(entry)
            self.changed.set()

    def advance(self, seconds: float, *, wake: bool = True) -> None:
        self.t += timedelta(seconds=seconds)
        self.mono += seconds
        if wake:
            self.wake()

    def wake(self) -> None:
        for due, _, fut in self.sleepers:
            if due <= self.mono and not fut.done():
                fut.set_result(None)

    async def until(self, cond: Callable[[], bool]) -> None:
        """Wait (on events, not time) until someone sleeps so that ``cond`` holds."""
        while not cond():
            self.changed.clear()
            await self.changed.wait()

    async def settle(self) -> None:
        """Wait until every sleeper woken so far has run (and slept again or ended)."""
        await self.until(lambda: all(due > self.mono for due, _, _ in self.sleepers))

    async def run(self, task: asyncio.Future[object], step: float = 10.0) -> None:
        """Let ``task`` finish, moving time on in steps whenever it waits on the clock."""
        while not task.done():
            await asyncio.wait({task}, timeout=0.01)
            self.advance(step)


class Committing(Store):
    """The real store, saying when a sender's group commit went through."""

    committed: asyncio.Event

    def finish_many(self, *args: Any, **kwargs: Any) -> list[str]:
        lost = super().finish_many(*args, **kwargs)
        self.committed.set()
        return lost


def committing(db: Path) -> Committing:
    store = Committing.open(db)
    assert isinstance(store, Committing)
    store.committed = asyncio.Event()
    return store


async def let_commit(clock: ManualClock, store: Committing) -> None:
    """Let the outcomes recorded so far reach the journal: the group commit waits
    FLUSH_AFTER on the run's clock (tests/test_send_commit.py holds that wait)."""
    await clock.until(lambda: any(s == FLUSH_AFTER for _, s, _ in clock.sleepers))
    clock.advance(FLUSH_AFTER)
    await store.committed.wait()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Path]:
    db = tmp_path / "digest.db"
    s = Store.open(db)
    s.plan_deliveries(DAY, [(e, "all") for e in PEOPLE], now=T0)
    s.close()
    yield db


def rows(db: Path) -> dict[str, Delivery]:
    s = Store.open(db)
    try:
        return {d.email: d for d in s.deliveries(DAY)}
    finally:
        s.close()


# -- the double send -------------------------------------------------------------

async def test_a_sender_held_past_its_lease_loses_its_rows_and_sends_none_of_them(
        tmp_path: Path, journal: Path) -> None:
    """A (one message every 10 s) claims what it can send in half a lease and stops
    in its rate limiter; its machine is suspended 200 s (> the 120 s lease); B runs
    meanwhile and takes A's rows; A wakes: nobody gets two copies."""
    clock = ManualClock(T0)
    a_store, b_store = committing(journal), Store.open(journal)
    with smtp() as (server, _):
        cfg_a = config(tmp_path, server.port, connections=1, rate_per_second=0.1)
        a = asyncio.create_task(deliver(cfg_a, a_store, DAY, outgoing(PEOPLE), worker="a",
                                        clock=clock))
        # A sent its first message and waits ~10 s for the next slot (its keeper's
        # sleep is the 40 s one, its group commit's a few ms).
        await clock.until(lambda: any(1 < s < 30 for _, s, _ in clock.sleepers) or a.done())
        await let_commit(clock, a_store)  # its outcome is in, as a stopped process's would be
        assert not a.done() and len(server.received) == 1
        claimed = {e for e, d in rows(journal).items() if d.status in ("sending", "sent")}
        # Sized to the rate: at one message per 10 s, 7 fit in half a lease (60 s):
        # one went, six wait; a sender claiming a full batch would hold 16.
        assert len(claimed) == 7

        clock.advance(200, wake=False)  # A is stopped past its lease, its keeper too
        b = await deliver(config(tmp_path, server.port), b_store, DAY, outgoing(PEOPLE),
                          worker="b", clock=clock)
        assert (b.sent, b.skipped) == (19, 1)  # A's six expired rows too

        clock.wake()  # A resumes: renew-or-drop before DATA finds its rows taken
        await clock.run(a)
        report = a.result()
        copies = Counter(r.rcpt_tos[0] for r in server.received)
    a_store.close()
    b_store.close()
    assert set(copies) == set(PEOPLE) and set(copies.values()) == {1}
    assert (report.sent, report.failed) == (1, 0)
    assert {d.status for d in rows(journal).values()} == {"sent"}


async def test_a_live_sender_renews_its_lease_while_it_waits(
        tmp_path: Path, journal: Path) -> None:
    """The same A, awake this time: while it waits in the rate limiter its keeper
    renews, so B, 200 s on, takes none of A's rows."""
    clock = ManualClock(T0)
    a_store, b_store = committing(journal), Store.open(journal)
    with smtp() as (server, _):
        cfg_a = config(tmp_path, server.port, connections=1, rate_per_second=0.005)
        a = asyncio.create_task(deliver(cfg_a, a_store, DAY, outgoing(PEOPLE), worker="a",
                                        clock=clock))
        await clock.until(lambda: any(150 < s < 250 for _, s, _ in clock.sleepers) or a.done())
        await let_commit(clock, a_store)
        claimed = {e for e, d in rows(journal).items() if d.status in ("sending", "sent")}
        assert not a.done() and len(claimed) == 2  # one per 200 s: one sent, one waits
        for _ in range(19):  # 190 s (past the lease, short of A's next slot), all awake
            clock.advance(10)
            await clock.settle()  # the keeper has run its renewal
        b = await deliver(config(tmp_path, server.port), b_store, DAY, outgoing(PEOPLE),
                          worker="b", clock=clock)
        assert b.sent == len(PEOPLE) - 2  # all but A's sent and held rows
        await clock.run(a)
        assert a.result().sent == 2
        copies = Counter(r.rcpt_tos[0] for r in server.received)
    a_store.close()
    b_store.close()
    assert set(copies) == set(PEOPLE) and set(copies.values()) == {1}


def test_only_the_holder_records_an_outcome(journal: Path) -> None:
    store = Store.open(journal)
    try:
        a = store.claim_many(DAY, PEOPLE[:3], "a", now=T0, lease=120)
        assert set(a) == set(PEOPLE[:3])
        # Within A's lease nobody else gets the rows; past it anyone does.
        assert store.claim_many(DAY, PEOPLE[:3], "b", now=T0 + timedelta(seconds=119)) == {}
        b = store.claim_many(DAY, PEOPLE[:2], "b", now=T0 + timedelta(seconds=120))
        assert set(b) == set(PEOPLE[:2])
        assert store.renew(DAY, "a", T0 + timedelta(seconds=400)) == {PEOPLE[2]}
        lost = store.finish_many(DAY, [Finished(e, "sent", "<a@x>", attempted=True)
                                       for e in PEOPLE[:3]], "a", now=T0 + timedelta(seconds=121))
        assert lost == PEOPLE[:2]
        got = {d.email: d for d in store.deliveries(DAY)}
        assert [got[e].status for e in PEOPLE[:3]] == ["sending", "sending", "sent"]
        assert store.finish_many(DAY, [Finished(PEOPLE[0], "sent", "<b@x>", attempted=True)],
                                 "b", now=T0 + timedelta(seconds=122)) == []
        assert {d.email: d.message_id for d in store.deliveries(DAY)}[PEOPLE[0]] == "<b@x>"
    finally:
        store.close()


# -- times -----------------------------------------------------------------------

NAIVE = datetime(2025, 3, 14, 7, 0)


@pytest.mark.parametrize("write", [
    lambda s: s.claim_many(DAY, PEOPLE[:1], "a", now=NAIVE),
    lambda s: s.renew(DAY, "a", NAIVE),
    lambda s: s.finish_many(DAY, [Finished(PEOPLE[0], "sent")], "a", now=NAIVE),
    lambda s: s.finish_many(DAY, [Finished(PEOPLE[0], "deferred", next_attempt=NAIVE)], "a",
                            now=T0),
    lambda s: s.finish(DAY, PEOPLE[0], "sent", holder="a", now=NAIVE),
    lambda s: s.plan_deliveries(DAY, [("new@example.com", "all")], now=NAIVE),
    lambda s: s.release_orphans(DAY, lambda _: True, now=NAIVE),
], ids=["claim", "renew", "finish_many", "next_attempt", "finish", "plan", "orphans"])
def test_the_journal_refuses_naive_times(journal: Path, write: Callable[[Store], object]) -> None:
    store = Store.open(journal)
    try:
        store.claim_many(DAY, PEOPLE[:1], "a", now=T0)  # something for renew/finish/orphans
        with pytest.raises(ValueError, match="naive datetime"):
            write(store)
    finally:
        store.close()


def test_every_journal_time_is_stored_as_utc(journal: Path) -> None:
    berlin = timezone(timedelta(hours=1))
    at = T0.astimezone(berlin)  # 08:00+01:00, the same instant as T0
    store = Store.open(journal)
    try:
        store.claim_many(DAY, PEOPLE[:1], "a", now=at, lease=60)
        store.finish_many(DAY, [Finished(PEOPLE[0], "deferred", next_attempt=at,
                                         attempted=True)], "a", now=at)
        c = deliveries.c
        with store.begin() as conn:
            row = conn.execute(select(c.claimed_at, c.next_attempt, c.updated).where(
                c.email == PEOPLE[0])).one()
    finally:
        store.close()
    assert row == (T0, T0, T0)
    assert all(t.utcoffset() == timedelta(0) for t in row)


# -- retries ---------------------------------------------------------------------

async def test_attempts_count_smtp_transactions_not_claims(tmp_path: Path, journal: Path) -> None:
    """Runs that claim a row and hand it back untried (no server) leave its attempts
    and backoff alone; one 451 makes it 1 attempt and the first backoff."""
    store = Store.open(journal)
    try:
        nobody = config(tmp_path, free_port(), retry_first=300)
        for _ in range(3):
            with pytest.raises(DeliveryError):
                await deliver(nobody, store, DAY, outgoing(PEOPLE[:1]), now=lambda: T0)
        (row,) = [d for d in store.deliveries(DAY) if d.email == PEOPLE[0]]
        assert (row.status, row.attempts) == ("pending", 0)
        with smtp() as (server, handler):
            handler.reject[PEOPLE[0]] = "451 4.7.1 try later"
            report = await deliver(config(tmp_path, server.port, retry_first=300), store, DAY,
                                   outgoing(PEOPLE[:1]), now=lambda: T0)
        assert report.deferred == 1
        c = deliveries.c
        with store.begin() as conn:
            attempts, due = conn.execute(select(c.attempts, c.next_attempt).where(
                c.email == PEOPLE[0])).one()
        assert (attempts, due) == (1, T0 + timedelta(seconds=300))
    finally:
        store.close()


def test_a_schema_2_file_keeps_its_sending_rows_for_the_600_s_they_were_promised(
        journal: Path) -> None:
    import sqlite3

    store = Store.open(journal)
    store.claim_many(DAY, PEOPLE[:1], "old-sender", now=T0)
    store.close()
    with sqlite3.connect(journal) as db:  # back to schema 2: no lease column
        db.executescript("ALTER TABLE deliveries DROP COLUMN lease_until;"
                         "UPDATE meta SET value = '2' WHERE key = 'schema';")
    store = Store.open(journal)
    try:
        later = T0 + timedelta(seconds=599)
        assert store.claim_many(DAY, PEOPLE[:1], "new", now=later) == {}
        assert set(store.claim_many(DAY, PEOPLE[:1], "new", now=later + timedelta(seconds=1)))\
            == {PEOPLE[0]}
    finally:
        store.close()
