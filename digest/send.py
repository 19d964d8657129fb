"""Deliver built messages over SMTP through a small pool of reused connections.

The journal (``Store``) is the source of truth: the caller plans one row per
recipient, and each row is claimed just before its message goes out and
finished right after the server's reply. A crash or a second sender running at
the same time therefore never repeats or loses anyone.

Replies map onto the journal as SMTP means them: 2xx sent, 5xx failed (never
retried), 4xx and dropped connections deferred with a growing backoff. A
problem that would fail every message alike (unreachable host, bad
certificate, bad password, refused sender) raises ``DeliveryError`` instead and
leaves the rows pending, so fixing the config and rerunning sends them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import TypeVar

import aiosmtplib

from digest.config import Config, SmtpConfig
from digest.errors import DeliveryError
from digest.models import Delivery, DeliveryStatus, SendReport
from digest.store import Store

log = logging.getLogger(__name__)

# Deferred rows wait 5 min, 10, 20, ... capped at 6 h: long enough for a
# greylisting or rate-limiting server to let us in, short enough for a morning mail.
BACKOFF_FIRST = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=6)

_E = TypeVar("_E", bound=BaseException)


@dataclass(frozen=True)
class Outgoing:
    """One message to send: the journal key and a builder called just before sending."""

    email: str
    build: Callable[[], EmailMessage]


def utc_now() -> datetime:
    return datetime.now(UTC)


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


# -- connecting -------------------------------------------------------------

@dataclass(frozen=True)
class _Settings:
    """Everything needed to open one connection, prepared once per run."""

    smtp: SmtpConfig
    password: str | None
    tls: ssl.SSLContext | None
    local_hostname: str

    @property
    def where(self) -> str:
        return f"smtp {self.smtp.host}:{self.smtp.port}"


async def _settings(config: Config, password: str | None) -> _Settings:
    smtp = config.smtp
    if smtp.username and password is None:
        password = smtp_password(config)
    tls = _tls_context(config) if smtp.security != "none" else None
    if smtp.security == "none" and smtp.username:
        log.warning("smtp.security is 'none': the password for %r goes out unencrypted",
                    smtp.username)
    # getfqdn may wait on DNS; do it once, off the loop, not once per connection.
    local = await asyncio.to_thread(socket.getfqdn)
    return _Settings(smtp, password, tls, local or "localhost")


def _tls_context(config: Config) -> ssl.SSLContext:
    smtp = config.smtp
    cafile = str(config.resolve(smtp.ca_file)) if smtp.ca_file else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise DeliveryError(f"smtp.ca_file: cannot load {cafile}: {_reason(e)}",
                            hint="point it at a PEM file of CA certificates") from None
    if not smtp.verify_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def _open(s: _Settings) -> aiosmtplib.SMTP:
    """Connect, EHLO, STARTTLS/TLS, AUTH; any failure becomes one clear DeliveryError."""
    cfg = s.smtp
    client = aiosmtplib.SMTP(
        hostname=cfg.host, port=cfg.port, timeout=cfg.timeout, local_hostname=s.local_hostname,
        use_tls=cfg.security == "tls", start_tls=cfg.security == "starttls",
        tls_context=s.tls,
        # Login ourselves below, so an auth failure is told apart from a connect failure.
        username=None, password=None,
    )
    try:
        await client.connect()
    except (aiosmtplib.SMTPException, OSError) as e:
        client.close()
        raise _connect_error(s, e) from None
    if cfg.username:
        try:
            await client.login(cfg.username, s.password or "")
        except aiosmtplib.SMTPAuthenticationError as e:
            client.close()
            raise DeliveryError(
                f"{s.where}: authentication failed for user {cfg.username!r}: "
                f"{e.code} {e.message}",
                hint=f"check ${cfg.password_env} and smtp.username",
            ) from None
        except (aiosmtplib.SMTPException, OSError) as e:
            client.close()
            raise _connect_error(s, e) from None
    return client


def _connect_error(s: _Settings, e: BaseException) -> DeliveryError:
    where, cfg = s.where, s.smtp
    cert = _find(e, ssl.SSLCertVerificationError)
    if cert is not None:
        return DeliveryError(f"{where}: certificate verify failed: {_reason(cert)}",
                             hint="set smtp.ca_file or smtp.verify_certificates=false")
    tls = _find(e, ssl.SSLError)
    if tls is not None:
        return DeliveryError(f"{where}: TLS handshake failed: {_reason(tls)}",
                             hint="check smtp.security: 'tls' for port 465, 'starttls' for 587")
    if _find(e, ConnectionRefusedError) is not None:
        return DeliveryError(f"{where}: connection refused",
                             hint="is the server running? check smtp.host/port")
    if _find(e, socket.gaierror) is not None:
        return DeliveryError(f"{where}: cannot resolve host {cfg.host!r}", hint="check smtp.host")
    if isinstance(e, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryError(f"{where}: timed out after {cfg.timeout:g} s",
                             hint="check smtp.host/port, or raise smtp.timeout")
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return DeliveryError(f"{where}: server refused us: {e.code} {e.message}")
    text = _reason(e)
    if "STARTTLS extension not supported" in text:
        return DeliveryError(f"{where}: server does not offer STARTTLS",
                             hint="use smtp.security='tls' for port 465; 'none' only locally")
    if "AUTH extension is not supported" in text:
        return DeliveryError(f"{where}: server does not offer AUTH",
                             hint="clear smtp.username, or use TLS if it needs that first")
    return DeliveryError(f"{where}: {text}", hint="check the [smtp] section of the config")


def _find(e: BaseException | None, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in e's cause/context chain (aiosmtplib wraps OSErrors)."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, kind):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def _reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
        return str(e.verify_message)
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason)
    if isinstance(e, aiosmtplib.SMTPException):
        return e.message
    return str(e) or type(e).__name__


async def _quit(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


async def check(config: Config, password: str | None) -> str:
    """Connect, EHLO, STARTTLS/TLS and AUTH as a send would; describe it in one line."""
    s = await _settings(config, password)
    client = await _open(s)
    try:
        cipher = client.get_transport_info("cipher")
        tls = f"{cipher[1]} {cipher[0]}" if cipher else "no TLS"
        auth = f"logged in as {s.smtp.username!r}" if s.smtp.username else "no login"
        ehlo = client.last_ehlo_response
        banner = ehlo.message.splitlines()[0] if ehlo and ehlo.message else "?"
    finally:
        await _quit(client)
    return f"{s.where}: OK ({tls}, {auth}, server {banner})"


# -- sending ----------------------------------------------------------------

@dataclass
class _Run:
    """State shared by the workers of one deliver() call (one event loop, no locks needed)."""

    config: Config
    store: Store
    day: date
    worker: str
    now: Callable[[], datetime]
    on_progress: Callable[[Delivery], None] | None
    settings: _Settings
    sender: str
    queue: deque[Outgoing]
    known: dict[str, Delivery]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("sent", "failed", "deferred", "skipped"), 0))
    failures: list[tuple[str, str]] = field(default_factory=list)
    # Until one connection has worked, connect attempts go one at a time and the
    # first failure stops the run: N workers must not hammer a wrong host N times.
    proven: bool = False
    gate: asyncio.Lock = field(default_factory=asyncio.Lock)
    fatal: DeliveryError | None = None
    lost: DeliveryError | None = None  # a later connection failure (server went away)


class _Fatal(Exception):
    """A reply that would fail every message alike (e.g. sender refused)."""

    def __init__(self, error: DeliveryError) -> None:
        super().__init__(str(error))
        self.error = error


class _Connection:
    """One worker's SMTP session, reopened on drop or after messages_per_connection."""

    def __init__(self, run: _Run) -> None:
        self.run = run
        self.client: aiosmtplib.SMTP | None = None
        self.used = 0

    async def ready(self) -> aiosmtplib.SMTP:
        run = self.run
        if self.client is not None and self.client.is_connected \
                and self.used < run.settings.smtp.messages_per_connection:
            return self.client
        await self.close()
        if run.proven:
            self.client = await _open(run.settings)
        else:
            async with run.gate:
                if run.fatal is not None:
                    raise run.fatal
                try:
                    self.client = await _open(run.settings)
                except DeliveryError as e:
                    run.fatal = e
                    raise
                run.proven = True
        self.used = 0
        return self.client

    async def close(self) -> None:
        await _quit(self.client)
        self.client = None


