"""Bounces and complaints: real report formats parsed, recorded, acted on."""

from __future__ import annotations

import json
import mailbox
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from digest import config as configuration
from digest import pipeline
from digest.mail.bounces import MAX_RECIPIENTS, parse
from digest.models import Bounce
from digest.ops import bounces as ops
from digest.ops import status
from digest.ops.bounces import FetchReport
from digest.store.facade import Finished, Store
from tests.peers import FeedServer, SmtpServer
from tests.test_e2e import digest, make_project

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


# --- acting on them: a real Maildir, the CLI as a subprocess, a real send after -------


def _as_for(name: str, old: str, new: str) -> bytes:
    """A fixture rewritten to report ``new`` instead of its own address."""
    return (DATA / name).read_bytes().replace(old.encode(), new.encode())


def _maildir(tmp_path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for raw in messages:
        box.add(raw)
    box.close()
    return tmp_path / "Maildir"


def test_fetch_suppresses_the_bounced_and_the_complainer_and_the_next_send_skips_them(
        tmp_path: Path, feed_server: FeedServer, smtp_server: SmtpServer) -> None:
    config_path = make_project(tmp_path, feed_server, smtp_server.port)
    assert digest(config_path, "collect").returncode == 0
    first = digest(config_path, "send")
    assert first.returncode == 0 and "sent 3 of 3" in first.stdout, first.stderr
    folder = _maildir(tmp_path, [
        _as_for("postfix-hard.eml", "gone@example.net", "ada@example.org"),
        _as_for("arf.eml", "annoyed@yahoo.com", "grace@example.com"),
        # Forged or misdirected: max is on the list but paused (never mailed), the
        # stranger is on no list. Neither may change anything.
        _as_for("gmail.eml", "nobody.here@gmail.com", "max@example.de"),
        _as_for("outlook.eml", "closed.account@outlook.com", "stranger@example.net"),
        b"From: kenji@example.net\nSubject: thanks\n\nLovely digest.\n",
        b"\x00\xff\xfe\r\nContent-Type: multipart/report; boundary=\n\n--\x00",  # broken MIME
    ])
    done = digest(config_path, "bounces", "fetch", "--maildir", str(folder), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "messages": 6, "hard": 1, "soft": 0, "complaints": 1, "not_reports": 2,
        "ignored": 2, "suppressed": ["ada@example.org", "grace@example.com"]}
    # The file says so too (the database suppression already holds at send time).
    roster = pipeline.load_roster(configuration.load(config_path))
    statuses = {s.email: s.status for s in roster.subscribers}
    assert statuses["ada@example.org"] == statuses["grace@example.com"] == "unsubscribed"
    assert statuses["kenji@example.net"] == "active"
    # Every message is now in cur/ and marked seen: a second fetch reads none.
    assert not list((folder / "new").iterdir())
    assert all(p.name.endswith(":2,S") for p in (folder / "cur").iterdir())
    again = digest(config_path, "bounces", "fetch", "--maildir", str(folder))
    assert again.returncode == 0 and again.stdout.startswith("read 0 messages"), again.stdout

    listed = json.loads(digest(config_path, "bounces", "--json").stdout)
    assert {(r["address"], r["kind"], r["status"], r["suppressed"]) for r in listed} == {
        ("ada@example.org", "hard", "5.1.1", True), ("grace@example.com", "complaint", "", True)}
    table = digest(config_path, "bounces")
    assert "ada@example.org" in table.stdout and "complaint" in table.stdout
    shown = digest(config_path, "status")
    assert "1 bounces (33.3%) and 1 complaints (33.33%) of 3 sent" in shown.stdout
    assert "warning: bounce rate 33.3%" in shown.stderr
    assert "warning: complaint rate 33.33%" in shown.stderr
    assert isinstance(json.loads(digest(config_path, "status", "--json").stdout), list)

    # The next day's send, a real one to the SMTP peer, leaves both out.
    config = configuration.load(config_path)
    smtp_server.received.clear()
    tomorrow = pipeline.utcnow() + timedelta(days=1)
    store = pipeline.open_store(config)
    try:
        people = pipeline.recipients(config, store, pipeline.load_roster(config))
        prepared = pipeline.prepare(config, store, now=tomorrow, subscribers=people)
        pipeline.send_digest(config, store, prepared, people, now=tomorrow, password=None)
        assert store.suppression("ada@example.org") is not None
    finally:
        store.close()
    assert {r for m in smtp_server.received for r in m.rcpt_tos} == {"kenji@example.net"}


def test_fetch_of_a_folder_that_is_no_maildir_is_one_line(tmp_path: Path,
                                                           feed_server: FeedServer) -> None:
    config_path = make_project(tmp_path, feed_server, 2525)
    done = digest(config_path, "bounces", "fetch", "--maildir", str(tmp_path / "nowhere"))
    assert done.returncode == 1
    assert "not a Maildir" in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def _journal(store: Store, day: date, *emails: str) -> None:
    """The journal of a day's real send: every address claimed and sent."""
    when = datetime.combine(day, time(7), UTC)
    store.plan_deliveries(day, [(e, "default") for e in emails], now=when)
    store.claim_many(day, list(emails), "run-1", now=when)
    store.finish_many(day, [Finished(e, "sent", "<m@x>", None, None) for e in emails], "run-1",
                      now=when)


def _soft(address: str) -> tuple[Bounce, ...]:
    return parse(_as_for("postfix-delayed.eml", "full@example.com", address), now=NOW)


def test_soft_bounces_suppress_only_past_the_limit_within_the_window(
        tmp_path: Path, feed_server: FeedServer) -> None:
    config = configuration.load(make_project(tmp_path, feed_server, 2525))
    store = pipeline.open_store(config)
    start = datetime(2026, 2, 1, 7, 30, tzinfo=UTC)
    try:
        for d in range(40):
            _journal(store, (start + timedelta(days=d)).date(), "ada@example.org")
        # Two soft bounces, then a third 15 days after the first: the window (14 days)
        # holds only two at any time, so nothing is suppressed.
        for offset in (0, 1, 15):
            report = FetchReport()
            ops.act(config, store, _soft("ada@example.org"), source="t",
                    now=start + timedelta(days=offset), report=report)
            assert report.soft == 1 and report.suppressed == []
        # Day 16: the window (from day 2) holds days 15 and 16, still two; day 17
        # makes three within 14 days (15, 16, 17): suppressed.
        report = FetchReport()
        ops.act(config, store, _soft("ada@example.org"), source="t",
                now=start + timedelta(days=16), report=report)
        assert report.suppressed == []
        ops.act(config, store, _soft("ada@example.org"), source="t",
                now=start + timedelta(days=17), report=report)
        assert report.suppressed == ["ada@example.org"]
        reason = store.suppression("ada@example.org")
        assert reason is not None and reason[0].startswith("3 soft bounces in 14 days")
    finally:
        store.close()


def test_a_report_for_an_address_not_mailed_within_the_window_changes_nothing(
        tmp_path: Path, feed_server: FeedServer) -> None:
    config = configuration.load(make_project(tmp_path, feed_server, 2525))
    store = pipeline.open_store(config)
    try:
        _journal(store, date(2026, 2, 1), "ada@example.org")
        hard = parse(_as_for("postfix-hard.eml", "gone@example.net", "ada@example.org"), now=NOW)
        report = FetchReport()
        # Mailed 17 days before: past the 14-day window, so a report now is not believed.
        ops.act(config, store, hard, source="t", now=NOW, report=report)
        assert report.ignored == 1 and report.suppressed == []
        assert store.suppression("ada@example.org") is None
        assert store.recent_bounces(date(2026, 1, 1)) == []
        # The same report a day after a send is believed.
        ops.act(config, store, hard, source="t", now=datetime(2026, 2, 2, tzinfo=UTC),
                report=report)
        assert report.suppressed == ["ada@example.org"]
    finally:
        store.close()


def test_status_warns_above_two_percent_bounces_and_a_tenth_of_a_percent_complaints(
        tmp_path: Path, feed_server: FeedServer) -> None:
    config = configuration.load(make_project(tmp_path, feed_server, 2525))
    day = date(2026, 2, 18)
    at = datetime(2026, 2, 18, 9, tzinfo=UTC)
    store = pipeline.open_store(config)
    try:
        _journal(store, day, *(f"r{i}@example.org" for i in range(1000)))
        for i in range(20):  # 2.0%: at the line, not above it
            store.record_bounce(f"r{i}@example.org", "hard" if i % 2 else "soft", "5.1.1",
                                "", "t", at)
        store.record_bounce("r999@example.org", "complaint", "", "abuse", "t", at)  # 0.1%
    finally:
        store.close()
    rates = status.bounce_rates(config, day)
    assert (rates["sent"], rates["bounces"], rates["complaints"]) == (1000, 20, 1)
    assert status.rate_warnings(rates) == []
    store = pipeline.open_store(config)
    try:
        store.record_bounce("r20@example.org", "hard", "5.1.1", "", "t", at)
        store.record_bounce("r998@example.org", "complaint", "", "abuse", "t", at)
        # The next day's reports are the next day's rate.
        store.record_bounce("r21@example.org", "hard", "5.1.1", "", "t", at + timedelta(days=1))
    finally:
        store.close()
    warned = status.rate_warnings(status.bounce_rates(config, day))
    assert [w.split(" on ")[0] for w in warned] == ["bounce rate 2.1%", "complaint rate 0.20%"]


def test_a_schema_5_file_gains_the_bounces_table_and_keeps_its_suppressions(
        tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = Store.open(path)
    store.suppress("ada@example.org", "web")
    with store.begin() as conn:  # what a digest before issue 20 left behind
        conn.exec_driver_sql("DROP TABLE bounces")
        conn.exec_driver_sql("UPDATE meta SET value = '5' WHERE key = 'schema'")
    store.close()
    store = Store.open(path)
    try:
        store.record_bounce("ada@example.org", "hard", "5.1.1", "", "t", NOW)
        assert store.bounce_counts(NOW.date())["hard"] == 1
        assert store.suppression("ada@example.org") is not None
        with store.begin() as conn:
            assert conn.exec_driver_sql(
                "SELECT value FROM meta WHERE key = 'schema'").scalar_one() == "6"
    finally:
        store.close()
