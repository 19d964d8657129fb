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
from digest.mail import headers as hd
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


# -- each field's exact bytes, and its limits (what `make mutate` found unguarded) --

def _b(text: str) -> str:
    return "=?utf-8?b?" + base64.b64encode(text.encode()).decode() + "?="


def test_header_text_and_display_name_exactly() -> None:
    assert hd.header_text("a\r\nb\tc\u2028d\u2029e\x00f\x7fg\x85h  i ") == "a b c d e f g h i"
    assert hd.header_text("  plain   words ") == "plain words"
    assert hd.header_text("a\x00b\x7fc\x1bd") == "a b c d"  # ASCII, not printable
    assert hd.header_text("Zoë\u00a0x") == "Zoë x"
    assert hd.display_name("a" * hd.NAME_MAX) == "a" * hd.NAME_MAX
    assert hd.display_name("a" * (hd.NAME_MAX + 1)) == "a" * hd.NAME_MAX
    assert hd.display_name("a" * (hd.NAME_MAX - 1) + " b") == "a" * (hd.NAME_MAX - 1)
    assert hd.NAME_MAX == 150 and hd.WIDTH == 78 and hd.HARD_WIDTH == 998


def test_encoded_words_are_cut_at_39_bytes_between_characters() -> None:
    assert hd._encoded_word(b"hi") == "=?utf-8?b?aGk=?="
    assert hd._encoded_words("") == ["=?utf-8?b??="]
    assert hd._encoded_words("a" * 39) == [_b("a" * 39)]
    assert hd._encoded_words("a" * 40) == [_b("a" * 39), _b("a")]
    assert hd._encoded_words("é" * 20) == [_b("é" * 19), _b("é")]  # 2-byte characters
    assert hd._needs_encoding("=?") and hd._needs_encoding("é") and hd._needs_encoding("\x7f")
    assert not hd._needs_encoding("") and not hd._needs_encoding("plain ~text!")


def test_fold_breaks_past_78_columns_never_after_the_field_name() -> None:
    assert hd._fold(["To:", "a" * 74]) == "To: " + "a" * 74 + "\r\n"  # 78: fits
    assert hd._fold(["To:", "a" * 70, "b" * 3]) == "To: " + "a" * 70 + " bbb\r\n"  # 78
    assert hd._fold(["To:", "a" * 70, "b" * 4]) == "To: " + "a" * 70 + "\r\n bbbb\r\n"  # 79
    assert hd._fold(["Subject:", "x" * 100]) == "Subject: " + "x" * 100 + "\r\n"
    assert hd._fold(["A:", "b" * 80, "c"]) == "A: " + "b" * 80 + "\r\n c\r\n"


def test_unstructured_exactly() -> None:
    assert hd.unstructured("Subject", "") == "Subject:\r\n"
    assert hd.unstructured("Subject", " \r\n ") == "Subject:\r\n"
    assert hd.unstructured("Subject", "Hello  world") == "Subject: Hello world\r\n"
    # A run of words needing encoding is one run of encoded words, its spaces inside.
    assert hd.unstructured("Subject", "Héllo wörld and =?x") == (
        f"Subject: {_b('Héllo wörld')} and {_b('=?x')}\r\n")
    assert hd.unstructured("Subject", "x é") == f"Subject: x {_b('é')}\r\n"
    assert hd.unstructured("Subject", "a" * 76) == "Subject: " + "a" * 76 + "\r\n"
    long = "a" * 77  # too long to fold: encoded, so it can be cut
    assert hd.unstructured("Subject", long) == (
        f"Subject: {_b('a' * 39)}\r\n {_b('a' * 38)}\r\n")


def test_phrases_atoms_quoted_and_encoded() -> None:
    assert hd._phrase("Ada Lovelace") == ["Ada", "Lovelace"]
    assert hd._phrase("Ada Lovelace", quoted=True) == ['"Ada', 'Lovelace"']
    assert hd._phrase('A. "B" C\\') == ['"A.', '\\"B\\"', 'C\\\\"']
    assert hd._phrase("Zoë") == [_b("Zoë")]
    assert hd.mailbox("To", "", "ada@example.org") == "To: ada@example.org\r\n"
    assert hd.mailbox("To", "Ada Lovelace", " ada@example.org ") == (
        "To: Ada Lovelace <ada@example.org>\r\n")
    assert hd.mailbox("From", "Dr. Ada", "ada@bücher.example") == (
        'From: "Dr. Ada" <ada@xn--bcher-kva.example>\r\n')


