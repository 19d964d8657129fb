"""The tasks of one ``send.deliver`` call: a feeder claiming journal rows in batches
and feeding due retries, one worker per SMTP connection (``digest.send.worker``),
and the flusher that group-commits outcomes. ``run_all`` starts and ends them.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine, Iterator
from typing import Any

from digest.send import lease
from digest.send.lease import CLAIM_BATCH
from digest.send.run import Job, Outgoing, Run, flush, record
from digest.send.worker import prepare, work

__all__ = ["CLAIM_BATCH", "FLUSH_AFTER", "run_all"]

# Seconds replies wait to share a commit: a commit per reply cost a third of the CPU;
# the wait widens the window in which a crash can repeat a message by only this much.
FLUSH_AFTER = 0.005


async def run_all(run: Run, items: Iterator[Outgoing]) -> None:
    """Send ``items``: start the workers and the flusher, feed them, and put back to
    pending whatever was claimed and not sent."""
    n = run.config.smtp.connections
    run.alive = n
    workers = [asyncio.create_task(work(run)) for _ in range(n)]
    flusher = asyncio.create_task(_flush_loop(run))
    keeper = asyncio.create_task(lease.keep(run))
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
        keeper.cancel()
        await asyncio.gather(keeper, return_exceptions=True)
        # Whatever was claimed and not sent goes back to pending, untouched by SMTP.
        why = str(run.fatal or run.lost or "the run stopped before sending it")
        for email, job in list(run.held.items()):
            if job.payload is not None:
                if not job.payload.done():
                    job.payload.cancel()
                elif not job.payload.cancelled():
                    job.payload.exception()  # seen: no "exception never retrieved" noise
            record(run, email, "pending", error=why, quiet=True)
        run.closing.set()
        run.flushed.set()
        await flusher
        await flush(run)


async def _feed(run: Run, items: Iterator[Outgoing]) -> None:
    """Claim rows a batch at a time and queue them; then feed due retries until done."""
    while not run.stopped:
        run.changed.clear()  # before sizing, so a job finishing meanwhile wakes us
        size = lease.claim_size(run)
        if size == 0:  # the rate limits let go no more within half a lease
            await run.changed.wait()
            await _due_retries(run)
            continue
        batch = list(itertools.islice(items, size))
        if not batch:
            break
        run.total += len(batch)
        claimed = await _claim(run, [i.email for i in batch])
        jobs = []
        for item in batch:
            got = claimed.get(item.email)
            if got is None:
                run.counts["skipped"] += 1  # sent, failed, deferred until later, or taken
                continue
            jobs.append(_hold(run, Job(item, got[0] + 1, got[1])))
        for job in jobs:
            await _queue(run, job)
        await _due_retries(run)
    while not run.stopped:
        run.changed.clear()  # before looking, so a job finishing meanwhile wakes us
        await _due_retries(run)
        if not (run.retries or run.busy):
            break
        if not run.retries:
            await run.changed.wait()  # a job in flight finishes or defers
        elif (wait := run.retries[0][0] - run.clock.monotonic()) > 0:
            await _first(run.changed.wait(), run.clock.sleep(wait))


def _hold(run: Run, job: Job) -> Job:
    # From the claim on, the run answers for the row: a renewal that finds it taken
    # marks it lost even while it still waits to be queued.
    run.held[job.item.email] = job
    return job


async def _queue(run: Run, job: Job) -> None:
    if job.lost:
        return
    job.payload = asyncio.get_running_loop().create_task(prepare(run, job))
    while not run.stopped:
        try:
            run.queue.put_nowait(job)
        except asyncio.QueueFull:
            run.changed.clear()  # a worker finishing a job (or stop()) sets it
            await run.changed.wait()
        else:
            run.busy += 1
            return


async def _first(*waits: Coroutine[Any, Any, object]) -> None:
    """Wait until one of ``waits`` is done; cancel the others."""
    pending = {asyncio.ensure_future(w) for w in waits}
    try:
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)


async def _due_retries(run: Run) -> None:
    due: list[Job] = []
    now = run.clock.monotonic()
    while run.retries and run.retries[0][0] <= now:
        due.append(heapq.heappop(run.retries)[2])
    if not due:
        return
    await flush(run)  # their 'deferred' rows must be committed before they can be claimed
    claimed = await _claim(run, [j.item.email for j in due])
    jobs = [_hold(run, Job(j.item, claimed[j.item.email][0] + 1, claimed[j.item.email][1]))
            for j in due if j.item.email in claimed]
    for job in jobs:
        await _queue(run, job)


async def _claim(run: Run, emails: list[str]) -> dict[str, tuple[int, str]]:
    lease.claimed(run)
    return await run.journal(run.store.claim_many, run.day, emails, run.worker,
                             now=run.now(), lease=run.lease)


async def _flush_loop(run: Run) -> None:
    # Never cancelled: a cancelled journal call may never run, and its rows would
    # stay 'sending'. run_all sets ``closing`` and waits for the last commit instead.
    # Group commit: replies arriving within FLUSH_AFTER share one transaction. The
    # wait is on the run's clock, like the retries and leases, so a test can hold
    # the README's 5 ms as a number; the end of the run cuts it short (no reply
    # is left to share the commit, and a held clock must not hold the run open).
    while not run.closing.is_set():
        await run.flushed.wait()
        if not run.closing.is_set():
            await _first(run.closing.wait(), run.clock.sleep(FLUSH_AFTER))
        await flush(run)
