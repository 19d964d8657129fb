"""Story summaries (digest.rank.summarise): two or three sentences a story's outlets
published, each credited, on the labelled real day and against hostile members; the
selection carries them and both parts of the email show them."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from digest import config as config_mod
from digest.config import Config
from digest.models import Article, Section, Selection, Sentence, Story, Summary
from digest.plaintext import collapse, html_to_text
from digest.rank import select as ranker
from digest.rank.summarise import SAME_WORDS, _Candidate, _choose, _content_words, summarise
from digest.render.variant import render_variant
from digest.textcut import sentence_ends
from tests.clusterset import load_realday

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def realday_events() -> dict[str, list[Article]]:
    """The real day's events that more than one outlet reported, lead first as
    ranking would put it (the newest report)."""
    day = load_realday()
    events: dict[str, list[Article]] = defaultdict(list)
    for a, label in zip(day.articles, day.labels, strict=True):
        events[label].append(a)
    multi = {e: sorted(arts, key=lambda a: a.published, reverse=True)
             for e, arts in events.items() if len({a.source for a in arts}) > 1}
    assert len(multi) == 5  # the labelled day's multi-outlet events (events.toml)
    return multi


@pytest.fixture
def cfg() -> Config:
    return config_mod.load(REPO / "config.toml")


def _texts(a: Article) -> list[str]:
    """Every text of a member as a reader could see it: its teaser and each paragraph
    (or heading, list item, cell) of its body."""
    blocks = re.split(r"</?(?:p|div|br|li|h[1-6]|td|blockquote|figcaption)\b[^>]*>",
                      a.content_html)
    return [collapse(a.summary), *(html_to_text(b) for b in blocks)]


def _whole_sentence_in(sentence: str, text: str) -> bool:
    """``sentence`` stands in ``text`` verbatim, from a sentence start to a sentence
    end by textcut's rule (not a piece of a longer sentence)."""
    starts = {0, *(e for e in sentence_ends(text + " X"))}
    ends = set(sentence_ends(text + " X"))
    for m in re.finditer(re.escape(sentence), text):
        begin = m.start()
        while begin > 0 and text[begin - 1] == " ":
            begin -= 1
        if (begin in starts or m.start() in starts) and m.end() in ends:
            return True
    return False


def _check(summary: Summary, members: list[Article]) -> None:
    assert 2 <= len(summary.sentences) <= 3
    texts = [s.text for s in summary.sentences]
    assert len(set(texts)) == len(texts)
    words = [_content_words(t) for t in texts]
    for i in range(len(words)):
        for j in range(i):
            shorter = min(len(words[i]), len(words[j]))
            assert len(words[i] & words[j]) < SAME_WORDS * shorter, (texts[i], texts[j])
    for s in summary.sentences:
        credited = [a for a in members if a.source == s.source]
        assert credited, f"credited to {s.source}, not a member"
        assert any(_whole_sentence_in(s.text, t) for a in credited for t in _texts(a)), \
            f"not a whole sentence of {s.source}: {s.text!r}"
        assert s.text.rstrip("\"'”’)").endswith((".", "!", "?"))
        assert not s.text.endswith(("…", "..."))
        assert all(s.text.rstrip(".!?").casefold() != a.title.casefold() for a in members)


def test_every_multi_outlet_event_of_the_real_day(realday_events: dict[str, list[Article]]
                                                  ) -> None:
    for event, members in realday_events.items():
        summary = summarise(Story(members[0], tuple(members[1:])))
        assert summary is not None, event
        _check(summary, members)
        # Drawn from what several outlets said, not one outlet's teaser.
        assert len({s.source for s in summary.sentences}) >= 2, event


def test_one_outlet_gets_no_summary(realday_events: dict[str, list[Article]]) -> None:
    members = realday_events["rubio-budapest"]
    one = [replace(a, source="Only Outlet") for a in members]
    assert summarise(Story(one[0], tuple(one[1:]))) is None