def test_addr_spec_quotes_and_refuses() -> None:
    assert hd.addr_spec("a b@example.org") == '"a b"@example.org'
    assert hd.addr_spec('a"b\\c@example.org') == '"a\\"b\\\\c"@example.org'
    assert hd.addr_spec("zoë.x@example.org") == "zoë.x@example.org"  # RFC 6532
    assert hd.addr_spec("a@b@example.org") == '"a@b"@example.org'
    assert hd.addr_spec("Xavier@EXAMPLE.org") == "Xavier@EXAMPLE.org"
    for bad in ("a<b@example.org", "a>b@example.org", "a\nb@example.org", "a@exa\x00mple.org"):
        with pytest.raises(ValueError, match=r"^unsafe address: "):
            hd.addr_spec(bad)
    for bad in ("@example.org", "ada@", "ada"):
        with pytest.raises(ValueError, match=r"^not an address: "):
            hd.addr_spec(bad)


def test_list_fields_exactly_and_their_refusals() -> None:
    assert hd.list_id("Daily", "daily.example.org") == 'List-Id: "Daily" <daily.example.org>\r\n'
    assert hd.list_id("", "daily.example.org") == "List-Id: <daily.example.org>\r\n"
    assert hd.list_id("", "XX.example") == "List-Id: <XX.example>\r\n"
    assert hd.list_unsubscribe("https://x.example/uX", "uX@x.example").startswith(
        "List-Unsubscribe: <https://x.example/uX>,")
    for bad in ("a<b", "a>b", "a b", "a\rb", "a\nb", "dé", "a\x7fb"):
        with pytest.raises(ValueError, match=r"^unsafe List-Id: "):
            hd.list_id("Daily", bad)
    assert hd.list_unsubscribe("https://x.example/u/t", "u@x.example") == (
        "List-Unsubscribe: <https://x.example/u/t>,\r\n"
        " <mailto:u@x.example?subject=unsubscribe>\r\n")
    for bad in ("https://x.example/é", "https://x\n", "https://x\x00", "a<b", "a>b", "a b",
                "a,b"):
        with pytest.raises(ValueError, match=r"^unsafe List-Unsubscribe target: "):
            hd.list_unsubscribe(bad, "u@x.example")
        with pytest.raises(ValueError, match=r"^unsafe List-Unsubscribe target: "):
            hd.list_unsubscribe("https://x.example/u", bad)


def test_message_id_and_date_exactly() -> None:
    assert hd.message_id("<a@b>") == "Message-ID: <a@b>\r\n"
    longest = "<" + "a" * (hd.HARD_WIDTH - 13 - 4) + "@b>"
    assert len(longest) == hd.HARD_WIDTH - 13  # the longest accepted: the line stays < 998
    assert hd.message_id(longest) == f"Message-ID: {longest}\r\n"
    for bad in (longest[:-1] + "b>", "<a b@c>", "<a\r\n@b>", "<é@b>"):
        with pytest.raises(ValueError, match=r"^unsafe Message-ID: "):
            hd.message_id(bad)
    assert hd.date(datetime(2026, 3, 4, 8, 5, 9, tzinfo=UTC)) == (
        "Date: Wed, 04 Mar 2026 08:05:09 +0000\r\n")


def test_block_order_and_optional_fields() -> None:
    base = hd.Headers(sender=hd.Mailbox("News", "news@example.org"),
                      to=hd.Mailbox("Ada", "ada@example.org"), subject="Today",
                      date=datetime(2026, 3, 4, 8, tzinfo=UTC), message_id="<m@example.org>")
    assert [n for n, _ in hd.block(base)] == ["from", "to", "subject", "date", "message-id"]
    full = replace(base, reply_to=hd.Mailbox("Desk", "desk@example.org"), list_name="Daily",
                   list_id="daily.example.org",
                   unsubscribe=("https://x.example/u/t", "u@x.example"))
    fields = dict(hd.block(full))
    assert list(fields) == ["from", "to", "reply-to", "subject", "date", "message-id", "list-id",
                            "list-unsubscribe", "list-unsubscribe-post"]
    assert fields["from"] == "From: News <news@example.org>\r\n"
    assert fields["to"] == "To: Ada <ada@example.org>\r\n"
    assert fields["subject"] == "Subject: Today\r\n"
    assert fields["date"] == "Date: Wed, 04 Mar 2026 08:00:00 +0000\r\n"
    assert fields["message-id"] == "Message-ID: <m@example.org>\r\n"
    assert fields["reply-to"] == "Reply-To: Desk <desk@example.org>\r\n"
    assert fields["list-id"] == 'List-Id: "Daily" <daily.example.org>\r\n'
    assert fields["list-unsubscribe-post"] == (
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
