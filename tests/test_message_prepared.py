"""The spliced fast path (message.prepare) against the email package's own parse.

For many subscribers, ``bytes_for`` must decode to exactly what a reference body
built by the email package gives (the same text and HTML parts), and its header
values must parse back to what digest meant (tests/test_headers.py holds the
header block to that for arbitrary input).
"""

from __future__ import annotations

import email
import email.policy
import random
from datetime import UTC, date, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from digest import config as config_mod
from digest.config import Config
from digest.mail.clean import CleanMessage, clean_piece
from digest.mail.headers import display_name, mailbox
from digest.mail.message import PreparedMessage, personal_for, prepare
from digest.models import Personal, Rendered, Subscriber
from digest.render.qp import qp_line, qp_text
from digest.render.variant import personalise, render_variant
from tests.test_render import NASTY, selection

REPO = Path(__file__).resolve().parent.parent
DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SECRET = "test-secret"

NAMES = [
    "Zoë Ångström", "", "Ada Lovelace", "O'Brien, Pat", '<>&"', 'Jörg "JM" Müller',
    "Dr. Who", ".leading dot", "trailing space ", "  many   spaces  ", "a" * 120,
    "Zoë " * 40, "=?utf-8?q?looks_encoded?=", "李小龍", "Ελένη Παπαδοπούλου", "emoji 🎉🎉",
    "back\\slash", "tab\there", "x" * 80 + " " + "ü" * 30, "semi;colon", "=3D=20",
    "__dgst_name_7c1f__", "\u202eright-to-left", "ß" * 400,
]
ADDRESSES = [
    "zoe@example.net", "a.very.long.address.for.folding.tests@subdomain.example.net",
    "jorg@bücher.example", "first.last+tag@example.org", "x@y.example",
]


@pytest.fixture(scope="module")
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


@pytest.fixture(scope="module")
def rendered(cfg: Config) -> Rendered:
    return render_variant(selection(12), cfg, variant="all", now=NOW)


@pytest.fixture(scope="module")
def prepared(cfg: Config, rendered: Rendered) -> PreparedMessage:
    return prepare(cfg, rendered, day=DAY, fmt="html")


def parse(raw: bytes) -> EmailMessage:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def decoded(msg: EmailMessage) -> list[tuple[str, str]]:
    parts = list(msg.iter_parts()) if msg.is_multipart() else [msg]
    return [(p.get_content_type(), p.get_content()) for p in parts]


def reference(rendered: Rendered, sub: Subscriber, personal: Personal) -> EmailMessage:
    """The body as the email package builds it from the same personalised parts
    (no headers: those are digest.mail.headers' alone)."""
    html, text = personalise(rendered, personal)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if sub.format == "html":
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return parse(msg.as_bytes())


def headers(msg: EmailMessage) -> dict[str, str]:
    out = {k: str(v) for k, v in msg.items()}
    out["Content-Type"] = msg.get_content_type()  # the boundary differs by design
    return out


def subscribers(n: int = 120) -> list[Subscriber]:
    rng = random.Random(5)
    people = [Subscriber(email=addr, name=name) for name in NAMES for addr in ADDRESSES[:2]]
    # Readers in several zones: the story times are slots filled per zone too.
    zones = [None, "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati", "America/Adak"]
    for _ in range(n - len(people)):
        name = "".join(rng.choice("abcdeé ü<>&\"'.,;=_-漢🎉") for _ in range(rng.randint(0, 90)))
        people.append(Subscriber(email=rng.choice(ADDRESSES), name=name,
                                 timezone=rng.choice(zones)))
    return people


