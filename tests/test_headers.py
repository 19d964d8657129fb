"""No outside text can change the headers of a message digest makes.

Feed titles, subscriber names and config strings shaped like RFC 2047 encoded words
that decode to CR, LF, NUL or U+2028 (the class of CVE-2024-6923), very long
tokens and mixed scripts: through every path that makes a message (the bulk splice
in both formats, SMTPUTF8, test sends, and ``message_bytes``, which `render --out`,
the preview's .eml and `send --test` use), the bytes parse back with exactly the
header set digest meant, a one-line Subject and To equal to the normalised input,
and no line past 998 octets.
"""

from __future__ import annotations

import base64
import email
import email.policy
import unicodedata
from dataclasses import replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from digest import config as config_mod
from digest.config import Config
from digest.mail.headers import display_name, header_text, mailbox, unstructured
from digest.mail.message import message_bytes, personal_for, prepare
from digest.models import Article, Rendered, Section, Selection, Story, Subscriber
from digest.render.variant import render_variant

REPO = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SECRET = "test-secret"

# What digest writes, and nothing else: no Bcc, no header of a feed's making.
MEANT = {"from", "to", "reply-to", "subject", "date", "message-id", "list-id",
         "list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type"}
NASTY_PAYLOADS = ["\r\n", "\r\nBcc: victim@evil.example", "\n\nHi", "\0", "\u2028X-Evil: 1",
                  "\r\n\r\n<html>body</html>", "\x85", "a\rb"]


def _q(text: str) -> str:
    return "".join(c if c.isalnum() else "".join(f"={b:02X}" for b in c.encode())
                   for c in text)


def _encoded(payload: str, kind: str) -> str:
    if kind == "b":
        return f"=?utf-8?b?{base64.b64encode(payload.encode()).decode()}?="
    return f"=?utf-8?q?{_q(payload)}?="


payloads = st.one_of(st.sampled_from(NASTY_PAYLOADS),
                     st.text(alphabet=st.sampled_from("\r\n\0\u2028\u2029\x85 aZ:é漢"),
                             max_size=20))
encoded_words = st.builds(_encoded, payloads, st.sampled_from(["b", "q", "B", "Q"]))
outside_text = st.lists(
    st.one_of(encoded_words, st.text(max_size=30), st.sampled_from(
        ["x" * 300, "ü" * 200, "🎉" * 60, "Ελένη", "李小龍", "\u202eevil", "=?", "?=", '"', "\\",
         "<a@b>", ",", ";", "Bcc:", "\t", "  "])),
    max_size=6).map(" ".join)


@pytest.fixture(scope="module")
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


@pytest.fixture(scope="module")
def base(cfg: Config) -> Rendered:
    a = Article(feed_url="https://h.example/feed", source="Harbour Herald", guid="1",
                url="https://news.example.com/1", title="Ferry route approved",
                summary="The first sailings are expected in spring.", published=NOW)
    sel = Selection(day=DAY, sections=(Section("Top stories", (Story(a),)),))
    return render_variant(sel, cfg, variant="all", now=NOW)


