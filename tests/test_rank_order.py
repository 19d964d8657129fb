"""Story order: scores at full precision; ties broken by coverage, then recency, then
weight, then the lead's id, never by title; --explain names every factor."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from digest import config as configuration
from digest.models import Article
from digest.rank import explain
from digest.rank import select as ranker

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DAY = date(2026, 11, 27)
FEEDS = {"one": 1.0, "two": 1.0, "heavy": 2.0, "mid": 1.25, "big": 1.5}


@pytest.fixture
def cfg(tmp_path: Path) -> configuration.Config:
    feeds = "".join(f'[[feeds]]\nurl = "https://{n}.example/feed"\nname = "{n.title()}"\n'
                    f"weight = {w}\n" for n, w in FEEDS.items())
    (tmp_path / "config.toml").write_text(f"""{feeds}
[topics.world]
keywords = ["minister"]
[selection]
max_stories = 10
max_age_hours = 48
half_life_hours = 12
per_source = 10
topic_sections = false
[[selection.sections]]
title = "Top stories"
max_stories = 10
""")
    return configuration.load(tmp_path / "config.toml")


def art(n: int, feed: str, title: str, at: datetime, summary: str = "") -> Article:
    return Article(id=n, feed_url=f"https://{feed}.example/feed", source=feed.title(),
                   guid=f"g{n}", url=f"https://{feed}.example/{n}", title=title,
                   summary=summary, published=at)


def _titles(stories: object) -> list[str]:
    return [s.lead.title for s in stories]  # type: ignore[attr-defined]


def test_equal_scores_are_not_in_title_order(cfg: configuration.Config) -> None:
    """Three unrelated stories of one outlet, one minute: equal scores. They keep the
    lead's id order, here the reverse of the alphabet, in every path."""
    day = [art(1, "one", "Zoo welcomes twin otters", NOW),
           art(2, "one", "Marathon route changes for roadworks", NOW),
           art(3, "one", "Apple harvest breaks county record", NOW)]
    ranked = ranker.rank(day, cfg, now=NOW, day=DAY)
    assert len({s.score for s in ranked.stories}) == 1
    expected = [a.title for a in day]
    assert _titles(ranked.stories) == expected
    assert _titles(ranked.selection.stories) == expected
    # Leaving out an article somebody got re-sorts what is left the same way.
    other = ranker.for_variant(ranked, cfg, "all", exclude={999}, now=NOW)
    assert _titles(other.stories) == expected
    assert _titles(ranker.without(ranked.stories, {999}, cfg, NOW)) == expected


def test_ties_go_to_coverage_then_recency_then_weight(cfg: configuration.Config) -> None:
    twelve = NOW - timedelta(hours=12)
    day = [
        # 0.5 (12 h) × 2 weight × 1.25 coverage (two outlets) = 1.25 ...
        art(1, "heavy", "Zeta volcano erupts on Example Island, thousands evacuated", twelve),
        art(2, "two", "Zeta volcano erupts on Example Island, thousands evacuated", twelve),
        # ... = 1.0 (fresh) × 1.25 weight, one outlet: behind on coverage, though newer
        # and ahead on title.
        art(3, "mid", "Aardvark rescued from storm drain", NOW),
        # 1.0 (fresh) × 1 = 1.0 and 0.5 (12 h) × 2 = 1.0: the newer first, though the
        # older one weighs more.
        art(4, "one", "Yacht club elects its first woman commodore", NOW),
        art(5, "heavy", "Beekeepers report a record spring", twelve),
        # 1.5 weight vs 1.0 weight + 0.5 topic, both fresh, = 1.5: the heavier first.
        art(6, "big", "Quarry to become a nature park", NOW),
        art(7, "one", "Bridge minister opens the new crossing", NOW),
    ]
    ranked = ranker.rank(day, cfg, now=NOW, day=DAY)
    by_title = {s.lead.title[:5]: s for s in ranked.stories}
    assert by_title["Zeta "].score == by_title["Aardv"].score == 1.25
    assert by_title["Yacht"].score == by_title["Beeke"].score == 1.0
    assert by_title["Quarr"].score == by_title["Bridg"].score == 1.5
    assert [t[:5] for t in _titles(ranked.stories)] == [
        "Quarr", "Bridg", "Zeta ", "Aardv", "Yacht", "Beeke"]


