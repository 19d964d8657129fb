"""SMTP connections for the sender: open (EHLO, STARTTLS/TLS, AUTH) with one-line
errors, and a mail transaction that writes prepared bytes straight to the socket.

aiosmtplib's ``sendmail`` runs two regex passes over every message inside DATA
(line endings, dot-stuffing): about half its CPU on a 70 KB digest. Our bytes are
CRLF already, so ``transact`` checks that with C-speed ``bytes`` methods (or skips
it for digest.mail.clean messages), stuffs dots only when a line starts with one, and
runs the transaction on a pipelining ``smtp_session.Session``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import TypeVar

import aiosmtplib
from aiosmtplib import SMTPResponse

from digest.config import Config, SmtpConfig
from digest.errors import DeliveryError
from digest.mail.clean import CleanMessage
from digest.send.session import Outcome, SenderRefused, Session

__all__ = ["Outcome", "SenderRefused", "Session", "Settings", "connect_error", "crlf",
           "dot_stuffed", "message_bytes", "open_client", "open_session", "quit_client",
           "quit_session", "reason", "settings", "tls_context", "transact"]

log = logging.getLogger(__name__)

_E = TypeVar("_E", bound=BaseException)
_BARE_LINE_END = re.compile(rb"\r\n|\r|\n")
_MESSAGE_ID = re.compile(rb"(?im)^message-id:[ \t]*(.*?)\r?\n")


@dataclass(frozen=True)
class Settings:
    """Everything needed to open one connection, prepared once per run."""

    smtp: SmtpConfig
    password: str | None
    tls: ssl.SSLContext | None
    local_hostname: str

    @property
    def where(self) -> str:
        return f"smtp {self.smtp.host}:{self.smtp.port}"


async def settings(config: Config, password: str | None) -> Settings:
    smtp = config.smtp
    tls = tls_context(config) if smtp.security != "none" else None
    if smtp.security == "none" and smtp.username:
        log.warning("smtp.security is 'none': the password for %r goes out unencrypted",
                    smtp.username)
    # getfqdn may wait on DNS; do it once, off the loop, not once per connection.
    local = await asyncio.to_thread(socket.getfqdn)
    return Settings(smtp, password, tls, local or "localhost")


def tls_context(config: Config) -> ssl.SSLContext:
    smtp = config.smtp
    cafile = str(config.resolve(smtp.ca_file)) if smtp.ca_file else None
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as e:
        raise DeliveryError(f"smtp.ca_file: cannot load {cafile}: {reason(e)}",
                            hint="point it at a PEM file of CA certificates") from None
    if not smtp.verify_certificates:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_client(s: Settings) -> aiosmtplib.SMTP:
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
        if client.is_ehlo_or_helo_needed:  # transact() issues MAIL itself: greet first
            await client.ehlo()
    except (aiosmtplib.SMTPException, OSError) as e:
        client.close()
        raise connect_error(s, e) from None
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
            raise connect_error(s, e) from None
    return client


def connect_error(s: Settings, e: BaseException) -> DeliveryError:
    where, cfg = s.where, s.smtp
    cert = find(e, ssl.SSLCertVerificationError)
    if cert is not None:
        return DeliveryError(f"{where}: certificate verify failed: {reason(cert)}",
                             hint="set smtp.ca_file or smtp.verify_certificates=false")
    tls = find(e, ssl.SSLError)
    if tls is not None:
        return DeliveryError(f"{where}: TLS handshake failed: {reason(tls)}",
                             hint="check smtp.security: 'tls' for port 465, 'starttls' for 587")
    if find(e, ConnectionRefusedError) is not None:
        return DeliveryError(f"{where}: connection refused",
                             hint="is the server running? check smtp.host/port")
    if find(e, socket.gaierror) is not None:
        return DeliveryError(f"{where}: cannot resolve host {cfg.host!r}", hint="check smtp.host")
    if isinstance(e, aiosmtplib.SMTPTimeoutError | TimeoutError):
        return DeliveryError(f"{where}: timed out after {cfg.timeout:g} s",
                             hint="check smtp.host/port, or raise smtp.timeout")
    if isinstance(e, aiosmtplib.SMTPResponseException):
        return DeliveryError(f"{where}: server refused us: {e.code} {e.message}")
    text = reason(e)
    if "STARTTLS extension not supported" in text:
        return DeliveryError(f"{where}: server does not offer STARTTLS",
                             hint="use smtp.security='tls' for port 465; 'none' only locally")
    if "AUTH extension is not supported" in text:
        return DeliveryError(f"{where}: server does not offer AUTH",
                             hint="clear smtp.username, or use TLS if it needs that first")
    return DeliveryError(f"{where}: {text}", hint="check the [smtp] section of the config")


def find(e: BaseException | None, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in e's cause/context chain (aiosmtplib wraps OSErrors)."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, kind):
            return e
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def reason(e: BaseException) -> str:
    if isinstance(e, ssl.SSLCertVerificationError) and e.verify_message:
        return str(e.verify_message)
    if isinstance(e, ssl.SSLError) and e.reason:
        return str(e.reason)
    if isinstance(e, aiosmtplib.SMTPException):
        return e.message
    return str(e) or type(e).__name__


async def quit_client(client: aiosmtplib.SMTP | None) -> None:
    if client is None or not client.is_connected:
        return
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()


# -- the wire form ----------------------------------------------------------------

def crlf(data: bytes) -> bytes:
    """``data`` with every line ending CRLF; a no-op scan (C speed) when it already is."""
    if isinstance(data, CleanMessage):
        return data
    pairs = data.count(b"\r\n")
    if data.count(b"\n") == pairs and data.count(b"\r") == pairs:
        return data
    return _BARE_LINE_END.sub(b"\r\n", data)


def message_bytes(built: bytes | EmailMessage, domain: str | None) -> tuple[bytes, str]:
    """(CRLF bytes, Message-ID) of a built message; a missing Message-ID is added."""
    if isinstance(built, EmailMessage):
        if built["Message-ID"] is None:
            built["Message-ID"] = make_msgid(domain=domain)
        data = built.as_bytes(policy=built.policy.clone(linesep="\r\n"))
        return crlf(data), str(built["Message-ID"])
    data = crlf(built)
    end = data.find(b"\r\n\r\n")
    found = _MESSAGE_ID.search(data, 0, end + 2 if end >= 0 else len(data))
    if found:
        return data, found.group(1).decode("ascii", "replace").strip()
    mid = make_msgid(domain=domain)
    return f"Message-ID: {mid}\r\n".encode("ascii") + data, mid


def dot_stuffed(data: bytes, *, clean: bool = False) -> bytes:
    """The DATA payload: lines starting with '.' doubled, ended by CRLF.CRLF (RFC 5321).

    ``clean``: no line of ``data`` starts with '.' (see digest.mail.clean): skip the scan.
    """
    if not clean:
        if b"\r\n." in data:
            data = data.replace(b"\r\n.", b"\r\n..")
        if data.startswith(b"."):
            data = b"." + data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


# -- one transaction -----------------------------------------------------------------

async def open_session(s: Settings) -> Session:
    """open_client(), then the connection handed to a pipelining Session."""
    client = await open_client(s)
    try:
        return Session.take(client)
    except aiosmtplib.SMTPServerDisconnected as e:
        raise connect_error(s, e) from None


async def quit_session(session: Session | None, timeout: float) -> None:
    if session is not None:
        await session.quit(timeout)


async def transact(session: Session, sender: str, recipients: list[str],
                   payload: bytes, timeout: float) -> Outcome:
    """MAIL, RCPT each, DATA with ``payload`` (already dot-stuffed, ending CRLF.CRLF).

    Raises SenderRefused for a MAIL reply other than 250, aiosmtplib's
    SMTPServerDisconnected/SMTPTimeoutError when the connection fails (the caller
    closes it), ValueError for an address SMTP cannot carry (before anything is
    written). A refused recipient does not raise: it is in ``Outcome.refused``.
    """
    options: list[str] = []
    if not (sender.isascii() and all(r.isascii() for r in recipients)):
        if not session.supports("smtputf8"):
            no = SMTPResponse(553, "5.6.7 the server does not offer SMTPUTF8 for a non-ASCII "
                                   "address")
            return Outcome(dict.fromkeys(recipients, no), None)
        options.append("SMTPUTF8")
    if not payload.isascii() and session.supports("8bitmime"):
        options.append("BODY=8BITMIME")
    encoding = "utf-8" if "SMTPUTF8" in options else "ascii"
    # Addresses are written as they are: aiosmtplib's mail()/rcpt() would re-parse
    # each with the email package (~0.1 ms); ours were validated long before.
    return await session.transact(
        _path(sender, encoding), [(r, _path(r, encoding)) for r in recipients],
        [o.encode("ascii") for o in options], payload, timeout)


def _path(address: str, encoding: str) -> bytes:
    if any(c in address for c in "<>\r\n\0 "):
        raise ValueError(f"unsafe address for SMTP: {address!r}")
    return b"<" + address.encode(encoding) + b">"
