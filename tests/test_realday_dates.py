"""A real day replayed: tests/data/realday (and the 50 shared corpus feeds), listed by
URL alone, collected from a loopback server at 2026-02-18 07:00 UTC, then ranked. No
Hugo page (Go's zero date) and no other backlog item is ranked; outlets are named from
the feeds' titles, so the per-outlet cap leaves a full digest; the lead is the top
score."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from digest import config as configuration
from digest.collect.collector import collect_sync
from digest.rank import select as ranker
from digest.rank.score import order_key
from digest.store.facade import Store
from tests.peers import FeedServer

NOW = datetime(2026, 2, 18, 7, 0, tzinfo=UTC)
REALDAY = Path(__file__).parent / "data" / "realday" / "feeds"
CORPUS = Path("/work/shared/corpus/feeds")
# The undated pages of the day's three Hugo sites: there before digest's first collect.
HUGO_PAGES = {("Alex Blackie", "All Stars"), ("Alex Blackie", "My Setup"),
              ("KittenLabs", "Search Results"), ("Pooria Taghdiri", "About"),
              ("Pooria Taghdiri", "Projects"), ("Pooria Taghdiri", "Tags")}
NEWS = {"CBSNews.com", "TheWeek", "washingtonpost.com", "NPR", "Rest of World", "TIME"}


@pytest.mark.parametrize("folder", [REALDAY, CORPUS], ids=["realday", "corpus"])
def test_a_real_day_by_url_alone(tmp_path: Path, folder: Path) -> None:
    if not folder.is_dir():
        pytest.skip(f"{folder} is not here")
    with FeedServer(folder) as server:
        feeds = "".join(f'[[feeds]]\nurl = "{server.url(p.name)}"\n'
                        for p in sorted(folder.iterdir()))
        (tmp_path / "config.toml").write_text(f"""{feeds}
[selection]
max_stories = 12
max_age_hours = 36
per_source = 3
[[selection.sections]]
title = "Top stories"
max_stories = 12
""")
        cfg = configuration.load(tmp_path / "config.toml")
        store = Store.open(tmp_path / "digest.db")
        try:
            results = collect_sync(cfg.feeds, store, now=NOW)
            articles = store.articles_since(None)
        finally:
            store.close()
    assert all(r.status == "ok" for r in results), [r for r in results if r.status != "ok"]
    assert {r.feed for r in results} >= NEWS
    assert sum(r.backlog for r in results) == len(HUGO_PAGES)
    assert {(a.source, a.title) for a in articles if a.backlog} == HUGO_PAGES

    ranked = ranker.rank(articles, cfg, now=NOW, day=NOW.date())
    ranked_titles = {(a.source, a.title) for s in ranked.stories for a in s.articles}
    assert not ranked_titles & HUGO_PAGES
    assert ranked.backlog == len(HUGO_PAGES)
    assert all(a.dated for s in ranked.stories for a in s.articles)

    chosen = ranked.selection.stories
    assert ranked.selection.lead is ranked.stories[0]
    assert ranked.stories[0].score == max(s.score for s in ranked.stories)
    assert ranked.stories[0].lead.source in NEWS
    assert list(ranked.stories) == sorted(ranked.stories, key=order_key)
    outlets = Counter(s.lead.source for s in chosen)
    assert len(chosen) == 12 and len(outlets) >= 5 and max(outlets.values()) <= 3
