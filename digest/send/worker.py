"""One worker per SMTP connection: open (carefully, until one connection has
worked), build and sign each message while it waits, send it and sort the reply
into sent, deferred or failed.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import aiosmtplib

from digest.errors import DeliveryError
from digest.mail.clean import CleanMessage
from digest.send import lease, pool
from digest.send.run import Job, Run, defer, record

log = logging.getLogger("digest.send.deliver")


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
        # limit, so try a few times before this connection gives up. The waits are on
        # the run's clock, like its retries and leases.
        for delay in (0.5, 2.0):
            try:
                return await pool.open_session(self.run.settings)
            except DeliveryError:
                await self.run.clock.sleep(delay)
        return await pool.open_session(self.run.settings)

    async def close(self) -> None:
        await pool.quit_session(self.session, self.run.settings.smtp.timeout)
        self.session = None


async def work(run: Run) -> None:
    """One worker: send queued jobs over its own connection until told to stop."""
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
    if job.lost:
        return  # another sender took it; its outcome is that sender's to record
    try:
        payload, message_id = await (job.payload or prepare(run, job))
    except Exception as e:
        # A stop request (lifecycle.Stopping) or a bug: this row goes back to pending,
        # nothing new starts, messages already in a transaction finish; then it raises.
        record(run, email, "pending", error=f"not built: {e}", quiet=True)
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
            defer(run, job, f"no connection: {e.message}", delay=timedelta(0), attempted=False)
            if run.alive == 0:
                run.stop()
        else:
            run.stop()  # never connected: the row goes back to pending, untouched
        raise _Stop() from None
    # Renew-or-drop: the wait for a slot or a connection may have outlasted the lease.
    if not await lease.still_held(run, job):
        return
    conn.used += 1
    # From here on, a crash leaves the row 'sending': it may or may not have arrived.
    try:
        outcome = await pool.transact(session, run.sender, [email], payload,
                                      run.settings.smtp.timeout)
    except pool.SenderRefused as e:
        code, text = e.reply.code, e.reply.message
        if code >= 500:
            record(run, email, "pending", error=f"{code} {text}", quiet=True, attempted=False)
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
        defer(run, job, f"connection lost: {pool.reason(e)}")
        return
    except aiosmtplib.SMTPResponseException as e:
        await _by_code(run, conn, job, e.code, e.message)
        return
    except ValueError as e:  # an address SMTP cannot carry: retrying will not help
        record(run, email, "failed", error=str(e), job=job)
        return
    refused = outcome.refused.get(email)
    reply = refused or outcome.reply
    if reply is None or reply.code != 250:
        code, text = (reply.code, reply.message) if reply else (554, "no reply")
        await _by_code(run, conn, job, code, text)
        return
    log.debug("%s: sent (%s)", email, reply.message)
    record(run, email, "sent", message_id=message_id, job=job)


async def prepare(run: Run, job: Job) -> tuple[bytes, str]:
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
        record(run, job.item.email, "failed", error=f"{code} {text}", job=job)
    else:
        defer(run, job, f"{code} {text}")
