from __future__ import annotations

import email
import email.policy
import smtplib
import socket
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest

from digest.errors import DeliveryError
from digest.send.catch import Catcher


def _message(i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Digest <digest@example.org>"
    msg["To"] = f"reader{i}@example.com"
    msg["Subject"] = f"Issue {i}: Grüße"
    msg["Message-ID"] = f"<issue-{i}@example.org>"
    # A leading dot (SMTP dot-stuffing), 8-bit text and a long line: all must survive.
    msg.set_content(f"Hello {i}\n.leading dot line\nnaïve café\n" + "x" * 900 + "\n",
                    cte="8bit")
    # What SMTP carries: CRLF line endings, exactly as aiosmtplib puts them on the wire.
    return msg.as_bytes(policy=email.policy.SMTP)


async def test_catcher_writes_each_message_byte_for_byte(tmp_path: Path) -> None:
    folder = tmp_path / "caught"  # does not exist yet: the catcher makes it
    sent = [_message(i) for i in range(3)]
    with Catcher(folder, port=0) as catcher:
        assert catcher.port != 0
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=catcher.port,
                                   start_tls=False) as client:
            for i, data in enumerate(sent):
                await client.sendmail("digest@example.org", [f"reader{i}@example.com"], data)
        assert catcher.received == 3

    files = sorted(folder.glob("*.eml"))
    assert len(files) == 3
    assert not list(folder.glob(".*.tmp"))
    for i, (path, data) in enumerate(zip(files, sent, strict=True)):
        assert path.name.endswith(f"-{i + 1:05d}-reader{i}@example.com.eml")
        assert path.read_bytes() == data
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert parsed["Subject"] == f"Issue {i}: Grüße"
        assert isinstance(parsed, EmailMessage)
        body = parsed.get_body()
        assert body is not None
        assert ".leading dot line\nnaïve café\n" in body.get_content().replace("\r\n", "\n")


def test_catcher_names_are_filesystem_safe(tmp_path: Path) -> None:
    with Catcher(tmp_path, port=0) as catcher, \
            smtplib.SMTP("127.0.0.1", catcher.port, timeout=10) as client:
        client.sendmail("a@example.org", ['"we/ird..name"@example.com'],
                        b"Subject: x\r\n\r\nhi\r\n")
    (path,) = tmp_path.glob("*.eml")
    assert path.name.endswith("-00001-we_ird..name@example.com.eml")


def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(DeliveryError, match=rf"127\.0\.0\.1:{port}: address in use"), \
                Catcher(tmp_path, port=port):
            pass


def test_an_empty_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeliveryError, match="explicit address"):
        Catcher(tmp_path, host="", port=0)
