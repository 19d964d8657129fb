"""Each story says when it happened, in the reader's zone and language, the same in
the HTML and the text part; and both parts cut a summary at the same word.

The clock is injected (``now=``): the real day of tests/data/realday is replayed
at 2026-02-18 07:00 UTC. Berlin is already on the 18th at 00:30 UTC when New York
is still on the 17th, so one story is "00:30" for one reader and "yesterday 19:30"
for the other.
"""

from __future__ import annotations

import email
import email.policy
import html as htmllib
import re
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from digest import config as config_mod
from digest.collect.parse import parse_feed
from digest.config import Config
from digest.mail.message import personal_for, prepare
from digest.models import Article, Feed, Rendered, Section, Selection, Story, Subscriber
from digest.render import when
from digest.render.variant import SUMMARY_LIMITS, personalise, render_variant
from digest.textcut import cut

REPO = Path(__file__).resolve().parent.parent
REALDAY = REPO / "tests" / "data" / "realday" / "feeds"
NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
DAY = date(2026, 2, 18)
BERLIN, NEW_YORK, TOKYO = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), \
    ZoneInfo("Asia/Tokyo")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# -- the label ------------------------------------------------------------------------

@pytest.mark.parametrize(("published", "zone", "language", "expected"), [
    (utc(2026, 2, 18, 5, 5), BERLIN, "en", "06:05"),
    (utc(2026, 2, 17, 23, 30), BERLIN, "en", "00:30"),            # after Berlin's midnight
    (utc(2026, 2, 17, 23, 30), NEW_YORK, "en", "yesterday 18:30"),  # New York's evening
    (utc(2026, 2, 17, 23, 30), NEW_YORK, "de", "gestern 18:30"),
    (utc(2026, 2, 17, 21, 10), BERLIN, "en", "yesterday 22:10"),
    (utc(2026, 2, 17, 21, 10), BERLIN, "de", "gestern 22:10"),
    (utc(2026, 2, 17, 21, 10), TOKYO, "en", "06:10"),             # Tokyo: the 18th already
    (utc(2026, 2, 16, 10, 0), BERLIN, "en", "16 Feb"),
    (utc(2026, 2, 16, 10, 0), BERLIN, "de", "16. Feb."),
    (utc(2026, 2, 17, 4, 0), NEW_YORK, "en", "16 Feb"),           # the 16th in New York
    (utc(2026, 3, 2, 10, 0), BERLIN, "de", "2. März"),            # (a future date: clamped
    (utc(2025, 12, 30, 10, 0), BERLIN, "en", "30 Dec 2025"),      #  upstream; shown as a date)
])
def test_label_in_the_readers_zone_and_language(published: datetime, zone: ZoneInfo,
                                                language: str, expected: str) -> None:
    assert when.label(published, NOW, zone, language) == expected


def test_a_token_carries_everything_its_label_needs() -> None:
    token = when.token(utc(2026, 2, 17, 23, 30), NOW, "de")
    assert re.fullmatch(r"\w+", token)  # safe in Jinja, MJML, URLs and quoted-printable
    assert when.fill(token, "America/New_York") == "gestern 18:30"
    assert when.fill(token, "Europe/Berlin") == "00:30"
    # a zone this machine lacks: a true time (UTC), not a failed send
    assert when.fill(token, "No/Such_Zone") == "gestern 23:30"


# -- a real day, rendered ------------------------------------------------------------

@pytest.fixture(scope="module")
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


def _articles(name: str, source: str) -> list[Article]:
    path = REALDAY / name
    arts = parse_feed(path.read_bytes(), Feed(url=f"https://feeds.example.org/{name}",
                                              name=source), now=NOW,
                      base_url=f"https://feeds.example.org/{name}")
    return sorted((a for a in arts if NOW - a.published <= timedelta(hours=48)),
                  key=lambda a: a.published, reverse=True)


# A real summary (CBS News, tests/data/realday) made long enough that the card cut
# falls in a name: the old HTML cut (170) split "Volodymyr Zelenskyy", the text (240) not.
NAMED = ("Iran and the U.S. traded threats and warnings even as negotiators sat down to "
         "discuss a deal to avert a war, and late on Tuesday evening in a long speech in Kyiv "
         "the Ukrainian president Volodymyr Zelenskyy said talks with Russia would continue "
         "on Wednesday with American mediators.")
# the card's limit falls between the two words of the name
assert NAMED.index(" Zelenskyy") < 200 < NAMED.index(" Zelenskyy") + len(" Zelenskyy")


