"""How much a story matters today: recency, source weight, topics, coverage.

    score    = recency × (weight + topic_weight × matched topics) × coverage
    recency  = 0.5 ** (hours since the newest report / half_life_hours)
    weight   = the lead source's weight (config feeds[].weight, 1.0 neutral)
    coverage = 1 + coverage_boost × (distinct outlets − 1), at most MAX_COVERAGE

The lead is the report from the heaviest source, then a dated one (over one dated
only by when digest first saw it), then the most complete one (with an image, the
longer summary), then the newest.

Scores keep full precision (only display rounds them). Stories of one score are
ordered by coverage (more outlets first), then recency (the newest report first),
then weight, then the lead's id: never by title, which would put a day's ties in
alphabetical order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from digest.config import Config
from digest.models import Article, Feed, Story
from digest.rank.topics import TopicMatcher as TopicMatcher  # its old home: still importable here

MAX_COVERAGE = 3.0  # ten outlets on one story should not bury everything else


def lead_key(feeds: dict[str, Feed]
             ) -> Callable[[Article], tuple[float, bool, int, int, datetime]]:
    def key(a: Article) -> tuple[float, bool, int, int, datetime]:
        feed = feeds.get(a.feed_url)
        return (feed.weight if feed else 1.0, a.dated, int(a.image is not None),
                len(a.summary), a.published)
    return key


def order_key(story: Story) -> tuple[float, float, float, float, int, str, str]:
    """Best first: score, then coverage (outlets), then recency (the newest report's
    time), then weight, then the lead's row id and guid, a stable order that says
    nothing about the story (never the title)."""
    r = story.reasons
    lead = story.lead
    return (-story.score, -r.get("outlets", 1.0), -r.get("newest", 0.0),
            -r.get("weight", 1.0), lead.id if lead.id is not None else -1, lead.feed_url,
            lead.guid)


def _reasons(recency: float, age_h: float, newest: datetime, weight: float,
             topic_part: float, outlets: int, coverage: float, undated: int
             ) -> dict[str, float]:
    """Every factor of the score, at full precision, for --explain and the order."""
    return {"recency": recency, "age_hours": age_h, "newest": newest.timestamp(),
            "weight": weight, "topics": topic_part, "outlets": float(outlets),
            "coverage": coverage, "undated": float(undated)}


def score_stories(articles: Sequence[Article], groups: Sequence[Sequence[int]],
                  topics_of: Sequence[frozenset[str]], feeds: dict[str, Feed], config: Config,
                  now: datetime) -> list[Story]:
    """``score_story`` for every group of a day (indexes into ``articles``; an
    article's topics in ``topics_of``), with the day's constants looked up once."""
    sel = config.selection
    half_life, topic_weight = sel.half_life_hours, sel.topic_weight
    boost = getattr(sel, "coverage_boost", 0.25)
    weight_of = {url: feed.weight for url, feed in feeds.items()}
    key = lead_key(feeds)
    out = []
    for group in groups:
        if len(group) == 1:  # most stories: nothing to order
            lead = articles[group[0]]
            others: tuple[Article, ...] = ()
            newest, outlets, topics = lead.published, 1, topics_of[group[0]]
            undated = 0 if lead.dated else 1
        else:
            members = [articles[k] for k in group]
            ordered = sorted(members, key=key, reverse=True)
            lead, others = ordered[0], tuple(ordered[1:])
            newest = max(a.published for a in members)
            outlets = len({a.source for a in members})
            topics = frozenset().union(*(topics_of[k] for k in group))
            undated = sum(not a.dated for a in members)
        age_h = max(0.0, (now - newest).total_seconds() / 3600)
        recency = math.pow(0.5, age_h / half_life)
        weight = weight_of.get(lead.feed_url, 1.0)
        topic_part = topic_weight * len(topics)
        coverage = min(MAX_COVERAGE, 1 + boost * (outlets - 1))
        score = recency * (weight + topic_part) * coverage
        out.append(Story(lead, others, score, _reasons(
            recency, age_h, newest, weight, topic_part, outlets, coverage, undated),
            tuple(sorted(topics))))
    return out


def score_story(group: Sequence[Article], feeds: dict[str, Feed], topics: set[str],
                config: Config, now: datetime) -> Story:
    """One story from its articles, scored, with every component kept for --explain."""
    sel = config.selection
    if len(group) == 1:  # most stories: nothing to order
        ordered, newest = list(group), group[0].published
    else:
        ordered = sorted(group, key=lead_key(feeds), reverse=True)
        newest = max(a.published for a in group)
    lead = ordered[0]
    age_h = max(0.0, (now - newest).total_seconds() / 3600)
    recency = math.pow(0.5, age_h / sel.half_life_hours)
    feed = feeds.get(lead.feed_url)
    weight = feed.weight if feed else 1.0
    topic_part = sel.topic_weight * len(topics)
    outlets = len({a.source for a in group}) if len(group) > 1 else 1
    boost = getattr(sel, "coverage_boost", 0.25)
    coverage = min(MAX_COVERAGE, 1 + boost * (outlets - 1))
    score = recency * (weight + topic_part) * coverage
    reasons = _reasons(recency, age_h, newest, weight, topic_part, outlets, coverage,
                       sum(not a.dated for a in group))
    return Story(lead=lead, others=tuple(ordered[1:]), score=score, reasons=reasons,
                 topics=tuple(sorted(topics)))