def parse(raw: bytes) -> EmailMessage:
    if raw.isascii():
        msg = email.message_from_bytes(raw, policy=email.policy.default)
    else:  # SMTPUTF8: raw UTF-8 headers (RFC 6532)
        msg = email.message_from_string(raw.decode("utf-8"), policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def check(raw: bytes, *, subject: str, name: str, address: str, list_name: str) -> None:
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert raw.count(b"\n") == raw.count(b"\r\n")
    msg = parse(raw)
    assert not msg.defects, msg.defects
    assert {k.lower() for k in msg} == MEANT | (
        {"content-transfer-encoding"} if not msg.is_multipart() else set())
    assert len(msg.keys()) == len(set(msg.keys()))  # each once
    got = str(msg["Subject"])
    assert got == header_text(subject) and "\n" not in got and "\r" not in got
    to = msg["To"].addresses
    assert len(to) == 1
    assert to[0].display_name == display_name(name)
    assert to[0].addr_spec == address
    assert msg["List-Id"].endswith("<daily.example.org>")
    assert msg["From"].addresses[0].addr_spec == "digest@example.org"
    assert msg["From"].addresses[0].display_name == display_name(list_name)
    # The body is where digest put it: the header block did not end early.
    body = msg.get_body(("plain",))
    assert body is not None and "unsubscribe" in body.get_content().lower()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(title=outside_text, name=outside_text, fmt=st.sampled_from(["html", "text"]),
       test=st.booleans(), utf8_local=st.booleans())
@example(title="=?utf-8?q?=0D=0ABcc:_x@evil.example?= News", name="=?utf-8?q?=0D=0A=0D=0AHi?=",
         fmt="html", test=False, utf8_local=False)
@example(title="a", name="Zoë " * 400, fmt="html", test=True, utf8_local=True)
def test_outside_text_never_changes_the_header_block(
        cfg: Config, base: Rendered, title: str, name: str, fmt: str, test: bool,
        utf8_local: bool) -> None:
    rendered = replace(base, subject=f"The Daily Selection — 27 Nov 2026: {title}")
    email_address = "zoë@example.net" if utf8_local else "zoe@example.net"
    sub = Subscriber(email=email_address, name=name, format=fmt)  # type: ignore[arg-type]
    personal = personal_for(cfg, SECRET, sub, DAY)
    expect = {"subject": ("[TEST] " if test else "") + rendered.subject, "name": name,
              "address": email_address, "list_name": "The Daily Selection"}
    spliced = prepare(cfg, rendered, day=DAY, fmt=fmt, test=test)  # type: ignore[arg-type]
    check(spliced.bytes_for(sub, personal, now=NOW), **expect)
    check(message_bytes(cfg, rendered, sub, personal, day=DAY, now=NOW, test=test), **expect)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(newsletter=outside_text, title=outside_text)
def test_config_strings_and_rendered_titles_are_safe_too(cfg: Config, newsletter: str,
                                                         title: str) -> None:
    # The newsletter's name reaches From, List-Id and the subject; the title goes
    # through the real render (make_subject, clip) rather than straight in.
    if any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in newsletter):
        with pytest.raises(ValidationError, match="control character or line break"):
            cfg.with_overrides(newsletter={"name": newsletter})
        return  # refused with one line by `digest`: never reaches a message
    custom = cfg.with_overrides(newsletter={"name": newsletter})
    a = Article(feed_url="https://h.example/feed", source="Herald", guid="1",
                url="https://news.example.com/1", title=title or "x", summary="s",
                published=NOW)
    rendered = render_variant(Selection(day=DAY, sections=(Section("Top", (Story(a),)),)),
                              custom, variant="all", now=NOW)
    sub = Subscriber(email="zoe@example.net", name=title)
    raw = message_bytes(custom, rendered, sub, personal_for(custom, SECRET, sub, DAY),
                        day=DAY, now=NOW)
    check(raw, subject=rendered.subject, name=title, address="zoe@example.net",
          list_name="The Daily Selection")
    list_id = str(parse(raw)["List-Id"])
    assert "\n" not in list_id and list_id.endswith("<daily.example.org>")


@pytest.mark.parametrize("value", ["plain words", "Zoë", "=?utf-8?q?=0D=0A?=", "a" * 2000,
                                   "x " * 600, "🎉" * 300])
def test_fields_fold_within_the_limits(value: str) -> None:
    for line in (unstructured("Subject", value) + mailbox("To", value, "a@b.example")
                 ).split("\r\n"):
        assert len(line.encode()) <= 998
        if "=?" not in line and " " in value:
            assert len(line) <= 78 or not any(c == " " for c in line.strip())


def test_the_cve_shape_is_literal_text_not_a_header() -> None:
    raw = (unstructured("Subject", "=?utf-8?q?=0D=0ABcc:_x@evil.example?=") + "\r\nbody").encode()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "=?utf-8?q?=0D=0ABcc:_x@evil.example?="
    # ...and the email package, given the same value, would have written a Bcc: the
    # reason digest encodes it itself (if this ever stops failing, Python fixed it).
    unsafe = EmailMessage(policy=email.policy.SMTP)
    unsafe["Subject"] = "=?utf-8?q?=0D=0ABcc:_x@evil.example?="
    assert b"\r\nBcc: x@evil.example" in unsafe.as_bytes()