def test_many_subscribers_decode_exactly_like_the_reference(
        cfg: Config, rendered: Rendered, prepared: PreparedMessage) -> None:
    for sub in subscribers():
        personal = personal_for(cfg, SECRET, sub, DAY)
        fast = parse(prepared.bytes_for(sub, personal, now=NOW))
        assert decoded(fast) == decoded(reference(rendered, sub, personal)), sub
        assert not fast.defects and all(not p.defects for p in fast.walk())
        # The name as the subscriber wrote it, on one line, cut past NAME_MAX.
        to = fast["To"].addresses[0]
        assert to.display_name == display_name(sub.name), sub
        assert to.display_name == " ".join(sub.name.split())[:150].rstrip()
        assert to.addr_spec.rpartition("@")[0] == sub.email.rpartition("@")[0]
        assert len(fast.get_all("To")) == 1 and len(fast.keys()) == len(set(fast.keys()))


def test_hostile_values_are_escaped_in_html_and_raw_in_text(
        cfg: Config, prepared: PreparedMessage) -> None:
    sub = Subscriber(email="zoe@example.net", name='<b onclick="x">Bob & Co</b>')
    personal = personal_for(cfg, SECRET, sub, DAY)
    (_, text), (_, html) = decoded(parse(prepared.bytes_for(sub, personal, now=NOW)))
    assert "&lt;b onclick=&quot;x&quot;&gt;Bob &amp; Co&lt;/b&gt;" in html
    assert '<b onclick="x">' not in html
    assert 'Hello <b onclick="x">Bob & Co</b>,' in text
    assert NASTY in text and "&lt;script&gt;" in html


def test_bytes_are_transport_clean(cfg: Config, prepared: PreparedMessage) -> None:
    for sub in subscribers(60):
        raw = prepared.bytes_for(sub, personal_for(cfg, SECRET, sub, DAY), now=NOW)
        assert raw.isascii()
        assert raw.count(b"\n") == raw.count(b"\r\n")  # CRLF only
        head, body = raw.split(b"\r\n\r\n", 1)
        lines = body.split(b"\r\n")
        assert max(len(line) for line in lines) <= 76  # RFC 2045 quoted-printable
        assert not any(line.startswith(b".") for line in lines)  # no dot-stuffing needed
        assert max(len(line) for line in head.split(b"\r\n")) <= 998
        assert not any(line.endswith((b" ", b"\t")) for line in lines)


def test_same_subscriber_same_bytes_and_message_id_override(
        cfg: Config, prepared: PreparedMessage) -> None:
    sub = Subscriber(email="zoe@example.net", name="Zoë")
    personal = personal_for(cfg, SECRET, sub, DAY)
    assert prepared.bytes_for(sub, personal, now=NOW) == prepared.bytes_for(sub, personal,
                                                                            now=NOW)
    raw = prepared.bytes_for(sub, personal, now=NOW, message_id="<fixed.1@example.org>")
    assert parse(raw)["Message-ID"] == "<fixed.1@example.org>"
    with pytest.raises(ValueError):
        prepared.bytes_for(sub, personal, now=NOW, message_id="<a@b>\r\nBcc: x@y")


def test_text_format_and_test_sends(cfg: Config, rendered: Rendered) -> None:
    sub = Subscriber(email="zoe@example.net", name="Zoë Ångström", format="text")
    personal = personal_for(cfg, SECRET, sub, DAY)
    for test in (False, True):
        fast = parse(prepare(cfg, rendered, day=DAY, fmt="text", test=test)
                     .bytes_for(sub, personal, now=NOW))
        assert not fast.is_multipart() and fast.get_content_type() == "text/plain"
        assert decoded(fast) == decoded(reference(rendered, sub, personal))
        html = parse(prepare(cfg, rendered, day=DAY, fmt="html", test=test)
                     .bytes_for(sub, personal, now=NOW))
        want = headers(html) | {"Content-Type": "text/plain",
                                "Content-Transfer-Encoding": "quoted-printable"}
        assert headers(fast) == want  # the same header block whatever the format
    assert fast["Subject"] == "[TEST] " + rendered.subject


