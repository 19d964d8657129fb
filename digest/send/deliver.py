"""Deliver messages over SMTP through a pool of reused connections, journaling
every recipient so that a crash, a rerun or a second sender never loses or
repeats anyone.

The journal (``Store``) is the source of truth. The caller plans one row per
recipient in one transaction; here rows are claimed in small batches just before
their messages are built, under a lease (``digest.send.lease``: renewed while held,
checked before DATA, outcomes recorded only by the holder), and outcomes are
group-committed (one transaction for the replies that arrive within
``tasks.FLUSH_AFTER`` on the run's clock). A message can only be repeated if the process dies after
DATA went out and before its outcome was committed: those rows are still 'sending',
and the next run takes them back at once if the process that held them is gone
(``Store.release_orphans``), or when their lease runs out.

Replies map onto the journal as SMTP means them: 2xx sent, 5xx failed with the
reply kept, 4xx (421 and 454 throttling too) and dropped connections deferred
with a growing backoff, retried within the same run when due soon enough. A
problem that would fail every message alike (unreachable host, bad certificate,
bad password, refused sender) raises ``DeliveryError`` and leaves the rows
pending, so fixing the config and rerunning sends them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from email.utils import parseaddr

from digest.config import Config
from digest.errors import DeliveryError
from digest.mail import dkim
from digest.models import Delivery, SendReport
from digest.send import pool, tasks
from digest.send import run as sendrun
from digest.send.clock import Clock, SystemClock, utc_now
from digest.send.pool import message_bytes
from digest.send.ratelimit import RateLimiter
from digest.send.run import Outgoing, backoff
from digest.store.facade import Store

__all__ = ["Outgoing", "backoff", "check", "deliver", "deliver_sync", "is_dead",
           "message_bytes", "smtp_password"]

log = logging.getLogger(__name__)

def smtp_password(config: Config) -> str | None:
    """The SMTP password from the environment, or None when no login is configured."""
    smtp = config.smtp
    if not smtp.username:
        return None
    value = os.environ.get(smtp.password_env)
    if value is None:
        raise DeliveryError(
            f"smtp.username is {smtp.username!r} but ${smtp.password_env} is not set",
            hint=f"export {smtp.password_env}=... or change smtp.password_env",
        )
    return value


async def check(config: Config, password: str | None) -> str:
    """Connect, EHLO, STARTTLS/TLS and AUTH as a send would; describe it in one line."""
    if config.smtp.username and password is None:
        password = smtp_password(config)
    signer = dkim.load(config)  # a bad key is a setup error too: say so before sending
    s = await pool.settings(config, password)
    client = await pool.open_client(s)
    try:
        cipher = client.get_transport_info("cipher")
        tls = f"{cipher[1]} {cipher[0]}" if cipher else "no TLS"
        auth = f"logged in as {s.smtp.username!r}" if s.smtp.username else "no login"
        ehlo = client.last_ehlo_response
        banner = ehlo.message.splitlines()[0] if ehlo and ehlo.message else "?"
    finally:
        await pool.quit_client(client)
    signing = (f"; DKIM {signer.algorithm} as {signer.selector}._domainkey.{signer.domain}"
               if signer else "; no DKIM")
    return f"{s.where}: OK ({tls}, {auth}, server {banner}){signing}"


def is_dead(worker: str) -> bool:
    """Whether the sender named ``host:pid[:...]`` is a process gone from this host."""
    host, _, rest = worker.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's sender: its rows wait out the stale timeout
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False



async def deliver(config: Config, store: Store, day: date, outgoing: Iterable[Outgoing], *,
                  password: str | None = None, worker: str | None = None,
                  on_progress: Callable[[Delivery], None] | None = None,
                  now: Callable[[], datetime] = utc_now,
                  clock: Clock | None = None) -> SendReport:
    """Send every claimable planned row of ``day``; return what happened.

    ``clock`` (default: the system's, with ``now`` as its wall time) gives the times
    the journal and the leases use and the rate limiter's clock and sleep.

    ``outgoing`` is consumed lazily, a batch at a time, so a long list is never
    built into messages all at once. Raises DeliveryError when the server cannot
    be used at all (nothing is then marked failed), or when it goes away mid-run
    (the rest stays pending).
    """
    started = time.perf_counter()
    smtp = config.smtp
    if smtp.username and password is None:
        password = smtp_password(config)
    clock = clock or SystemClock(now)
    now = clock.now
    run = sendrun.Run(
        config=config, store=store, day=day, clock=clock, on_progress=on_progress,
        # The holder token fencing rests on: fresh for every run, whatever its name.
        worker=f"{worker or f'{socket.gethostname()}:{os.getpid()}'}:{secrets.token_hex(8)}",
        settings=await pool.settings(config, password), signer=await _signing(config),
        limiter=_limiter(config, store, clock),
        sender=parseaddr(config.newsletter.from_address)[1],
        queue=asyncio.Queue(maxsize=smtp.connections * 2),
        deadline=clock.monotonic() + smtp.retry_within_run, lease=smtp.lease,
    )
    try:
        orphans = await run.journal(store.release_orphans, day, is_dead, now=now())
        if orphans:
            log.warning("%s messages were left mid-send by a sender that stopped; retrying "
                        "them (the server may already have some of them)", orphans)
        await tasks.run_all(run, iter(outgoing))
    finally:
        if run.signer is not None:
            await run.signer.close()
    if run.error is not None:
        raise run.error
    if run.fatal is not None:
        raise run.fatal
    if run.lost is not None and run.stopped:
        raise DeliveryError(
            f"{run.lost.message} after {run.counts['sent']} sent; "
            f"the rest is left pending for the next run", hint=run.lost.hint)
    c = run.counts
    report = SendReport(sent=c["sent"], failed=c["failed"], deferred=len(run.deferred),
                        skipped=c["skipped"], total=run.total,
                        seconds=time.perf_counter() - started, failures=tuple(run.failures))
    log.info("sent %s of %s in %.1f s, %s failed, %s deferred, %s skipped",
             f"{report.sent:,}", f"{report.total:,}", report.seconds,
             report.failed, report.deferred, report.skipped)
    return report


async def _signing(config: Config) -> dkim.SigningPool | None:
    signer = dkim.load(config)
    if signer is None:
        return None
    signing = dkim.SigningPool(signer)
    await signing.start()
    return signing


def _limiter(config: Config, store: Store, clock: Clock) -> RateLimiter:
    smtp = config.smtp
    recent: list[float] = []
    if smtp.rate_per_hour > 0:
        # Sends of the last hour (an earlier or crashed run) count against this one.
        at, mono = clock.now(), clock.monotonic()
        recent = [mono - (at - t).total_seconds()
                  for t in store.sent_since(at - timedelta(hours=1))]
    return RateLimiter(smtp.rate_per_second, smtp.rate_per_hour, recent=recent,
                       clock=clock.monotonic, sleep=clock.sleep)


def deliver_sync(config: Config, store: Store, day: date, outgoing: Iterable[Outgoing], *,
                 password: str | None = None, worker: str | None = None,
                 on_progress: Callable[[Delivery], None] | None = None,
                 now: Callable[[], datetime] = utc_now,
                 clock: Clock | None = None) -> SendReport:
    """deliver() for callers without an event loop (the CLI, the scheduler)."""
    return asyncio.run(deliver(config, store, day, outgoing, password=password, worker=worker,
                               on_progress=on_progress, now=now, clock=clock))

