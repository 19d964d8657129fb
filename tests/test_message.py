from __future__ import annotations

import email
import email.policy
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest import config as config_mod
from digest.config import Config
from digest.mail.message import (
    make_token,
    message_bytes,
    message_id,
    personal_for,
    read_token,
)
from digest.models import Article, Rendered, Section, Selection, Story, Subscriber
from digest.render.variant import PLACEHOLDERS, render_variant

REPO = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SECRET = "test-secret"


@pytest.fixture
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


@pytest.fixture
def rendered(cfg: Config) -> Rendered:
    a = Article(feed_url="https://h.example/feed", source="Harbour Herald", guid="1",
                url="https://news.example.com/1?a=1&b=2", title="Ferry route approved",
                summary="The first sailings are expected in spring.", published=NOW)
    sel = Selection(day=DAY, sections=(Section("Top stories", (Story(a),)),))
    return render_variant(sel, cfg, variant="all", now=NOW)


SUB = Subscriber(email="zoe@example.net", name="Zoë Ångström")


def build(cfg: Config, rendered: Rendered, sub: Subscriber = SUB, *, now: datetime = NOW,
          test: bool = False) -> bytes:
    personal = personal_for(cfg, SECRET, sub, DAY)
    return message_bytes(cfg, rendered, sub, personal, day=DAY, now=now, test=test)


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def test_multipart_alternative_text_first_then_html(cfg: Config, rendered: Rendered) -> None:
    msg = parse(build(cfg, rendered))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = (p.get_content() for p in parts)
    assert "Hello Zoë Ångström," in text and "Zoë Ångström" in html
    assert "https://news.example.com/1?a=1&b=2" in text
    assert 'href="https://news.example.com/1?a=1&amp;b=2"' in html
    for token in PLACEHOLDERS.values():
        assert token not in text and token not in html


