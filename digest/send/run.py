"""The machinery of one ``send.deliver`` call: a feeder claiming journal rows in
batches, one worker per SMTP connection, in-run retries of deferred rows, and the
group commit of outcomes. See ``digest.send.deliver`` for the guarantees it keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from typing import Any, TypeVar

import aiosmtplib

from digest.config import Config
from digest.errors import DeliveryError
from digest.mail import dkim
from digest.mail.clean import CleanMessage
from digest.models import Delivery, DeliveryStatus
from digest.send import pool
from digest.send.ratelimit import RateLimiter
from digest.store.facade import Finished, Store

log = logging.getLogger("digest.send.deliver")

BACKOFF_MAX = timedelta(hours=6)
CLAIM_BATCH = 16  # rows claimed per journal transaction
# Seconds replies wait to share a commit: a commit per reply cost a third of the CPU;
# the wait widens the window in which a crash can repeat a message by only this much.
FLUSH_AFTER = 0.005

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


@dataclass
class Run:
    """State shared by the tasks of one deliver() call (one event loop, no locks needed)."""

    config: Config
    store: Store
    day: date
    worker: str
    now: Callable[[], datetime]
    on_progress: Callable[[Delivery], None] | None
    settings: pool.Settings
    signer: dkim.SigningPool | None
    limiter: RateLimiter
    sender: str
    queue: asyncio.Queue[Job | None]
    deadline: float  # loop time after which deferred rows wait for the next run
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("sent", "failed", "skipped"), 0))
    total: int = 0
    deferred: set[str] = field(default_factory=set)  # deferred in this run and still so
    failures: list[tuple[str, str]] = field(default_factory=list)
    held: dict[str, Job] = field(default_factory=dict)  # claimed, outcome not yet known
    retries: list[tuple[float, int, Job]] = field(default_factory=list)  # heap by due time
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
    closing: bool = False  # the run is over: the flusher commits what is left and ends
    seq: Iterator[int] = field(default_factory=itertools.count)

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



async def run_all(run: Run, items: Iterator[Outgoing]) -> None:
    n = run.config.smtp.connections
    run.alive = n
    workers = [asyncio.create_task(_work(run)) for _ in range(n)]
    flusher = asyncio.create_task(_flush_loop(run))
    try:
        await _feed(run, items)
        for _ in workers:
            await run.queue.put(None)
        await asyncio.gather(*workers)
    except BaseException:
        # A bug or a failed build in one task: stop the others (each closes its
        # connection) and raise the original error, not an ExceptionGroup.
        run.stop()
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        raise
    finally:
        # Whatever was claimed and not sent goes back to pending, untouched by SMTP.
        why = str(run.fatal or run.lost or "the run stopped before sending it")
        for email, job in list(run.held.items()):
            if job.payload is not None:
                if not job.payload.done():
                    job.payload.cancel()
                elif not job.payload.cancelled():
                    job.payload.exception()  # seen: no "exception never retrieved" noise
            _record(run, email, "pending", error=why, quiet=True)
        run.closing = True
        run.flushed.set()
        await flusher
        await _flush(run)


async def _feed(run: Run, items: Iterator[Outgoing]) -> None:
    """Claim rows a batch at a time and queue them; then feed due retries until done."""
    while not run.stopped:
        batch = list(itertools.islice(items, CLAIM_BATCH))
        if not batch:
            break
        run.total += len(batch)
        claimed = await run.journal(run.store.claim_many, run.day, [i.email for i in batch],
                                    run.worker, now=run.now())
        for item in batch:
            got = claimed.get(item.email)
            if got is None:
                run.counts["skipped"] += 1  # sent, failed, deferred until later, or taken
                continue
            await _queue(run, Job(item, *got))
        await _due_retries(run)
    while not run.stopped:
        run.changed.clear()  # before looking, so a job finishing meanwhile wakes us
        await _due_retries(run)
        if not (run.retries or run.busy):
            break
        wait = run.retries[0][0] - asyncio.get_running_loop().time() if run.retries else None
        if wait is None or wait > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.changed.wait(), wait)


async def _queue(run: Run, job: Job) -> None:
    run.held[job.item.email] = job  # from now on the run answers for this row
    job.payload = asyncio.get_running_loop().create_task(_prepare(run, job))
    while not run.stopped:
        try:
            run.queue.put_nowait(job)
        except asyncio.QueueFull:
            run.changed.clear()  # a worker finishing a job (or stop()) sets it
            await run.changed.wait()
        else:
            run.busy += 1
            return


async def _due_retries(run: Run) -> None:
    loop = asyncio.get_running_loop()
    due: list[Job] = []
    while run.retries and run.retries[0][0] <= loop.time():
        due.append(heapq.heappop(run.retries)[2])
    if not due:
        return
    await _flush(run)  # their 'deferred' rows must be committed before they can be claimed
    claimed = await run.journal(run.store.claim_many, run.day, [j.item.email for j in due],
                                run.worker, now=run.now())
    for job in due:
        got = claimed.get(job.item.email)
        if got is not None:
            await _queue(run, Job(job.item, *got))


# -- workers: one SMTP connection each -------------------------------------------------

class _Connection:
    """One worker's SMTP session, reopened on drop or after messages_per_connection."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.session: pool.Session | None = None
        self.used = 0

    async def ready(self) -> pool.Session:
        run = self.run
        if self.session is not None and self.session.is_connected \
                and self.used < run.settings.smtp.messages_per_connection:
            return self.session
        await self.close()
        if run.proven:
            self.session = await self._reopen()
        else:
            async with run.gate:
                if run.fatal is not None:
                    raise run.fatal
                try:
                    self.session = await pool.open_session(run.settings)
                except DeliveryError as e:
                    run.fatal = e
                    raise
                run.proven = True
        self.used = 0
        return self.session

    async def _reopen(self) -> pool.Session:
        # The server worked before: a failed reconnect may be a restart or a burst
        # limit, so try a few times before this connection gives up.
        for delay in (0.5, 2.0):
            try:
                return await pool.open_session(self.run.settings)
            except DeliveryError:
                await asyncio.sleep(delay)
        return await pool.open_session(self.run.settings)

    async def close(self) -> None:
        await pool.quit_session(self.session, self.run.settings.smtp.timeout)
        self.session = None