# -- hostile members -------------------------------------------------------------

def _art(n: int, source: str, title: str, summary: str, body: str = "") -> Article:
    slug = source.lower().replace(" ", "-")
    return Article(feed_url=f"https://{slug}.example/feed", source=source, guid=f"{slug}-{n}",
                   url=f"https://{slug}.example/{n}", title=title, summary=summary,
                   published=NOW - timedelta(hours=n), content_html=body, id=n)


_HEADLINE = "Harbour city opens the longest suspension bridge in Europe"
_GOOD = [
    _art(1, "Harbour Herald", _HEADLINE,
         "The Harbour city opened the longest suspension bridge in Europe on Monday. "
         "Dr. Ana Ruiz, the chief engineer, said the U.S. steel cables were tested for "
         "three years before the first car crossed.",
         "<p>The bridge spans 2.1 kilometres across the bay and cost 1.4 billion euros.</p>"
         "<p>Ferries that carried 9,000 commuters a day will stop running in March.</p>"),
    _art(2, "Northern Ledger", "Record bridge opens over the bay after a decade",
         "A record-breaking suspension bridge opened over the bay on Monday after a decade "
         "of construction.",
         "<p><strong>In brief</strong></p><h2>What happened</h2>"
         "<h3>Why does the new suspension bridge over the bay matter to the city?</h3>"
         "<p>Thousands walked across the new suspension bridge over "
         "the bay before it opened to traffic on Monday.</p>"
         "<p>Engineers spent three years testing the steel cables of the bridge.</p>"),
]


def _summary(*extra: Article) -> Summary:
    members = [*_GOOD, *extra]
    got = summarise(Story(members[0], tuple(members[1:])))
    assert got is not None
    _check(got, members)
    return got


def test_a_member_that_is_one_huge_sentence_gives_nothing() -> None:
    # Made of the event's own words, so it would be the most central "sentence".
    huge = ("The longest suspension bridge in Europe opened in the Harbour city on Monday "
            "after engineers tested its steel cables for three years"
            + " and crowds walked across the new suspension bridge over the bay" * 60)
    got = _summary(_art(3, "Run On Daily", "Bridge opened, officials say", huge,
                        f"<p>{huge}.</p>"))
    assert all(s.source != "Run On Daily" for s in got.sentences)
    assert all(len(s.text) < 400 for s in got.sentences)


_SHORT = [
    _art(1, "Harbour Herald", _HEADLINE,
         "Crowds cheered as the first cars crossed the new bridge over the bay on Monday."),
    _art(2, "Northern Ledger", "Record bridge opens over the bay after a decade",
         "Engineers spent three years testing the steel cables of the new bridge."),
]


def test_a_member_in_another_language_gives_nothing() -> None:
    # Two English sentences leave the third place open to anything else usable.
    german = _art(3, "Hafenblatt", "Längste Hängebrücke Europas in der Hafenstadt eröffnet",
                  "Rekordbrücke eröffnet: Tausende Besucher feiern Europas längste Hängebrücke. "
                  "Die Stahlseile der Brücke wurden drei Jahre lang getestet, sagte die "
                  "Ingenieurin.")
    # An English report that quotes a German sentence: the quote is not English.
    quoting = _art(4, "Civic Wire", "Crowds of the city and the region are at the bridge "
                   "as it opens to the public",
                   "Die Stahlseile der Brücke wurden drei Jahre lang von den Ingenieuren "
                   "getestet, sagte Ana Ruiz. Crowds came.")
    members = [*_SHORT, german, quoting]
    got = summarise(Story(members[0], tuple(members[1:])))
    assert got is not None
    _check(got, members)
    assert [s.source for s in got.sentences] in (["Harbour Herald", "Northern Ledger"],
                                                 ["Northern Ledger", "Harbour Herald"])


