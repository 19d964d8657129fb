"""The journaled run of one ``send.deliver`` call: the messages to send, the state its
tasks share, and how each row's outcome is counted, logged and group-committed to
the journal. The tasks themselves: ``digest.send.tasks`` (the feeder, the flusher)
and ``digest.send.worker`` (one per SMTP connection). See ``digest.send.deliver``
for the guarantees they keep.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

from digest.config import Config
from digest.errors import DeliveryError
from digest.mail import dkim
from digest.models import Delivery, DeliveryStatus
from digest.send import pool
from digest.send.clock import Clock
from digest.send.ratelimit import RateLimiter
from digest.store.facade import Finished, Store

log = logging.getLogger("digest.send.deliver")

BACKOFF_MAX = timedelta(hours=6)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Outgoing:
    """One message to send: the journal key and a builder called just before sending.

    ``build`` returns the complete message as CRLF bytes (the fast path: a prepared
    variant with this subscriber spliced in) or as an EmailMessage.
    """

    email: str
    build: Callable[[], bytes | EmailMessage]


@dataclass
class Job:
    item: Outgoing
    attempts: int  # including this one
    variant: str
    # Built, signed and dot-stuffed while it waits in the queue, so DKIM (on the
    # other core) overlaps the SMTP round trips of the messages ahead of it.
    payload: asyncio.Task[tuple[bytes, str]] | None = None
    lost: bool = False  # another sender took the row after this run's lease ran out


@dataclass
class Run:
    """State shared by the tasks of one deliver() call (one event loop, no locks needed)."""

    config: Config
    store: Store
    day: date
    worker: str  # the holder token: unique to this run, on every row it claims
    clock: Clock
    on_progress: Callable[[Delivery], None] | None
    settings: pool.Settings
    signer: dkim.SigningPool | None
    limiter: RateLimiter
    sender: str
    queue: asyncio.Queue[Job | None]
    deadline: float  # clock.monotonic() after which deferred rows wait for the next run
    lease: float  # seconds a claim or a renewal holds the rows
    # The earliest end of this run's leases, as it last wrote them: until then no
    # other sender can have taken a held row, so sending needs no journal check.
    lease_until: datetime | None = None
    dropped: int = 0  # rows found taken by another sender, not sent
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("sent", "failed", "skipped"), 0))
    total: int = 0
    deferred: set[str] = field(default_factory=set)  # deferred in this run and still so
    failures: list[tuple[str, str]] = field(default_factory=list)
    held: dict[str, Job] = field(default_factory=dict)  # claimed, outcome not yet known
    # heap by due time (clock.monotonic()), the clock the deadline and the journal's
    # next_attempt are on: a retry falls due when its row is claimable again
    retries: list[tuple[float, int, Job]] = field(default_factory=list)
    busy: int = 0
    alive: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    unflushed: list[Finished] = field(default_factory=list)
    flushed: asyncio.Event = field(default_factory=asyncio.Event)
    # Until one connection has worked, connect attempts go one at a time and the
    # first failure stops the run: N workers must not hammer a wrong host N times.
    proven: bool = False
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    fatal: DeliveryError | None = None
    error: Exception | None = None  # raised by a builder: re-raised once the run has stopped
    lost: DeliveryError | None = None  # a later connection failure (server went away)
    stopped: bool = False
    # The run is over: the flusher commits what is left, at once, and ends.
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    seq: Iterator[int] = field(default_factory=itertools.count)

    def now(self) -> datetime:
        return self.clock.now()

    async def journal(self, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        # On the loop thread, deliberately: a journal thread only contended with the
        # loop for the GIL (measured no faster), and the hot statements are plain
        # SQL now, a fraction of a millisecond a batch. Kept async so a call site
        # need not change if the journal ever moves off the loop again.
        return fn(*args, **kwargs)

    def stop(self) -> None:
        self.stopped = True
        self.changed.set()
        # Unblock a feeder waiting on a full queue; the rows stay in ``held`` and
        # go back to pending when the run ends.
        while not self.queue.empty():
            self.queue.get_nowait()
        for _ in range(self.config.smtp.connections):
            self.queue.put_nowait(None)  # every worker finishes its message and exits


def defer(run: Run, job: Job, error: str, delay: timedelta | None = None, *,
          attempted: bool = True) -> None:
    """Record a temporary failure; retried in this run when due before its deadline.
    ``attempted``: an SMTP transaction was tried (only those grow the backoff)."""
    if delay is None:
        delay = backoff(run.config.smtp.retry_first, job.attempts)
    due = run.clock.monotonic() + delay.total_seconds()
    record(run, job.item.email, "deferred", error=error, job=job, next_attempt=run.now() + delay,
           attempted=attempted)
    if due <= run.deadline:
        heapq.heappush(run.retries, (due, next(run.seq), job))


def backoff(first: float, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th try failed temporarily: first, 2x, 4x ... <= 6 h."""
    # In float seconds with the doubling capped: a row deferred run after run for weeks
    # reaches an ``attempts`` whose 2**n overflows timedelta (and crashed the run).
    doubled = first * 2.0 ** min(max(attempts - 1, 0), 64)
    return timedelta(seconds=min(doubled, BACKOFF_MAX.total_seconds()))


def record(run: Run, email: str, status: DeliveryStatus, *, message_id: str | None = None,
            error: str | None = None, next_attempt: datetime | None = None,
            job: Job | None = None, quiet: bool = False, attempted: bool = True) -> None:
    """Queue the row's outcome for the next group commit, count it and tell progress.
    A row handed back untried (``attempted=False``) keeps its attempts and backoff."""
    run.held.pop(email, None)
    run.unflushed.append(Finished(email, status, message_id, error, next_attempt,
                                  attempted=attempted and status != "pending"))
    run.flushed.set()
    if quiet:
        return
    if status == "deferred":
        run.deferred.add(email)
        log.warning("%s: deferred until %s: %s", email,
                    f"{next_attempt:%Y-%m-%d %H:%M:%S} UTC", error)
    else:
        run.deferred.discard(email)
        run.counts[status] += 1
        if status == "failed":
            run.failures.append((email, error or ""))
            log.warning("%s: failed: %s", email, error)
    if run.on_progress is not None and job is not None:
        run.on_progress(Delivery(
            day=run.day, email=email, status=status, variant=job.variant,
            attempts=job.attempts, message_id=message_id, last_error=error, updated=run.now()))


async def flush(run: Run) -> None:
    """Commit the outcomes recorded since the last flush, in one journal transaction."""
    run.flushed.clear()
    rows, run.unflushed = run.unflushed, []
    if rows:
        lost = await run.journal(run.store.finish_many, run.day, rows, run.worker, now=run.now())
        if lost:
            # Sent (or tried) while our lease ran out unseen, e.g. a reply slower than
            # half the lease: the row's new holder decides; it may send it again.
            log.warning("%s outcomes not recorded: another sender took those rows after "
                        "this one's lease ran out (%s)", len(lost), ", ".join(lost[:5]))
