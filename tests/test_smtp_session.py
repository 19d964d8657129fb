"""The pipelining session against a scripted loopback server that splits its
replies into single bytes, pauses between them, speaks multi-line replies and
sends a reply nobody asked for: no reply may be lost or paired with the wrong
command (aiosmtplib's own reader drops bytes that arrive between reads)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aiosmtplib
import pytest

from digest.send.session import SenderRefused, Session

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def dribble(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Write one byte at a time with pauses: every reply spans many reads."""
    for i in range(len(data)):
        writer.write(data[i:i + 1])
        await writer.drain()
        await asyncio.sleep(0.001)


async def session_with(script: Script, *, pipelining: bool = True
                       ) -> tuple[Session, asyncio.Server]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await script(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport, _ = await asyncio.get_running_loop().create_connection(
        asyncio.Protocol, "127.0.0.1", port)
    extensions = {"pipelining": ""} if pipelining else {}
    return Session(transport, extensions), server


async def read_commands(reader: asyncio.StreamReader, n: int) -> list[bytes]:
    return [await reader.readline() for _ in range(n)]


async def read_body(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n.\r\n")


async def test_pipelined_replies_split_into_single_bytes_all_arrive_in_order() -> None:
    got: list[list[bytes]] = []

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(2):
            got.append(await read_commands(reader, 4))  # MAIL, 2x RCPT, DATA in one go
            await dribble(writer, b"250-sender\r\n250 ok\r\n250 ok\r\n550 5.1.1 no such user\r\n"
                                  b"354 go ahead\r\n")
            await read_body(reader)
            await dribble(writer, b"250 2.0.0 queued as X\r\n")

    session, server = await session_with(script)
    async with server:
        for _ in range(2):
            outcome = await session.transact(
                b"<a@example.org>", [("b@example.org", b"<b@example.org>"),
                                     ("c@example.org", b"<c@example.org>")],
                [], b"Subject: x\r\n\r\nhi\r\n.\r\n", 5)
            assert outcome.reply is not None and outcome.reply.code == 250
            assert outcome.reply.message == "2.0.0 queued as X"
            assert {k: v.code for k, v in outcome.refused.items()} == {"c@example.org": 550}
        session.close()
    assert got[0] == [b"MAIL FROM:<a@example.org>\r\n", b"RCPT TO:<b@example.org>\r\n",
                      b"RCPT TO:<c@example.org>\r\n", b"DATA\r\n"]


async def test_one_command_at_a_time_without_pipelining() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert (await reader.readline()).startswith(b"MAIL")
        await dribble(writer, b"250 ok\r\n")
        assert (await reader.readline()).startswith(b"RCPT")
        await dribble(writer, b"250 ok\r\n")
        assert await reader.readline() == b"DATA\r\n"
        await dribble(writer, b"354 go\r\n")
        await read_body(reader)
        writer.write(b"250 queued\r\n")
        await writer.drain()

    session, server = await session_with(script, pipelining=False)
    async with server:
        outcome = await session.transact(b"<a@example.org>",
                                         [("b@example.org", b"<b@example.org>")], [],
                                         b"hi\r\n.\r\n", 5)
        session.close()
    assert outcome.reply is not None and outcome.reply.code == 250


async def test_a_refused_sender_raises_and_resets() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_commands(reader, 3)
        writer.write(b"550 5.7.1 not you\r\n503 need MAIL\r\n503 no recipients\r\n")
        assert await reader.readline() == b"RSET\r\n"
        writer.write(b"250 reset\r\n")
        await writer.drain()
        await reader.read()

    session, server = await session_with(script)
    async with server:
        with pytest.raises(SenderRefused, match=r"550 5\.7\.1 not you"):
            await session.transact(b"<a@example.org>", [("b@example.org", b"<b@example.org>")],
                                   [], b"hi\r\n.\r\n", 5)
        assert session.is_connected
        session.close()


async def test_a_reply_nobody_asked_for_retires_the_connection() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"421 4.4.2 idle too long, closing\r\n")
        await writer.drain()
        await reader.read()

    session, server = await session_with(script)
    async with server:
        await asyncio.sleep(0.1)
        with pytest.raises(aiosmtplib.SMTPServerDisconnected, match="unexpected reply: 421"):
            await session.transact(b"<a@example.org>", [("b@example.org", b"<b@example.org>")],
                                   [], b"hi\r\n.\r\n", 5)
        assert not session.is_connected


async def test_silence_is_a_read_timeout_and_a_hang_up_a_disconnect() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    session, server = await session_with(silent)
    async with server:
        with pytest.raises(aiosmtplib.SMTPReadTimeoutError):
            await session.transact(b"<a@example.org>", [("b@example.org", b"<b@example.org>")],
                                   [], b"hi\r\n.\r\n", 0.2)
        session.close()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"250 ok\r\n")  # then gone, mid-transaction

    session, server = await session_with(hang_up)
    async with server:
        with pytest.raises(aiosmtplib.SMTPServerDisconnected):
            await session.transact(b"<a@example.org>", [("b@example.org", b"<b@example.org>")],
                                   [], b"hi\r\n.\r\n", 5)