@pytest.fixture(scope="module")
def day() -> Selection:
    outlets = [("cbs-world.xml", "CBS News"), ("npr-world.xml", "NPR"),
               ("washington-post-world.xml", "The Washington Post"), ("the-week.xml", "The Week")]
    pools = [_articles(name, source) for name, source in outlets]
    # each outlet's newest, middle and oldest report of the 48 hours
    picked = [pool[i] for pool in pools for i in (0, len(pool) // 2, -1)]
    assert len(picked) == 12
    # the day's spread: from Monday morning to this morning, across midnight in Berlin
    assert min(a.published for a in picked) < utc(2026, 2, 17, 5)
    stories = [Story(a) for a in picked]
    stories[1] = Story(replace(picked[1], summary=NAMED))
    stories[0] = Story(picked[0], others=(picked[4], picked[7]))
    return Selection(day=DAY, sections=(Section("Top stories", tuple(stories[:6])),
                                        Section("World", tuple(stories[6:]), topic="world")))


@pytest.fixture(scope="module")
def rendered(day: Selection, cfg: Config) -> Rendered:
    return render_variant(day, cfg, variant="all", now=NOW)


def _copy(rendered: Rendered, cfg: Config, zone: str | None) -> tuple[str, str]:
    reader = Subscriber(email="reader@example.net", name="Reader", timezone=zone)
    return personalise(rendered, personal_for(cfg, "secret", reader, DAY))


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Tokyo", None])
def test_every_story_shows_its_time_alike_in_html_and_text(
        day: Selection, rendered: Rendered, cfg: Config, zone: str | None) -> None:
    html, text = _copy(rendered, cfg, zone)
    tz = ZoneInfo(zone or cfg.schedule.timezone)
    shown = re.findall(r'<span class="ds-when">([^<]*)</span>', html)
    stories = day.stories
    assert len(shown) == len(stories)
    expected = [when.label(s.lead.published, NOW, tz, "en") for s in stories]
    # the lead first, then the sections in order: the same in both parts
    assert shown == expected
    flat = _flat(text)
    for story, label in zip(stories, expected, strict=True):
        assert f"{story.lead.source} · {label}" in flat
    assert "__dgst_" not in html + text


def test_readers_across_midnight_see_their_own_day(rendered: Rendered, cfg: Config,
                                                   day: Selection) -> None:
    late = [s for s in day.stories
            if s.lead.published.astimezone(BERLIN).date() == DAY
            and s.lead.published.astimezone(NEW_YORK).date() < DAY]
    assert late, "the real day has stories from after Berlin's midnight"
    berlin, _ = _copy(rendered, cfg, "Europe/Berlin")
    new_york, _ = _copy(rendered, cfg, "America/New_York")
    for story in late:
        at = story.lead.published
        assert f">{at.astimezone(BERLIN):%H:%M}</span>" in berlin
        assert f">yesterday {at.astimezone(NEW_YORK):%H:%M}</span>" in new_york


def test_html_and_text_cut_a_summary_at_the_same_word(rendered: Rendered, cfg: Config,
                                                      day: Selection) -> None:
    html, text = _copy(rendered, cfg, None)
    flat_html, flat_text = _flat(htmllib.unescape(re.sub(r"<[^>]+>", " ", html))), _flat(text)
    lead = day.lead
    assert lead is not None
    cuts = 0
    for story in day.stories:
        place = "lead" if story is lead else "card"
        shown = cut(story.lead.summary, SUMMARY_LIMITS[place])
        assert shown in flat_html and shown in flat_text, shown
        cuts += shown != story.lead.summary
    assert cuts >= 1
    named = next(s for s in day.stories if s.lead.summary == NAMED)
    shown = cut(NAMED, SUMMARY_LIMITS["card"])
    assert shown.endswith("…") and "Volodymyr" not in shown  # the name whole or not at all
    assert "Volodymyr…" not in flat_html + flat_text and shown in flat_html
    assert named.lead.summary.startswith(shown.rstrip(" …"))


def test_the_mailed_bytes_carry_each_readers_times(rendered: Rendered, cfg: Config,
                                                   day: Selection) -> None:
    """The bulk path (MIME encoded once, times spliced per zone) decodes to the same
    parts as personalise, for readers in several zones sharing one prepared message."""
    prepared = {fmt: prepare(cfg, rendered, day=DAY, fmt=fmt) for fmt in ("html", "text")}
    for zone in ("Europe/Berlin", "America/New_York", "Asia/Tokyo", None, "Europe/Berlin"):
        for fmt in ("html", "text"):
            reader = Subscriber(email="reader@example.net", name="Reader", timezone=zone,
                                format=fmt)  # type: ignore[arg-type]
            personal = personal_for(cfg, "secret", reader, DAY)
            raw = prepared[fmt].bytes_for(reader, personal, now=NOW)
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            assert isinstance(msg, EmailMessage)
            parts = {p.get_content_type(): p.get_content().replace("\r\n", "\n")
                     for p in (msg.iter_parts() if msg.is_multipart() else [msg])}
            html, text = personalise(rendered, personal)
            assert parts["text/plain"].rstrip("\n") == text.rstrip("\n")
            if fmt == "html":
                assert parts["text/html"].rstrip("\n") == html.rstrip("\n")


def test_feed_text_cannot_forge_a_time(cfg: Config, day: Selection) -> None:
    forged = when.token(utc(2020, 1, 1), NOW, "en")
    story = day.stories[2]
    sneaky = replace(story.lead, title=f"Breaking {forged} news", summary=f"x {forged} y")
    sel = Selection(day=DAY, sections=(Section("Top", (day.stories[0], Story(sneaky))),))
    html, text = _copy(render_variant(sel, cfg, variant="all", now=NOW), cfg, None)
    assert "1 Jan 2020" not in html + text and "__dgst_" not in html + text
    assert "Breaking  news" in html or "Breaking news" in _flat(text)