def test_lines_end_in_crlf(cfg: Config, rendered: Rendered) -> None:
    raw = build(cfg, rendered)
    assert raw.count(b"\n") == raw.count(b"\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_required_headers(cfg: Config, rendered: Rendered) -> None:
    msg = parse(build(cfg, rendered))
    personal = personal_for(cfg, SECRET, SUB, DAY)
    assert msg["From"] == "The Daily Selection <digest@example.org>"
    assert msg["To"].addresses[0].addr_spec == "zoe@example.net"
    assert msg["Reply-To"] == "editors@example.org"
    assert msg["Subject"] == "The Daily Selection — 27 Nov 2026: Ferry route approved"
    assert msg["Date"].datetime == NOW
    assert msg["Message-ID"] == message_id(cfg, DAY, "zoe@example.net")
    assert msg["List-Id"] == '"The Daily Selection" <daily.example.org>'
    assert msg["List-Unsubscribe"] == (
        f"<{personal.unsubscribe_url}>, <mailto:unsubscribe@example.org?subject=unsubscribe>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_all("MIME-Version") == ["1.0"]


def test_list_unsubscribe_is_not_encoded_when_long(cfg: Config, rendered: Rendered) -> None:
    sub = Subscriber(email="a.very.long.address.for.folding.tests@subdomain.example.net")
    raw = build(cfg, rendered, sub)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    field = head.split("List-Unsubscribe: ", 1)[1].split("\r\nList-Unsubscribe-Post", 1)[0]
    assert "=?" not in field
    url = personal_for(cfg, SECRET, sub, DAY).unsubscribe_url
    assert parse(raw)["List-Unsubscribe"].startswith(f"<{url}>, <mailto:")


def test_message_id_is_stable_per_list_day_and_address(cfg: Config, rendered: Rendered) -> None:
    first = parse(build(cfg, rendered))["Message-ID"]
    again = parse(build(cfg, rendered, now=NOW + timedelta(minutes=5)))["Message-ID"]
    assert first == again
    assert first.startswith("<") and first.endswith("@example.org>")
    assert "zoe" not in first  # the address is not exposed
    assert message_id(cfg, DAY + timedelta(days=1), SUB.email) != first
    assert message_id(cfg, DAY, "other@example.net") != first
    assert message_id(cfg, DAY, "ZOE@example.net") == first


def test_test_send_is_marked_and_gets_its_own_message_id(cfg: Config, rendered: Rendered
                                                         ) -> None:
    msg = parse(build(cfg, rendered, test=True))
    assert msg["Subject"].startswith("[TEST] The Daily Selection")
    assert msg["Message-ID"] != message_id(cfg, DAY, SUB.email)
    assert msg["Message-ID"].endswith("@example.org>")


def test_subject_cannot_inject_headers(cfg: Config, rendered: Rendered) -> None:
    evil = replace(rendered, subject="Hello\r\nBcc: x@y\nX-Evil: 1")
    msg = parse(build(cfg, evil))
    assert msg["Bcc"] is None and msg["X-Evil"] is None
    assert msg["Subject"] == "Hello Bcc: x@y X-Evil: 1"


def test_utf8_display_name_round_trips(cfg: Config, rendered: Rendered) -> None:
    raw = build(cfg, rendered)
    assert raw.isascii()  # encoded words, no raw UTF-8 in headers for an ASCII address
    to = parse(raw)["To"].addresses[0]
    assert to.display_name == "Zoë Ångström"


def test_idna_domain_is_punycoded(cfg: Config, rendered: Rendered) -> None:
    sub = Subscriber(email="jorg@bücher.example", name='Jörg "JM" Müller')
    to = parse(build(cfg, rendered, sub))["To"].addresses[0]
    assert to.addr_spec == "jorg@xn--bcher-kva.example"
    assert to.display_name == 'Jörg "JM" Müller'


def test_text_subscribers_get_a_single_text_part(cfg: Config, rendered: Rendered) -> None:
    sub = replace(SUB, format="text")
    msg = parse(build(cfg, rendered, sub))
    assert not msg.is_multipart()
    assert msg.get_content_type() == "text/plain"
    assert "https://news.example.com/1?a=1&b=2" in msg.get_content()
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_personal_for(cfg: Config) -> None:
    p = personal_for(cfg, SECRET, SUB, DAY)
    token = p.unsubscribe_url.rsplit("/", 1)[1]
    assert p.unsubscribe_url == f"http://127.0.0.1:8026/unsubscribe/{token}"
    assert read_token(SECRET, token, cfg.newsletter.list_id) == SUB.email
    assert p.view_url == "http://127.0.0.1:8026/view/2026-11-27"
    assert p.unsubscribe_mailto == "unsubscribe@example.org"
    assert personal_for(cfg, SECRET, Subscriber(email="x@example.net"), DAY).name == "there"
    custom = cfg.with_overrides(newsletter={"unsubscribe_mailto": "leave@lists.example.org"})
    assert personal_for(custom, SECRET, SUB, DAY).unsubscribe_mailto == "leave@lists.example.org"


def test_token_round_trips_and_is_url_safe() -> None:
    for addr in ("zoe@example.net", "jörg+news@bücher.example", "a@b"):
        token = make_token(SECRET, addr, "daily.example.org")
        assert all(c.isalnum() or c in "-_." for c in token)
        assert read_token(SECRET, token, "daily.example.org") == addr


def test_tampered_tokens_are_rejected() -> None:
    token = make_token(SECRET, "zoe@example.net", "daily.example.org")
    payload, mac = token.split(".")
    other = make_token(SECRET, "eve@example.net", "daily.example.org").split(".")[0]
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    for bad in (f"{other}.{mac}", f"{payload}.{flipped}", payload, f"{payload}.", "",
                "not a token", "%%%.%%%", f"{payload}.{mac}x"):
        assert read_token(SECRET, bad, "daily.example.org") is None, bad
    assert read_token("other-secret", token, "daily.example.org") is None
    assert read_token(SECRET, token, "weekly.example.org") is None


def test_non_ascii_local_part_uses_smtputf8(cfg: Config, rendered: Rendered) -> None:
    sub = Subscriber(email="zoë@bücher.example", name="Zoë")
    raw = build(cfg, rendered, sub)
    head = raw.split(b"\r\n\r\n", 1)[0].decode("utf-8")
    # The address is raw UTF-8 (RFC 6532); the name is encoded like everywhere else,
    # so one header function serves both kinds of message.
    assert "To: =?utf-8?b?Wm/Dqw==?= <zoë@xn--bcher-kva.example>\r\n" in head
    msg = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    to = msg["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Zoë", "zoë@xn--bcher-kva.example")
