"""Hostile feed titles, links and subscriber names, as a user meets them: the real
`digest` CLI in a subprocess, the feed from a loopback HTTP server, mail into a
real aiosmtpd server, and the preview's .eml from the real preview app.

Every path that makes a message (the bulk send, SMTPUTF8, `send --test`,
`render --out`, the preview) must keep exactly the headers digest meant: no Bcc
from a title shaped like an encoded word, no header block ended early, and no
`javascript:` link in either part.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from digest import config as configuration
from tests.peers import FeedServer, SmtpServer
from tests.preview_site import Running
from tests.test_e2e import digest

REPO = Path(__file__).resolve().parents[1]
CVE_TITLE = "=?utf-8?q?=0D=0ABcc:_title@evil.example?= Ferry route approved"
CVE_NAME = "=?utf-8?q?=0D=0A=0D=0AHi?= Zoe"
U2028_NAME = "Ada\u2028Bcc: name@evil.example"
MEANT = {"from", "to", "reply-to", "subject", "date", "message-id", "list-id",
         "list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type"}
READERS = {"zoe@example.org": CVE_NAME, "ada@example.org": U2028_NAME,
           "zoë@example.org": CVE_NAME}


def feed(now: datetime) -> bytes:
    when = format_datetime(now - timedelta(hours=1))
    items = [
        (CVE_TITLE, "https://news.example.com/ferry"),
        ("Council\u2028Bcc: again@evil.example votes on the budget", "javascript:alert(1)"),
        ("Harbour museum reopens", "\x01javascript:alert(2)"),
    ]
    body = "".join(
        f"<item><title><![CDATA[{t}]]></title><link><![CDATA[{u}]]></link>"
        f"<guid>g{i}</guid><pubDate>{when}</pubDate>"
        f"<description>Story {i} of the day, with enough words to summarise.</description>"
        "</item>" for i, (t, u) in enumerate(items))
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
            f"<title>Herald</title><link>https://news.example.com/</link>{body}"
            "</channel></rss>").encode()


@pytest.fixture
def project(tmp_path: Path, smtp_server: SmtpServer) -> tuple[Path, FeedServer]:
    server = FeedServer()
    server.routes["/feed.xml"] = lambda _h: (
        200, {"Content-Type": "application/rss+xml"}, feed(datetime.now(UTC)))
    server.__enter__()
    text = (REPO / "config.toml").read_text()
    start = text.index("[[feeds]]")
    end = text.index("\n[", text.rindex("[[feeds]]") + 1)
    text = (text[:start] + f'[[feeds]]\nurl = "{server.url("/feed.xml")}"\nname = "Herald"\n'
            + text[end:])
    text = text.replace("port = 2525", f"port = {smtp_server.port}")
    text = text.replace('templates = "templates"', f'templates = "{REPO / "templates"}"')
    (tmp_path / "config.toml").write_text(text)
    (tmp_path / "subscribers").mkdir()
    lines = []
    for address, name in READERS.items():
        escaped = name.replace("\u2028", "\\u2028")
        lines += ["[[subscriber]]", f'email = "{address}"', f'name = "{escaped}"', ""]
    (tmp_path / "subscribers" / "list.toml").write_text("\n".join(lines), "utf-8")
    yield tmp_path / "config.toml", server
    server.__exit__(None, None, None)


def parse(raw: bytes) -> EmailMessage:
    if not raw.isascii():  # SMTPUTF8: raw UTF-8 in headers (RFC 6532)
        return email.message_from_string(raw.decode("utf-8"),  # type: ignore[return-value]
                                         policy=email.policy.default)
    return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def check(raw: bytes, to: str, name: str) -> EmailMessage:
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    msg = parse(raw)
    assert {k.lower() for k in msg} == MEANT, list(msg)
    assert msg["Bcc"] is None and not msg.defects
    subject = str(msg["Subject"])
    assert "\n" not in subject and "=?utf-8?q?=0D=0ABcc:_title@evil.example?=" in subject
    (address,) = msg["To"].addresses
    assert address.display_name == " ".join(name.replace("\u2028", " ").split())
    assert address.addr_spec == to
    text = msg.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert "Ferry route approved" in body and "javascript" not in body.lower()
    html = msg.get_body(("html",))
    assert html is not None and "javascript" not in html.get_content().lower()
    return msg


def test_hostile_titles_and_names_through_every_path(
        project: tuple[Path, FeedServer], smtp_server: SmtpServer, tmp_path: Path) -> None:
    config, _ = project
    assert digest(config, "collect").returncode == 0

    sent = digest(config, "send")
    assert sent.returncode == 0, sent.stderr
    assert "sent 3 of 3" in sent.stdout
    # Exactly the three readers, each once: no Bcc made it into an envelope either.
    assert sorted(r for m in smtp_server.received for r in m.rcpt_tos) == sorted(READERS)
    for got in smtp_server.received:
        (rcpt,) = got.rcpt_tos
        check(got.data, rcpt, READERS[rcpt])

    smtp_server.received.clear()
    for reader in ("zoe@example.org", "zoë@example.org"):
        test = digest(config, "send", "--test", "--to", "me@example.org",
                      "--subscriber", reader)
        assert test.returncode == 0, test.stderr
        # The summary line is one line too, the title's shape shown literally.
        assert "sent a test (all variant) to me@example.org: [TEST]" in test.stdout
    for got in smtp_server.received:
        assert got.rcpt_tos == ["me@example.org"]
        msg = check(got.data, "me@example.org", CVE_NAME)
        assert str(msg["Subject"]).startswith("[TEST] ")

    for reader in READERS:
        out = tmp_path / f"out-{reader}"
        rendered = digest(config, "render", "--out", str(out), "--subscriber", reader)
        assert rendered.returncode == 0, rendered.stderr
        check((out / "digest.eml").read_bytes(), reader, READERS[reader])


def test_the_preview_eml_keeps_the_header_block(project: tuple[Path, FeedServer]) -> None:
    config_path, _ = project
    assert digest(config_path, "collect").returncode == 0
    with Running(configuration.load(config_path)) as preview:
        for reader, name in READERS.items():
            got = httpx.get(preview.url("/email.eml"), params={"subscriber": reader},
                            timeout=30)
            assert got.status_code == 200, got.text
            check(got.content, reader, name)


def test_an_editors_note_never_carries_a_personal_placeholder() -> None:
    # The note is the one text that reaches the email from the desk, not a feed: a
    # placeholder in it would become each reader's own address (and a neutral word in
    # the archive), so it is stripped like every feed text.
    from datetime import date

    from digest.models import Section, Selection
    from digest.render.personal import PLACEHOLDERS
    from digest.render.variant import clean_selection

    email_token = PLACEHOLDERS["email"]
    nested = email_token[:9] + email_token + email_token[9:]
    sel = Selection(day=date(2026, 2, 18), sections=(Section("Top", ()),),
                    note=f"Write to {email_token} or {nested} today")
    cleaned = clean_selection(sel).note
    assert "__dgst_" not in cleaned and cleaned.startswith("Write to ")
    assert clean_selection(sel).sections == sel.sections
