"""Rank the day: score articles, fold the same story from several outlets into
one Story, fill sections, and choose each subscriber's variant.

score = recency × (source weight + topic_weight × matched topics) × coverage
  recency  = 0.5 ** (age in hours / half_life_hours)
  coverage = 1 + 0.25 × (distinct outlets reporting the story − 1)

Clustering here is deliberately conservative (precision first: two events glued
together is worse than one event shown twice): articles meet only when their
headline+lead words overlap strongly, found through an inverted index of rare
words so the day is never compared all-pairs.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from digest.config import Config
from digest.models import Article, Feed, Section, Selection, Story, Subscriber

COVERAGE_BOOST = 0.25
PAIR_THRESHOLD = 0.3  # a pair this similar may join; measured on the demo feeds
LINK_THRESHOLD = 0.22  # average similarity two clusters need to merge
CLUSTER_WINDOW = timedelta(hours=36)
MAX_POSTING = 40  # a word in more articles than this is too common to block on

_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STOP = frozenset(
    "a an the and or but of to in on at for from by with as is are was were be been has "
    "have had it its this that these those into over after before about than then new says "
    "say said will would could can may might not no more most up down out off "
    "der die das und oder ein eine zu im am mit von für auf ist sind".split()
)


@dataclass(frozen=True)
class Ranked:
    """Every candidate story of the day, best first, and the selection made from them."""

    stories: tuple[Story, ...]
    selection: Selection


def words(text: str) -> set[str]:
    return {w for w in (m.group().lower() for m in _WORD.finditer(text))
            if len(w) > 2 and w not in _STOP}


def article_topics(a: Article, feed_topics: dict[str, tuple[str, ...]], config: Config) -> set[str]:
    found = set(feed_topics.get(a.feed_url, ()))
    haystack = f" {' '.join(sorted(words(a.title + ' ' + a.summary)))} "
    text = f"{a.title} {a.summary}".lower()
    for name, topic in config.topics.items():
        for kw in topic.keywords:
            kw = kw.lower()
            hit = (f" {kw} " in haystack) if " " not in kw else re.search(
                rf"\b{re.escape(kw)}\b", text) is not None
            if hit:
                found.add(name)
                break
    return found


def cluster(articles: Sequence[Article]) -> list[list[Article]]:
    """Group articles about the same event.

    Similarity is the IDF-weighted overlap of headline + first-sentence words
    (rare shared words such as names and figures count most). Candidate pairs
    come from an inverted index, never all pairs. Clusters merge best pair
    first, and only while the average similarity across the two clusters stays
    high, so one loose link cannot chain two events together.
    """
    bags = [words(a.title + " " + _first_sentence(a.summary)) for a in articles]
    index: dict[str, list[int]] = defaultdict(list)
    for i, bag in enumerate(bags):
        for w in bag:
            index[w].append(i)
    n = len(articles)
    idf = {w: math.log((n + 1) / (len(ids) + 0.5)) for w, ids in index.items()}
    mass = [sum(idf[w] for w in bag) or 1.0 for bag in bags]
    sims: dict[tuple[int, int], float] = {}
    for i, bag in enumerate(bags):
        candidates = {j for w in bag if len(index[w]) <= MAX_POSTING for j in index[w] if j > i}
        for j in candidates:
            if abs(articles[i].published - articles[j].published) > CLUSTER_WINDOW:
                continue
            if _numbers_clash(articles[i].title, articles[j].title):
                continue
            shared = sum(idf[w] for w in bag & bags[j])
            sims[(i, j)] = shared / min(mass[i], mass[j])
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    owner = list(range(n))
    for (i, j), sim in sorted(sims.items(), key=lambda kv: -kv[1]):
        if sim < PAIR_THRESHOLD:
            break
        a, b = owner[i], owner[j]
        if a == b:
            continue
        cross = [sims.get((min(x, y), max(x, y)), 0.0) for x in members[a] for y in members[b]]
        if sum(cross) / len(cross) < LINK_THRESHOLD:
            continue
        for x in members[b]:
            owner[x] = a
        members[a] += members.pop(b)
    return [[articles[i] for i in sorted(group)] for group in members.values()]


def _numbers_clash(a: str, b: str) -> bool:
    # "4.5 percent" vs "5 percent", "7.1 quake" vs "6.2 quake": different numbers
    # in both headlines almost always mean different events.
    na, nb = set(_NUMBER.findall(a)), set(_NUMBER.findall(b))
    return bool(na and nb and not na & nb)


def _first_sentence(text: str) -> str:
    m = re.search(r"(.+?[.!?])(\s|$)", text)
    return m.group(1) if m else text


def score_story(group: Sequence[Article], feeds: dict[str, Feed], topics: set[str],
                config: Config, now: datetime) -> Story:
    sel = config.selection

    def lead_key(a: Article) -> tuple[float, int, int, datetime]:
        return (feeds[a.feed_url].weight if a.feed_url in feeds else 1.0,
                int(a.image is not None), len(a.summary), a.published)

    ordered = sorted(group, key=lead_key, reverse=True)
    lead = ordered[0]
    newest = max(a.published for a in group)
    age_h = max(0.0, (now - newest).total_seconds() / 3600)
    recency = math.pow(0.5, age_h / sel.half_life_hours)
    weight = feeds[lead.feed_url].weight if lead.feed_url in feeds else 1.0
    topic_part = sel.topic_weight * len(topics)
    outlets = len({a.source for a in group})
    coverage = 1 + COVERAGE_BOOST * (outlets - 1)
    score = recency * (weight + topic_part) * coverage
    reasons = (("recency", round(recency, 4)), ("weight", weight),
               ("topics", round(topic_part, 4)), ("coverage", coverage))
    return Story(lead=lead, others=tuple(ordered[1:]), score=round(score, 6), reasons=reasons,
                 topics=tuple(sorted(topics)))


def rank(articles: Iterable[Article], config: Config, *, now: datetime, day: date,
         exclude: set[int] | None = None) -> Ranked:
    """All of the day's stories, scored, and the day's sectioned selection."""
    sel = config.selection
    exclude = exclude or set()
    cutoff = now - timedelta(hours=sel.max_age_hours) if sel.max_age_hours else None
    pool = [a for a in articles
            if a.id not in exclude and (cutoff is None or a.published >= cutoff)]
    feeds = {f.url: f for f in config.feeds}
    feed_topics = {url: f.topics for url, f in feeds.items()}
    stories = []
    for group in cluster(pool):
        topics = set().union(*(article_topics(a, feed_topics, config) for a in group))
        stories.append(score_story(group, feeds, topics, config, now))
    stories.sort(key=lambda s: (-s.score, s.lead.title))
    return Ranked(tuple(stories), select(stories, config, day))


def select(stories: Sequence[Story], config: Config, day: date,
           variant: str = "all") -> Selection:
    """Fill sections from the best stories for one variant ('all' or 'topic+topic').

    Each variant is selected on its own, so a reader who chose science gets a
    full Science section even on a day the general edition fills up elsewhere.
    """
    return Selection(day=day, sections=_sections(stories, config, _variant_topics(variant)))


def _variant_topics(variant: str) -> set[str] | None:
    return None if variant == "all" else set(variant.split("+"))


def _sections(stories: Sequence[Story], config: Config,
              wanted: set[str] | None) -> tuple[Section, ...]:
    sel = config.selection
    per_source: dict[str, int] = defaultdict(int)
    used: set[int] = set()
    total = 0
    plan: list[tuple[str, tuple[str, ...], int, str | None]] = [
        (s.title, s.topics, s.max_stories, s.topics[0] if len(s.topics) == 1 else None)
        for s in sel.sections
        if wanted is None or not s.topics or set(s.topics) & wanted
    ]
    if sel.topic_sections:
        for name, spec in config.topics.items():
            if wanted is None or name in wanted:
                plan.append((spec.title or name.capitalize(), (name,), 3, name))
    out: list[Section] = []
    for title, topics, limit, topic in plan:
        chosen: list[Story] = []
        for i, story in enumerate(stories):
            if total >= sel.max_stories or len(chosen) >= limit:
                break
            if i in used or per_source[story.lead.source] >= sel.per_source:
                continue
            if topics and not set(topics) & set(story.topics):
                continue
            chosen.append(story)
            used.add(i)
            per_source[story.lead.source] += 1
            total += 1
        if chosen:  # empty sections are dropped
            out.append(Section(title=title, stories=tuple(chosen), topic=topic))
    return tuple(out)


def variant_key(subscriber: Subscriber) -> str:
    """The digest variant a subscriber gets: 'all', or the topics they chose.

    Derived from the subscriber alone, so a digest frozen in the store can be
    matched again on a rerun without re-ranking.
    """
    return "+".join(sorted(set(subscriber.topics))) or "all"


def for_variant(ranked: Ranked, config: Config, variant: str) -> Selection:
    """The selection one variant gets: general sections plus its own topics' sections."""
    if variant == "all":
        return ranked.selection
    return select(ranked.stories, config, ranked.selection.day, variant)