async def deliver(config: Config, store: Store, day: date, outgoing: Sequence[Outgoing], *,
                  password: str | None = None, worker: str | None = None,
                  on_progress: Callable[[Delivery], None] | None = None,
                  now: Callable[[], datetime] = utc_now) -> SendReport:
    """Send every claimable planned row of ``day``; return what happened.

    Raises DeliveryError when the server cannot be used at all (nothing is then
    marked failed), or when it goes away mid-run (the rest stays pending).
    """
    started = time.perf_counter()
    run = _Run(
        config=config, store=store, day=day, now=now, on_progress=on_progress,
        worker=worker or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}",
        settings=await _settings(config, password),
        sender=parseaddr(config.newsletter.from_address)[1],
        queue=deque(outgoing),
        known={d.email: d for d in store.deliveries(day)},
    )
    workers = min(config.smtp.connections, max(len(outgoing), 1))
    tasks = [asyncio.create_task(_work(run)) for _ in range(workers)]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        # A bug or a failed build in one worker: stop the others (each closes its
        # connection) and raise the original error, not an ExceptionGroup.
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    if run.fatal is not None:
        raise run.fatal
    if run.lost is not None and run.queue:
        raise DeliveryError(
            f"{run.lost.message} after {run.counts['sent']} sent; "
            f"{len(run.queue)} left pending for the next run", hint=run.lost.hint)
    c = run.counts
    report = SendReport(sent=c["sent"], failed=c["failed"], deferred=c["deferred"],
                        skipped=c["skipped"], total=len(outgoing),
                        seconds=time.perf_counter() - started, failures=tuple(run.failures))
    log.info("sent %s of %s in %.1f s, %s failed, %s deferred, %s skipped",
             f"{report.sent:,}", f"{report.total:,}", report.seconds,
             report.failed, report.deferred, report.skipped)
    return report


