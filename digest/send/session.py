"""Mail transactions on a connection aiosmtplib has opened, pipelined when the
server offers PIPELINING (RFC 2920).

aiosmtplib does the setup we want a library for (EHLO, STARTTLS, TLS, AUTH),
but it reads exactly one reply per command and drops reply bytes that arrive
while no command is waiting, so it cannot pipeline. Without pipelining a digest
costs three round trips before DATA (MAIL, RCPT, DATA): measured against
smtp-sink, a third of the sender's CPU and of the sink's went into them. So
once the connection is ready, :meth:`Session.take` moves its transport to this
protocol, which queues every reply in order and never drops one, and a message
goes out as one write of MAIL, RCPT and DATA, then the body after the 354.

The exceptions are aiosmtplib's own (SMTPServerDisconnected, SMTPReadTimeoutError),
so callers treat a dropped or silent connection the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass
from typing import cast

import aiosmtplib
from aiosmtplib import SMTPResponse

_MAX_REPLY = 1 << 16  # a reply longer than this is not SMTP


@dataclass(frozen=True)
class Outcome:
    """The server's word on one transaction: per-recipient refusals, and the DATA reply."""

    refused: dict[str, SMTPResponse]
    reply: SMTPResponse | None  # None when every recipient was refused (no DATA sent)


class SenderRefused(Exception):
    def __init__(self, reply: SMTPResponse) -> None:
        super().__init__(f"{reply.code} {reply.message}")
        self.reply = reply


class _Replies(asyncio.Protocol):
    """Parses the server's byte stream into complete replies, kept in order."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.replies: deque[SMTPResponse] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.lost: aiosmtplib.SMTPServerDisconnected | None = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            reply = self._parse()
            if reply is None:
                break
            self.replies.append(reply)
        if len(self.buffer) > _MAX_REPLY:
            self._lose("reply too long")
        self._wake()

    def _parse(self) -> SMTPResponse | None:
        lines: list[bytes] = []
        pos = 0
        while True:
            end = self.buffer.find(b"\n", pos)
            if end < 0:
                return None
            line = bytes(self.buffer[pos:end + 1])
            pos = end + 1
            lines.append(line[4:].strip(b" \t\r\n"))
            if line[3:4] != b"-":  # the last line of a reply: "250 text" or just "250"
                break
        try:
            code = int(line[:3])
        except ValueError:
            code = 0  # not SMTP; the caller sees a code it cannot accept
        del self.buffer[:pos]
        return SMTPResponse(code, b"\n".join(lines).decode("utf-8", "surrogateescape"))

    def eof_received(self) -> bool:
        self._lose("Unexpected EOF received")
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lose("Connection lost")

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = aiosmtplib.SMTPServerDisconnected(why)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class Session:
    """One ready SMTP connection (greeted, TLS and AUTH done) for mail transactions."""

    def __init__(self, transport: asyncio.Transport, extensions: dict[str, str]) -> None:
        self.transport = transport
        self.extensions = extensions
        self.pipelining = "pipelining" in extensions
        self._in = _Replies()
        transport.set_protocol(self._in)

    @classmethod
    def take(cls, client: aiosmtplib.SMTP) -> Session:
        """Take over ``client``'s connection; the client is not used again."""
        protocol = client.protocol
        transport = protocol.transport if protocol is not None else None
        if transport is None or transport.is_closing():
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        return cls(cast(asyncio.Transport, transport), dict(client.esmtp_extensions))

    @property
    def is_connected(self) -> bool:
        return self._in.lost is None and not self.transport.is_closing()

    def supports(self, extension: str) -> bool:
        return extension.lower() in self.extensions

    def close(self) -> None:
        self.transport.close()

    async def quit(self, timeout: float) -> None:
        """QUIT politely; a server already gone is no error."""
        if self.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                self._write(b"QUIT\r\n")
                await self._reply(timeout)
        self.close()

    async def reset(self, timeout: float) -> None:
        """RSET after a failed transaction; on any trouble the connection is closed."""
        try:
            self._write(b"RSET\r\n")
            await self._reply(timeout)
        except (aiosmtplib.SMTPException, OSError):
            self.close()

    def _write(self, data: bytes) -> None:
        if not self.is_connected:
            raise self._in.lost or aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)

    async def _reply(self, timeout: float) -> SMTPResponse:
        replies = self._in
        while not replies.replies:
            if replies.lost is not None:
                raise replies.lost
            replies.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(replies.waiter, timeout)
            except TimeoutError:
                raise aiosmtplib.SMTPReadTimeoutError(
                    "Timed out waiting for server response") from None
            finally:
                replies.waiter = None
        return replies.replies.popleft()

    async def transact(self, sender: bytes, recipients: list[tuple[str, bytes]],
                       options: list[bytes], payload: bytes, timeout: float) -> Outcome:
        """MAIL, RCPT each, DATA, then ``payload`` (dot-stuffed, ending CRLF.CRLF).

        ``recipients`` pairs each address with its encoded path. Raises
        SenderRefused when MAIL is refused (after RSET), aiosmtplib's
        SMTPServerDisconnected/SMTPReadTimeoutError when the connection fails.
        """
        if self._in.replies:
            # A reply nobody asked for (a 421 before closing, say): this connection
            # is not in step with us any more, so it is not used for a message.
            self.close()
            raise aiosmtplib.SMTPServerDisconnected(
                f"unexpected reply: {self._in.replies[0].code} {self._in.replies[0].message}")
        mail = b" ".join([b"MAIL FROM:" + sender, *options]) + b"\r\n"
        rcpts = [b"RCPT TO:" + path + b"\r\n" for _, path in recipients]
        if self.pipelining:
            self._write(b"".join([mail, *rcpts, b"DATA\r\n"]))
            replies = [await self._reply(timeout) for _ in range(len(rcpts) + 2)]
            first, rcpt_replies, start = replies[0], replies[1:-1], replies[-1]
        else:
            self._write(mail)
            first = await self._reply(timeout)
            if first.code != 250:
                await self.reset(timeout)
                raise SenderRefused(first)
            rcpt_replies = []
            for line in rcpts:
                self._write(line)
                rcpt_replies.append(await self._reply(timeout))
            start = None
        refused = {address: reply for (address, _), reply in zip(recipients, rcpt_replies,
                                                                  strict=True)
                   if reply.code not in (250, 251)}
        if first.code != 250:
            await self._abandon(start, timeout)
            raise SenderRefused(first)
        if len(refused) == len(recipients):
            await self._abandon(start, timeout)
            return Outcome(refused, None)
        if start is None:
            self._write(b"DATA\r\n")
            start = await self._reply(timeout)
        if start.code != 354:
            await self.reset(timeout)
            return Outcome(refused, start)
        self._write(payload)
        return Outcome(refused, await self._reply(timeout))

    async def _abandon(self, start: SMTPResponse | None, timeout: float) -> None:
        """End a transaction that must not deliver, then RSET."""
        if start is not None and start.code == 354:
            # A pipelined DATA the server accepted with no recipient left: it wants a
            # body; an empty one goes to nobody.
            self._write(b".\r\n")
            await self._reply(timeout)
        await self.reset(timeout)
