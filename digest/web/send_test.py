"""Send a test: the previewed copy to one address, "[TEST]" in the subject.

A test send never touches the delivery journal and never freezes the day's
digest, so the real send later that day is unaffected. It goes out over the
configured SMTP server the way `digest send` sends (same bytes, DKIM signature,
TLS, login and one-line errors), one message on one connection.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from datetime import date, datetime
from email.utils import parseaddr

import aiosmtplib
import click

from digest import pipeline
from digest.config import Config
from digest.errors import DeliveryError, DigestError
from digest.mail import dkim
from digest.mail.headers import header_text
from digest.mail.message import message_bytes, personal_for
from digest.send import deliver as sender
from digest.send import pool
from digest.store.facade import Store
from digest.subscribers import roster as subs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TestMessage:
    eml: bytes  # as it goes out (before DKIM)
    variant: str
    subject: str  # one line, as the header carries it


@dataclass(frozen=True)
class TestSent:
    to: str
    subject: str
    variant: str
    reply: str  # the server's answer to DATA

    def describe(self) -> str:
        return f"sent a test ({self.variant} variant) to {self.to}: {self.subject}"


def build_test(config: Config, store: Store, *, to: str, subscriber: str | None = None,
               day: date | None = None, now: datetime | None = None
               ) -> TestMessage:
    """The copy the preview shows for ``subscriber`` (and day), addressed to ``to``,
    and the variant it is.

    The variant and greeting are the subscriber's, so the test reads as theirs;
    the address, unsubscribe link and Message-ID are the test address's, so a
    click on "unsubscribe" in a test never unsubscribes the real reader.
    """
    address = subs.normalise_email(to)
    now = now or pipeline.utcnow()
    copy = pipeline.copy_for(config, store, now=now, email=subscriber, day=day)
    if copy is None:
        raise DigestError("nothing to send: no stories for today",
                          hint="run 'digest collect' first")
    person = replace(copy.subscriber, email=address, source="--test")
    day = day or pipeline.today(config, now)
    personal = personal_for(config, pipeline.signing_secret(config, store), person, day)
    eml = message_bytes(config, copy.rendered, person, personal, day=day, now=now, test=True)
    return TestMessage(eml, copy.rendered.variant, "[TEST] " + header_text(copy.rendered.subject))


async def deliver_test(config: Config, message: bytes, to: str,
                       password: str | None = None) -> str:
    """Send one message outside the journal; the server's reply, or DeliveryError.

    The bytes go out as a real send's do (CRLF, DKIM-signed when configured,
    through send.pool's connection and transaction); only the journal is left out.
    """
    sender_address = parseaddr(config.newsletter.from_address)[1]
    signer = dkim.load(config)
    data, _ = sender.message_bytes(message, sender_address.rpartition("@")[2] or None)
    if signer is not None:
        data = signer.sign(data)
    settings = await pool.settings(config, password)
    session = await pool.open_session(settings)
    where = settings.where
    try:
        outcome = await pool.transact(session, sender_address, [to], pool.dot_stuffed(data),
                                      settings.smtp.timeout)
    except pool.SenderRefused as e:
        raise DeliveryError(f"{where}: sender {sender_address!r} refused: {e}",
                            hint="check newsletter.from and smtp.username") from None
    except (aiosmtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"{where}: test not sent: {pool.reason(e)}") from None
    finally:
        await pool.quit_session(session, settings.smtp.timeout)
    reply = outcome.refused.get(to) or outcome.reply
    if reply is None or reply.code != 250:
        code, text = (reply.code, reply.message) if reply else (554, "no reply")
        raise DeliveryError(f"{where}: {to} refused: {code} {text}")
    return f"{reply.code} {reply.message}"


async def send_test_async(config: Config, store: Store, *, to: str, subscriber: str | None = None,
                          day: date | None = None, password: str | None = None) -> TestSent:
    address = subs.normalise_email(to)
    if password is None:
        password = sender.smtp_password(config)  # before building: a missing secret is quick
    built = await asyncio.to_thread(build_test, config, store, to=address,
                                    subscriber=subscriber, day=day)
    reply = await deliver_test(config, built.eml, address, password)
    sent = TestSent(to=address, subject=built.subject, variant=built.variant, reply=reply)
    log.info("%s", sent.describe())
    return sent


def send_test(config: Config, *, to: str, subscriber: str | None = None,
              day: date | None = None) -> TestSent:
    """`digest send --test --to ADDRESS`: one "[TEST]" copy, no journal row."""
    store = pipeline.open_store(config)
    try:
        return asyncio.run(send_test_async(config, store, to=to, subscriber=subscriber, day=day))
    finally:
        store.close()


def send_test_command(config: Config, *, to: str | None, subscriber: str | None, test: bool,
                      dry_run: bool) -> None:
    """`digest send --test --to ADDRESS [--subscriber EMAIL] [--dry-run]`."""
    if not test:
        raise DigestError("--subscriber picks whose copy a test sends",
                          hint="add --test --to YOUR-ADDRESS")
    if not to:
        raise DigestError("--test needs --to: the one address the test goes to",
                          hint="digest send --test --to you@example.org")
    if dry_run:
        store = pipeline.open_store(config)
        try:
            built = build_test(config, store, to=to, subscriber=subscriber)
        finally:
            store.close()
        click.echo(f"dry run: would send a test ({built.variant} variant) to "
                   f"{subs.normalise_email(to)}: {built.subject}")
        return
    click.echo(send_test(config, to=to, subscriber=subscriber).describe())


__all__ = ["TestMessage", "TestSent", "build_test", "deliver_test", "send_test", "send_test_async",
           "send_test_command"]