def deliver_sync(config: Config, store: Store, day: date, outgoing: Sequence[Outgoing], *,
                 password: str | None = None, worker: str | None = None,
                 on_progress: Callable[[Delivery], None] | None = None,
                 now: Callable[[], datetime] = utc_now) -> SendReport:
    """deliver() for callers without an event loop (the CLI, the scheduler)."""
    return asyncio.run(deliver(config, store, day, outgoing, password=password, worker=worker,
                               on_progress=on_progress, now=now))


async def _work(run: _Run) -> None:
    conn = _Connection(run)
    try:
        while run.queue and run.fatal is None:
            item = run.queue.popleft()
            if not run.store.claim(run.day, item.email, run.worker, now=run.now()):
                if item.email not in run.known:
                    log.warning("%s: not in the journal for %s (not planned?)", item.email,
                                run.day)
                run.counts["skipped"] += 1
                continue
            try:
                client = await conn.ready()
            except DeliveryError as e:
                # Nothing went out for this row: give it back, and let the other
                # connections (if any still work) take it.
                _release(run, item.email, str(e))
                run.queue.appendleft(item)
                if run.proven:
                    log.warning("%s; this connection stops", e)
                    run.lost = run.lost or e
                return
            try:
                await _send_one(run, conn, client, item)
            except _Fatal as f:
                run.fatal = f.error
    finally:
        await conn.close()


async def _send_one(run: _Run, conn: _Connection, client: aiosmtplib.SMTP,
                    item: Outgoing) -> None:
    try:
        message = item.build()
    except BaseException:
        _release(run, item.email, "message could not be built")
        raise
    if message["Message-ID"] is None:
        domain = run.sender.rpartition("@")[2] or None
        message["Message-ID"] = make_msgid(domain=domain)
    message_id = str(message["Message-ID"])
    conn.used += 1
    # If we are cancelled from here on, the server may or may not have the message:
    # the row stays 'sending' and the store reclaims it later (its documented window).
    try:
        errors, reply = await client.send_message(message, sender=run.sender,
                                                  recipients=[item.email])
    except aiosmtplib.SMTPSenderRefused as e:
        if e.code >= 500:
            _release(run, item.email, f"{e.code} {e.message}")
            raise _Fatal(DeliveryError(
                f"{run.settings.where}: sender {run.sender!r} refused: {e.code} {e.message}",
                hint="check newsletter.from and smtp.username")) from None
        _finish(run, item.email, "deferred", error=f"{e.code} {e.message}")
        return
    except aiosmtplib.SMTPRecipientsRefused as e:
        first = e.recipients[0]
        _by_code(run, item.email, first.code, first.message)
        return
    except aiosmtplib.SMTPResponseException as e:
        _by_code(run, item.email, e.code, e.message)
        return
    except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError) as e:
        # The server may or may not have kept it; SMTP's answer is to try again later.
        await conn.close()
        _finish(run, item.email, "deferred", error=f"connection lost: {_reason(e)}")
        return
    except (aiosmtplib.SMTPNotSupported, ValueError) as e:
        # An address the server (or SMTP) cannot carry; retrying will not help.
        _finish(run, item.email, "failed", error=_reason(e))
        return
    if item.email in errors:  # refused recipients do not raise when others were accepted
        refused = errors[item.email]
        _by_code(run, item.email, refused.code, refused.message)
        return
    log.debug("%s: sent (%s)", item.email, reply)
    _finish(run, item.email, "sent", message_id=message_id)


def _by_code(run: _Run, email: str, code: int, message: str) -> None:
    reply = f"{code} {message}"
    _finish(run, email, "failed" if code >= 500 else "deferred", error=reply)


def _release(run: _Run, email: str, why: str) -> None:
    """Hand a claimed row back untouched by SMTP, so the next run takes it at once."""
    run.store.finish(run.day, email, "pending", error=why, now=run.now())


def _finish(run: _Run, email: str, status: DeliveryStatus, *, message_id: str | None = None,
            error: str | None = None) -> None:
    at = run.now()
    known = run.known.get(email)
    attempts = (known.attempts if known else 0) + 1
    next_attempt = at + _backoff(attempts) if status == "deferred" else None
    run.store.finish(run.day, email, status, message_id=message_id, error=error,
                     next_attempt=next_attempt, now=at)
    run.counts[status] += 1
    if status == "failed":
        run.failures.append((email, error or ""))
        log.warning("%s: failed: %s", email, error)
    elif status == "deferred":
        log.warning("%s: deferred until %s: %s", email, f"{next_attempt:%Y-%m-%d %H:%M} UTC", error)
    if run.on_progress is not None:
        run.on_progress(Delivery(
            day=run.day, email=email, status=status, variant=known.variant if known else "",
            attempts=attempts, message_id=message_id, last_error=error, updated=at))


def _backoff(attempts: int) -> timedelta:
    return min(BACKOFF_FIRST * 2 ** max(attempts - 1, 0), BACKOFF_MAX)
