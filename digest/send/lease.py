"""Leases on claimed journal rows, with fencing.

A run claims rows under its own token until ``now + smtp.lease``. Past that any
sender may take them, alive holder or not, so a sender that stalls (a suspended
machine, an hour in the rate limiter without renewing) cannot keep rows forever,
and the holder's outcomes are recorded only while it still holds the row
(``Store.finish_many`` checks the token). Here: the keeper renews the run's leases
while it holds rows, ``still_held`` is checked right before each message's DATA
(renew when less than half the lease is left; a row found taken is dropped, never
sent), and claims are sized to what the rate limits let go before half a lease
has passed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from digest.send.run import Job, Run

log = logging.getLogger("digest.send.deliver")

CLAIM_BATCH = 16  # most rows claimed per journal transaction


def claim_size(run: Run) -> int:
    """Rows to claim next: what the rate limits let go within half a lease, less what
    the run already holds; 0 means wait for a held row to finish first."""
    room = min(CLAIM_BATCH, run.limiter.capacity(run.lease / 2))
    if not run.held:
        return max(room, 1)  # a run that holds nothing always takes one: it progresses
    return max(room - len(run.held), 0)


def claimed(run: Run) -> None:
    """Note a claim just made (before its rows join ``held``): the earliest lease end
    is the older rows' when some are held, else this claim's."""
    if run.lease_until is None or not run.held:
        run.lease_until = run.now() + timedelta(seconds=run.lease)


async def renew(run: Run) -> None:
    """Extend the lease on every row the run holds; drop those another sender took."""
    until = run.now() + timedelta(seconds=run.lease)
    still = await run.journal(run.store.renew, run.day, run.worker, until)
    run.lease_until = until
    for email in [e for e in run.held if e not in still]:
        _drop(run, run.held.pop(email))


async def still_held(run: Run, job: Job) -> bool:
    """Right before DATA: whether the run still holds ``job``'s row, with at least half
    a lease left for the transaction (renewed if less was left)."""
    if job.lost:
        return False
    due = run.lease_until is None or run.now() + timedelta(seconds=run.lease / 2) >= run.lease_until
    if due:
        await renew(run)
    return not job.lost


async def keep(run: Run) -> None:
    """Renew while rows are held (a worker waiting an hour in the rate limiter, a slow
    server): a live run's rows stay its own. Cancelled when the run ends."""
    while True:
        await run.clock.sleep(run.lease / 3)
        if run.held:
            await renew(run)


def _drop(run: Run, job: Job) -> None:
    job.lost = True
    run.dropped += 1
    run.counts["skipped"] += 1  # like a row another sender had claimed first
    run.changed.set()
    log.warning("%s: not sent by this sender: its lease ran out and another sender took it",
                job.item.email)


__all__ = ["CLAIM_BATCH", "claim_size", "claimed", "keep", "renew", "still_held"]
