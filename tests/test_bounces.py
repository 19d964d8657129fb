"""Bounces and complaints: real report formats parsed, recorded, acted on."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest.mail.bounces import MAX_RECIPIENTS, parse

DATA = Path(__file__).parent / "data" / "bounces"
NOW = datetime(2026, 2, 18, 12, 0, tzinfo=UTC)

EXPECTED = {
    "postfix-hard.eml": ("gone@example.net", "hard", "5.1.1"),
    "postfix-delayed.eml": ("full@example.com", "soft", "4.2.2"),
    "gmail.eml": ("nobody.here@gmail.com", "hard", "5.1.1"),
    "outlook.eml": ("closed.account@outlook.com", "hard", "5.1.10"),
    "exim.eml": ("left.company@example.com", "hard", ""),
    "yahoo.eml": ("deleted.user@yahoo.com", "hard", ""),
    "arf.eml": ("annoyed@yahoo.com", "complaint", ""),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_real_format_names_its_address_and_kind(name: str) -> None:
    got = parse((DATA / name).read_bytes(), now=NOW)
    assert [(b.address, b.kind, b.status) for b in got] == [EXPECTED[name]]


def test_a_complaint_without_original_rcpt_to_names_the_returned_messages_to() -> None:
    raw = (DATA / "arf.eml").read_bytes().replace(b"Original-Rcpt-To: <annoyed@yahoo.com>\n", b"")
    got = parse(raw, now=NOW)
    assert [(b.address, b.kind) for b in got] == [("annoyed@yahoo.com", "complaint")]


def test_a_delivered_action_and_an_ordinary_reply_are_no_bounce() -> None:
    raw = (DATA / "postfix-hard.eml").read_bytes().replace(b"Action: failed", b"Action: delivered")
    assert parse(raw, now=NOW) == ()
    reply = (b"From: ada@example.net\r\nTo: digest@example.org\r\nSubject: thanks!\r\n"
             b"\r\nLoved it.\r\n")
    assert parse(reply, now=NOW) == ()


def test_a_report_naming_ten_thousand_recipients_is_cut() -> None:
    head, _, tail = (DATA / "postfix-hard.eml").read_bytes().partition(b"Final-Recipient")
    _block, sep, rest = tail.partition(b"\n\n--")
    blocks = b"".join(
        b"\n\nFinal-Recipient: rfc822; r%d@example.net\nAction: failed\nStatus: 5.1.1" % i
        for i in range(10_000))
    raw = head.rstrip(b"\n") + blocks + b"\n" + sep + rest
    got = parse(raw, now=NOW)
    assert len(got) == MAX_RECIPIENTS
    assert got[0].address == "r0@example.net"


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\n\n--x\n"
    b"Content-Type: message/delivery-status\n\n\n--x",
    b"Content-Type: multipart/report; report-type=feedback-report\n\nno parts",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=\"x\"\n\n--x\n"
    b"Content-Type: message/delivery-status\n\nReporting-MTA: dns; a\n\n"
    b"Final-Recipient: rfc822; <<<@@@>>>\nAction: failed\nStatus: 5.1.1\n--x--",
])
def test_malformed_mime_gives_nothing_and_no_exception(raw: bytes) -> None:
    assert parse(raw, now=NOW) == ()