async def _work(run: Run) -> None:
    conn = _Connection(run)
    try:
        while True:
            job = await run.queue.get()
            if job is None:
                return
            try:
                if not run.stopped:
                    await _send(run, conn, job)
            except _Stop:
                return
            finally:
                run.busy -= 1
                run.changed.set()
    finally:
        await conn.close()


async def _send(run: Run, conn: _Connection, job: Job) -> None:
    email = job.item.email
    try:
        payload, message_id = await (job.payload or _prepare(run, job))
    except Exception as e:
        # A stop request (lifecycle.Stopping) or a bug: this row goes back to pending,
        # nothing new starts, messages already in a transaction finish; then it raises.
        _record(run, email, "pending", error=f"not built: {e}", quiet=True)
        run.error = run.error or e
        run.stop()
        return
    await run.limiter.acquire()
    try:
        session = await conn.ready()
    except DeliveryError as e:
        if run.proven and run.fatal is None:
            # The server worked and now refuses this connection: the row is due again
            # at once for the connections still up; with none left, the run stops.
            log.warning("%s; this connection stops", e)
            run.lost = run.lost or e
            run.alive -= 1
            _defer(run, job, f"no connection: {e.message}", delay=timedelta(0))
            if run.alive == 0:
                run.stop()
        else:
            run.stop()  # never connected: the row goes back to pending, untouched
        raise _Stop() from None
    conn.used += 1
    # From here on, a crash leaves the row 'sending': it may or may not have arrived.
    try:
        outcome = await pool.transact(session, run.sender, [email], payload,
                                      run.settings.smtp.timeout)
    except pool.SenderRefused as e:
        code, text = e.reply.code, e.reply.message
        if code >= 500:
            _record(run, email, "pending", error=f"{code} {text}", quiet=True)
            run.fatal = DeliveryError(
                f"{run.settings.where}: sender {run.sender!r} refused: {code} {text}",
                hint="check newsletter.from and smtp.username")
            run.stop()
            return
        await _by_code(run, conn, job, code, text)
        return
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as e:
        # The server may or may not have kept it; SMTP's answer is to try again later.
        await conn.close()
        _defer(run, job, f"connection lost: {pool.reason(e)}")
        return
    except aiosmtplib.SMTPResponseException as e:
        await _by_code(run, conn, job, e.code, e.message)
        return
    except ValueError as e:  # an address SMTP cannot carry: retrying will not help
        _record(run, email, "failed", error=str(e), job=job)
        return
    refused = outcome.refused.get(email)
    reply = refused or outcome.reply
    if reply is None or reply.code != 250:
        code, text = (reply.code, reply.message) if reply else (554, "no reply")
        await _by_code(run, conn, job, code, text)
        return
    log.debug("%s: sent (%s)", email, reply.message)
    _record(run, email, "sent", message_id=message_id, job=job)