def test_a_german_story_is_summarised_in_german() -> None:
    lead = _art(1, "Hafenblatt", "Längste Hängebrücke Europas in der Hafenstadt eröffnet",
                "Die Hafenstadt hat am Montag die längste Hängebrücke Europas eröffnet. "
                "Die Stahlseile der Brücke wurden drei Jahre lang getestet, sagte die "
                "Ingenieurin am Montag.")
    other = _art(2, "Nordkurier", "Rekordbrücke über die Bucht ist offen",
                 "Tausende sind am Montag über die neue Hängebrücke in der Bucht gelaufen. "
                 "Die Fähren in der Bucht werden im März nicht mehr fahren, sagte die Stadt.")
    english = _GOOD[1]
    got = summarise(Story(lead, (other, english)))
    assert got is not None
    _check(got, [lead, other, english])
    assert {s.source for s in got.sentences} <= {"Hafenblatt", "Nordkurier"}


def test_boilerplate_only_member_gives_nothing() -> None:
    junk = _art(3, "Pressroom Blog", "Bridge news",
                "The post Harbour city opens the longest suspension bridge appeared first on "
                "Pressroom Blog.",
                "<p>Share this: Click to share on Twitter (Opens in new window)</p>"
                "<p>Continue reading “Harbour city opens the longest bridge”</p>"
                "<p>Related posts: Bridge one, Bridge two, Bridge three</p>")
    got = _summary(junk)
    assert all(s.source != "Pressroom Blog" for s in got.sentences)
    shown = " ".join(s.text for s in got.sentences)
    assert not re.search(r"appeared first|Continue reading|Click to share|Related posts",
                         shown)


# Each would be central (the event's own words), and each is something a reader must
# not get as a sentence of the summary. (teaser, body)
_NOT_SENTENCES = {
    "headline": (f"{_HEADLINE}.", f"<p>{_HEADLINE}.</p>"),
    "cut at the end": ("Thousands of people walked across the new suspension bridge over "
                       "the bay on Monday before its steel cables were…", ""),
    "cut inside": ("Thousands of people walked across the new suspension bridge over the bay "
                   "on Monday before its steel cables were... Officials said more.", ""),
    "mid-thought": ("and thousands of people walked across the new suspension bridge over "
                    "the bay on Monday.", ""),
    "open quote": ("“Thousands of people walked across the new suspension bridge over the "
                   "bay on Monday. It is ours now.", ""),
    "address": ("Thousands of people walked across the new suspension bridge, see "
                "https://harbour.example/bridge for the bay on Monday.", ""),
    "credit": ("Photo: Thousands of people walked across the new suspension bridge over the "
               "bay on Monday.", ""),
    "leans on the one before": ("But thousands of people walked across the new suspension "
                                "bridge over the bay on Monday.", ""),
    "sells the page": ("Watch thousands of people walk across the new suspension bridge over "
                       "the bay on Monday.", ""),
    "heading": ("", "<h2>What did thousands of people see on the new suspension bridge over "
                    "the bay on Monday?</h2><p>Bridge day.</p>"),
}


@pytest.mark.parametrize("what", list(_NOT_SENTENCES))
def test_what_is_not_a_whole_clean_sentence_is_left_out(what: str) -> None:
    teaser, body = _NOT_SENTENCES[what]
    # Two clean sentences leave the third place open to anything else usable.
    members = [*_SHORT, _art(3, f"Outlet {what}", "Bridge story", teaser, body)]
    got = summarise(Story(members[0], tuple(members[1:])))
    assert got is not None
    _check(got, members)
    assert {s.source for s in got.sentences} == {"Harbour Herald", "Northern Ledger"}


def test_the_same_sentence_from_two_outlets_is_shown_once() -> None:
    wire = ("Ferries that carried 9,000 commuters a day will stop running in March, "
            "the port authority said.")
    copies = [_art(3 + k, name, f"Bridge opens in harbour city ({name})", wire)
              for k, name in enumerate(("Wire One", "Wire Two", "Wire Three"))]
    got = _summary(*copies)
    assert sum("9,000 commuters" in s.text for s in got.sentences) <= 1


