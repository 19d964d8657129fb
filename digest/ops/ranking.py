"""`digest rank` as an operator meets it: today's ranking from the store, and when
nothing is left to rank, the line saying why and what to run. The CLI parses the
options and prints (digest.rank.explain draws the tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from digest import pipeline
from digest.config import Config
from digest.rank import explain

if TYPE_CHECKING:
    from digest.rank.select import Ranked


def rank_today(config: Config, *, say_why_empty: bool) -> tuple[Ranked, str | None]:
    """Today's stories, and (if asked, and there are none) what to run about it."""
    store = pipeline.open_store(config)
    try:
        ranked = pipeline.rank_day(config, store, now=pipeline.utcnow())
        if ranked.stories or not say_why_empty:
            return ranked, None
        # Counted only here: a day with stories (or --json) needs no extra query.
        return ranked, explain.nothing_to_rank(store.count_articles(),
                                               config.selection.max_age_hours)
    finally:
        store.close()