async def _prepare(run: Run, job: Job) -> tuple[bytes, str]:
    """(the DATA payload, the Message-ID) of a job's message."""
    domain = run.sender.rpartition("@")[2] or None
    built = job.item.build()
    data, message_id = pool.message_bytes(built, domain)
    if run.signer is not None:
        data = await run.signer.sign(data)
    # Headers added since (Message-ID, DKIM-Signature) never start a line with '.'.
    return pool.dot_stuffed(data, clean=isinstance(built, CleanMessage)), message_id


class _Stop(Exception):
    """This worker cannot go on (no connection); the run decides what that means."""


async def _by_code(run: Run, conn: _Connection, job: Job, code: int, text: str) -> None:
    if code == 421:  # the server is closing this connection (often: slow down)
        await conn.close()
    if code >= 500:
        _record(run, job.item.email, "failed", error=f"{code} {text}", job=job)
    else:
        _defer(run, job, f"{code} {text}")


def _defer(run: Run, job: Job, error: str, delay: timedelta | None = None) -> None:
    if delay is None:
        delay = backoff(run.config.smtp.retry_first, job.attempts)
    loop = asyncio.get_running_loop()
    due = loop.time() + delay.total_seconds()
    _record(run, job.item.email, "deferred", error=error, job=job, next_attempt=run.now() + delay)
    if due <= run.deadline:
        heapq.heappush(run.retries, (due, next(run.seq), job))


def backoff(first: float, attempts: int) -> timedelta:
    """The wait after the ``attempts``-th try failed temporarily: first, 2x, 4x ... <= 6 h."""
    return min(timedelta(seconds=first) * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def _record(run: Run, email: str, status: DeliveryStatus, *, message_id: str | None = None,
            error: str | None = None, next_attempt: datetime | None = None,
            job: Job | None = None, quiet: bool = False) -> None:
    """Queue the row's outcome for the next group commit, count it and tell progress."""
    run.held.pop(email, None)
    run.unflushed.append(Finished(email, status, message_id, error, next_attempt))
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


async def _flush_loop(run: Run) -> None:
    # Never cancelled: a cancelled journal call may never run, and its rows would
    # stay 'sending'. run_all sets ``closing`` and waits for the last commit instead.
    # Group commit: replies arriving within FLUSH_AFTER share one transaction.
    while not run.closing:
        await run.flushed.wait()
        if not run.closing:
            await asyncio.sleep(FLUSH_AFTER)
        await _flush(run)


async def _flush(run: Run) -> None:
    run.flushed.clear()
    rows, run.unflushed = run.unflushed, []
    if rows:
        await run.journal(run.store.finish_many, run.day, rows, now=run.now())