# -- in the selection ------------------------------------------------------------

def test_the_selection_summarises_its_multi_outlet_stories(cfg: Config) -> None:
    day = load_realday()
    cfg = cfg.with_overrides(selection={"max_age_hours": 48})
    ranked = ranker.rank(day.articles, cfg, now=NOW, day=NOW.date())
    chosen = ranked.selection.stories
    assert any(s.summary for s in chosen)
    for s in chosen:
        outlets = {a.source for a in s.articles}
        assert (s.summary is not None) == (len(outlets) > 1), s.lead.title
        if s.summary:
            _check(s.summary, list(s.articles))
    # One story, one object: the day's list holds the summarised copy (explain and
    # the variants find a selected story by identity).
    ids = {id(s) for s in ranked.stories}
    assert all(id(s) in ids for s in chosen)
    assert all(ranked.story_names(s) for s in chosen if s.summary)
    assert set(ranked.names or {}) == ids  # no id of a replaced story left to be reused
    # Only the selected are summarised (the cost stays with a dozen stories).
    assert not any(s.summary for s in ranked.stories if id(s) not in
                   {id(c) for c in chosen})
    off = ranker.rank(day.articles, cfg.with_overrides(selection={"summaries": False}),
                      now=NOW, day=NOW.date())
    assert not any(s.summary for s in off.selection.stories)


# -- in the email ----------------------------------------------------------------

def _story() -> Story:
    members = list(_GOOD)
    summary = summarise(Story(members[0], tuple(members[1:])))
    assert summary is not None
    return Story(members[0], tuple(members[1:]), score=1.0, summary=summary)


def _sel(*stories: Story) -> Selection:
    return Selection(day=NOW.date(), sections=(Section("Top stories", stories),))


def _html_text(html: str) -> str:
    return collapse(html_to_text(html)).replace("&nbsp;", " ")


@pytest.mark.parametrize("place", ["lead", "card"])
def test_both_parts_show_each_sentence_with_its_credit(cfg: Config, place: str) -> None:
    story = _story()
    plain = Story(_art(9, "Byte Street", "Chip plant opens", "A chip plant opened."), score=2)
    sel = _sel(plain, story) if place == "card" else _sel(story)
    rendered = render_variant(sel, cfg, variant="all", now=NOW)
    html, text = _html_text(rendered.html), collapse(rendered.text)
    for s in story.summary.sentences if story.summary else ():
        assert f"{s.text} — {s.source}" in html
        assert f"{s.text} — {s.source}" in text
    # In place of the lead's teaser, which the summary would repeat.
    assert story.lead.summary[:60] not in html.replace(
        story.summary.sentences[0].text if story.summary else "", "")


def test_a_summary_cannot_smuggle_a_personal_token(cfg: Config) -> None:
    story = _story()
    assert story.summary is not None
    sneaky = Summary((Sentence("Readers __dgst_email_7c1f__ crossed the bridge on Monday.",
                               "Harbour __dgst_name_7c1f__ Herald"),
                      *story.summary.sentences[1:]))
    rendered = render_variant(_sel(replace(story, summary=sneaky)), cfg, variant="all",
                              now=NOW)
    for part in (rendered.text, _html_text(rendered.html)):
        line = part[part.index("Readers"):][:80]
        assert "__dgst_" not in line
        assert "crossed the bridge on Monday. — Harbour Herald" in collapse(line)