def test_non_ascii_local_part_takes_the_smtputf8_path(cfg: Config, rendered: Rendered,
                                                     prepared: PreparedMessage) -> None:
    sub = Subscriber(email="zoë@bücher.example", name="Zoë")
    personal = personal_for(cfg, SECRET, sub, DAY)
    raw = prepared.bytes_for(sub, personal, now=NOW)
    assert "To: =?utf-8?b?Wm/Dqw==?= <zoë@xn--bcher-kva.example>".encode() in raw
    assert decoded(parse(raw)) == decoded(reference(rendered, sub, personal))


def test_unsafe_personal_values_are_refused(cfg: Config, prepared: PreparedMessage) -> None:
    sub = Subscriber(email="zoe@example.net")
    bad = Personal(email=sub.email, name="x", unsubscribe_url="https://x/u>\r\nBcc: a@b",
                   unsubscribe_mailto="u@x", view_url="https://x/v")
    with pytest.raises(ValueError):
        prepared.bytes_for(sub, bad, now=NOW)
    with pytest.raises(ValueError):
        mailbox("To", "x", "a@b>\r\nBcc: c@d")


@pytest.mark.parametrize("line", [
    "", ".", " ", "a" * 200, "=" * 100, "é" * 100, ". . . ", "x" * 70 + " " * 3,
    "\t", "end with dot." * 9, "🎉" * 30 + " ",
])  # fmt: skip
def test_qp_lines_round_trip(line: str) -> None:
    import quopri

    enc = qp_text(line + "\n" + line)
    assert quopri.decodestring(enc.encode()).decode("utf-8") == (line + "\r\n" + line)
    assert all(len(x) <= 76 and not x.startswith(".") for x in enc.split("\r\n"))


@given(st.text().filter(lambda s: "\n" not in s))
def test_every_qp_line_is_clean(line: str) -> None:
    # bytes_for trusts this instead of scanning each value: see digest.mail.clean.
    assert clean_piece(qp_line(line).encode("ascii"))


def test_prepared_messages_are_marked_clean_only_when_they_are(
        cfg: Config, prepared: PreparedMessage) -> None:
    plain = Subscriber(email="zoe@example.net", name="Zoë Ångström")
    raw = prepared.bytes_for(plain, personal_for(cfg, SECRET, plain, DAY), now=NOW)
    assert isinstance(raw, CleanMessage)
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert b"  " not in body and b"\t" not in body and b" \r\n" not in body
    assert b"\r\n." not in raw and raw.count(b"\n") == raw.count(b"\r\n")
    # The name's run of blanks is folded away before it reaches the To header.
    spaced = Subscriber(email="ada@example.net", name="Ada  Two ")
    raw = prepared.bytes_for(spaced, personal_for(cfg, SECRET, spaced, DAY), now=NOW)
    assert b"To: Ada Two <ada@example.net>" in raw and isinstance(raw, CleanMessage)


@pytest.mark.parametrize("piece", [
    b"a  b", b"a \r\nb", b"a\nb", b"a\rb", b"a\r\n.b", b".a", b"a ", b"a\tb", b"a\r",
])  # fmt: skip
def test_pieces_that_break_the_promise_are_not_clean(piece: bytes) -> None:
    assert not clean_piece(piece)


_PIECE = st.lists(st.sampled_from([b"a", b" ", b".", b"\r\n", b"\r", b"\n", b"\t", b"=20"]),
                  max_size=8).map(b"".join)


@given(_PIECE, _PIECE)
def test_clean_pieces_join_into_a_clean_whole(a: bytes, b: bytes) -> None:
    # What lets bytes_for check pieces once instead of the joined 70 KB each time.
    if clean_piece(a) and clean_piece(b):
        joined = a + b
        assert b"  " not in joined and b" \r\n" not in joined and b"\r\n." not in joined
        assert joined.count(b"\r") == joined.count(b"\n") == joined.count(b"\r\n")
