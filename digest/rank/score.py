"""How much a story matters today: recency, source weight, topics, coverage.

    score    = recency × (weight + topic_weight × matched topics) × coverage
    recency  = 0.5 ** (hours since the newest report / half_life_hours)
    weight   = the lead source's weight (config feeds[].weight, 1.0 neutral)
    coverage = 1 + coverage_boost × (distinct outlets − 1), at most MAX_COVERAGE

The lead is the report from the heaviest source, then the most complete one
(with an image, the longer summary), then the newest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime

from digest.config import Config
from digest.models import Article, Feed, Story
from digest.rank.topics import TopicMatcher as TopicMatcher  # its old home: still importable here

MAX_COVERAGE = 3.0  # ten outlets on one story should not bury everything else


def lead_key(feeds: dict[str, Feed]) -> Callable[[Article], tuple[float, int, int, datetime]]:
    def key(a: Article) -> tuple[float, int, int, datetime]:
        feed = feeds.get(a.feed_url)
        return (feed.weight if feed else 1.0, int(a.image is not None), len(a.summary),
                a.published)
    return key


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
        else:
            members = [articles[k] for k in group]
            ordered = sorted(members, key=key, reverse=True)
            lead, others = ordered[0], tuple(ordered[1:])
            newest = max(a.published for a in members)
            outlets = len({a.source for a in members})
            topics = frozenset().union(*(topics_of[k] for k in group))
        age_h = max(0.0, (now - newest).total_seconds() / 3600)
        recency = math.pow(0.5, age_h / half_life)
        weight = weight_of.get(lead.feed_url, 1.0)
        topic_part = topic_weight * len(topics)
        coverage = min(MAX_COVERAGE, 1 + boost * (outlets - 1))
        score = recency * (weight + topic_part) * coverage
        out.append(Story(lead, others, round(score, 6), {
            "recency": round(recency, 4), "age_hours": round(age_h, 2), "weight": weight,
            "topics": round(topic_part, 4), "outlets": float(outlets),
            "coverage": round(coverage, 4)}, tuple(sorted(topics))))
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
    reasons = {"recency": round(recency, 4), "age_hours": round(age_h, 2), "weight": weight,
               "topics": round(topic_part, 4), "outlets": float(outlets),
               "coverage": round(coverage, 4)}
    return Story(lead=lead, others=tuple(ordered[1:]), score=round(score, 6), reasons=reasons,
                 topics=tuple(sorted(topics)))