def test_what_the_outlets_agree_on_beats_one_outlets_colour() -> None:
    # The lead spends most of its words on the architect's life; two other outlets
    # report the opening. The summary is the opening, not the biography.
    lead = _art(1, "Harbour Herald", _HEADLINE,
                "The architect grew up in a fishing village and drew boats as a child. "
                "Her father repaired nets for the fishing fleet of the village for forty "
                "years. Her mother sold the fish of the village fleet at the market. "
                "She drew the boats of the fishing fleet in the village harbour every day. "
                "The fishermen of her village taught her to mend nets and sail boats. "
                "Her first commission was a small chapel for the fishermen of her village. "
                "She still sails a fishing boat from her village harbour every summer. "
                "Thousands of people crossed the new bridge over the bay when it opened on "
                "Monday.")
    others = (
        _art(2, "Northern Ledger", "Record bridge opens over the bay",
             "Traffic began to cross the new suspension bridge over the bay on Monday "
             "morning. Ferries across the bay will stop running once the bridge is open."),
        _art(3, "Civic Wire", "Bay bridge open to traffic",
             "Cars and cyclists crossed the bay on the new bridge for the first time on "
             "Monday. The bridge replaces the ferries that crossed the bay for a century."),
    )
    got = summarise(Story(lead, others))
    assert got is not None
    _check(got, [lead, *others])
    shown = " ".join(s.text for s in got.sentences)
    assert not re.search(r"architect|father|Lisbon|chapel", shown), shown


def test_the_paragraph_the_body_limit_cuts_is_not_read() -> None:
    from digest.rank.summarise import BODY_CHARS

    # The limit falls just after "3." of "3.5 percent": "… rose 3." looks whole.
    filler = "<p>Budget talks.</p>"  # too short to be a summary sentence
    head = filler * ((BODY_CHARS - 200) // len(filler))
    cut = "<p>Ferry fares across the bay after the suspension bridge opened rose "
    pad = "x" * (BODY_CHARS - len(head) - len("<!---->") - len(cut) - len("3."))
    body = f"{head}<!--{pad}-->{cut}3.5 percent.</p>"
    assert body[:BODY_CHARS].endswith("rose 3.")
    # Two clean sentences leave the third place open to anything else usable.
    members = [*_SHORT, _art(3, "Long Read", "Bridge story", "", body)]
    got = summarise(Story(members[0], tuple(members[1:])))
    assert got is not None
    _check(got, members)
    assert {s.source for s in got.sentences} == {"Harbour Herald", "Northern Ledger"}


def test_a_story_of_many_copies_from_one_outlet_still_hears_the_other() -> None:
    copies = [_art(10 + k, "Wire One", f"Bridge opens {k}",
                   f"Officials of the port reported the bridge opening number {k} today.")
              for k in range(12)]
    other = _GOOD[1]
    got = summarise(Story(copies[0], (*copies[1:], other)))
    assert got is not None
    assert "Northern Ledger" in {s.source for s in got.sentences}


def test_no_more_than_two_sentences_from_one_outlet() -> None:
    # The choice itself: one outlet's three best-scored, unrelated sentences, then
    # another outlet's; the third place goes to the other outlet.
    texts = [("Harbour Herald", "Thousands of people crossed the new bridge on Monday."),
             ("Harbour Herald", "Engineers tested the steel cables for three years."),
             ("Harbour Herald", "Ferries that carried commuters will stop in March."),
             ("Northern Ledger", "Officials said the project cost 1.4 billion euros.")]
    candidates = [_Candidate(t, src, m, 0, _content_words(t))
                  for m, (src, t) in enumerate(texts)]
    vectors = np.eye(len(texts), dtype=np.float32)  # nothing alike
    chosen = _choose(candidates, vectors, np.array([0.9, 0.8, 0.7, 0.1]))
    assert [c.source for c in chosen].count("Harbour Herald") == 2
    assert "Northern Ledger" in {c.source for c in chosen}


def test_an_editors_sentence_without_a_source_has_no_credit(cfg: Config) -> None:
    # The desk replaces a summary with its own words: a plain value, no outlet.
    story = replace(_story(), summary=Summary((Sentence("The bay has a bridge at last.", ""),)))
    rendered = render_variant(_sel(story), cfg, variant="all", now=NOW)
    for part in (collapse(rendered.text), _html_text(rendered.html)):
        assert "The bay has a bridge at last." in part
        assert "The bay has a bridge at last. —" not in part
