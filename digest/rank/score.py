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
import re
from collections.abc import Callable, Sequence
from datetime import datetime

import numpy as np

from digest.config import Config
from digest.models import Article, Feed, Story
from digest.rank.signatures import Reading, Signature, fold, stem

MAX_COVERAGE = 3.0  # ten outlets on one story should not bury everything else

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


class TopicMatcher:
    """Which configured topics an article belongs to: its feed's topics, plus
    every topic whose keywords (whole words or phrases, any case, plurals too)
    its headline or lead mentions."""

    def __init__(self, config: Config) -> None:
        self._feed_topics = {f.url: frozenset(f.topics) for f in config.feeds}
        self._words: dict[str, set[str]] = {}
        self._phrases: list[tuple[frozenset[str], re.Pattern[str], str]] = []
        for name, topic in config.topics.items():
            for kw in topic.keywords:
                kw = fold(kw.strip())
                parts = _WORD.findall(kw)
                if len(parts) == 1:
                    self._words.setdefault(stem(parts[0]), set()).add(name)
                elif parts:
                    self._phrases.append((frozenset(stem(p) for p in parts),
                                          re.compile(rf"\b{re.escape(kw)}\b"), name))
        self._keywords = frozenset(self._words)

    def topics(self, a: Article, sig: Signature | None = None) -> set[str]:
        found = set(self._feed_topics.get(a.feed_url, ()))
        words = sig.words if sig is not None else frozenset(
            stem(w) for w in _WORD.findall(fold(f"{a.title} {a.summary}")))
        for w in self._keywords.intersection(words):
            found |= self._words[w]
        for parts, pattern, name in self._phrases:
            # The cheap test first: a phrase can only match if all its words are there.
            if name not in found and parts <= words and pattern.search(
                    fold(f"{a.title} {a.summary}")):
                found.add(name)
        return found


    def topics_of_day(self, articles: Sequence[Article], reading: Reading) -> list[frozenset[str]]:
        """``topics`` for every article of a day at once, from the day's word
        arrays: only the articles that carry a keyword are visited."""
        found = [self._feed_topics.get(a.feed_url, frozenset()) for a in articles]
        vocab = {w: k for k, w in enumerate(reading.vocab)}
        words = {vocab[w]: names for w, names in self._words.items() if w in vocab}
        hit = np.isin(reading.word_id, np.fromiter(words, np.int64, len(words)))
        for art, word in zip(reading.word_art[hit].tolist(), reading.word_id[hit].tolist(),
                             strict=True):
            found[art] = found[art] | words[word]
        for parts, pattern, name in self._phrases:
            ids = [vocab.get(p, -1) for p in parts]
            if min(ids) < 0:
                continue
            # The cheap test first: a phrase can only match if all its words are there.
            has = np.bincount(reading.word_art[np.isin(reading.word_id, ids)],
                              minlength=len(articles))
            for art in np.flatnonzero(has == len(ids)).tolist():
                a = articles[art]
                if name not in found[art] and pattern.search(fold(f"{a.title} {a.summary}")):
                    found[art] = found[art] | {name}
        return found


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