def test_scores_keep_full_precision(cfg: configuration.Config) -> None:
    """Five milliseconds apart: the newer scores higher, though both round to the
    same six decimals (and the older one's title comes first)."""
    older = art(1, "one", "Alpine pass reopens after snow", NOW - timedelta(hours=1))
    newer = art(2, "one", "Zinc smelter to close in spring",
                NOW - timedelta(hours=1) + timedelta(milliseconds=5))
    ranked = ranker.rank([older, newer], cfg, now=NOW, day=DAY)
    assert _titles(ranked.stories) == [newer.title, older.title]
    first, second = ranked.stories
    assert round(first.score, 6) == round(second.score, 6) and first.score > second.score
    assert second.score == math.pow(0.5, 1 / 12)  # no rounding anywhere
    assert second.reasons["recency"] == second.score and second.reasons["age_hours"] == 1


def test_the_lead_is_the_top_score_whatever_variety_holds_back(
        cfg: configuration.Config, tmp_path: Path) -> None:
    one_source = cfg.with_overrides(selection={"per_source": 1})
    day = [art(n, "one", f"Story number {n} of the outlet {'abcdefgh'[n]}",
               NOW - timedelta(hours=n)) for n in range(1, 7)]
    day.append(art(9, "big", "Heavier outlet's older story", NOW - timedelta(hours=20)))
    ranked = ranker.rank(day, one_source, now=NOW, day=DAY)
    top = max(ranked.stories, key=lambda s: s.score)
    assert ranked.selection.lead is top is ranked.stories[0]
    assert _titles(ranked.selection.stories) == [top.lead.title,
                                                "Heavier outlet's older story"]


def test_explain_names_every_factor(cfg: configuration.Config,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    day = [art(1, "mid", "Minister opens harbour bridge", NOW - timedelta(hours=3)),
           art(2, "two", "Minister opens harbour bridge", NOW - timedelta(hours=2))]
    ranked = ranker.rank(day, cfg, now=NOW, day=DAY)
    (story,) = ranked.stories
    recency = 0.5 ** (2 / 12)
    line = explain.formula(story)
    assert line == (f"{story.score:.4f} = {recency:.4f} recency (2.0 h since the newest "
                    "report) × (1.25 weight + 0.5 topics) × 1.25 coverage (2 outlets)")
    assert story.score == pytest.approx(recency * 1.75 * 1.25, rel=1e-12)
    explain.show(ranked, explain=True)
    out = " ".join(capsys.readouterr().out.split())
    assert f"score: {line}" in out
    assert "newest report: 2026-11-27 04:00 UTC" in out
    assert "outlets: Mid, Two" in out and "topics: world" in out
    assert "undated" not in out
    (row,) = explain.rank_json(ranked)
    assert row["score"] == story.score
    assert {"recency", "age_hours", "weight", "topics", "outlets", "coverage", "newest",
            "undated"} <= set(row["components"])


def test_a_dated_report_leads_over_one_dated_by_first_sight(
        cfg: configuration.Config) -> None:
    """The undated report is fuller (an image, a longer lead) and newer by first sight;
    the report whose feed dated it still leads the story."""
    from dataclasses import replace

    dated = art(1, "one", "Harbour bridge reopens after two years of repairs",
                NOW - timedelta(hours=2))
    undated = replace(art(2, "two", "Harbour bridge reopens after two years of repairs",
                          NOW, "The harbour bridge reopened on Friday after repairs."),
                      image="https://two.example/bridge.jpg", dated=False)
    ranked = ranker.rank([undated, dated], cfg, now=NOW, day=DAY)
    (story,) = ranked.stories
    assert story.lead is dated and story.others == (undated,)
    assert story.reasons["undated"] == 1 and story.reasons["age_hours"] == 0
