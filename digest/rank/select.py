"""Rank the day like an editor: fold the same event from several outlets into one
Story (digest.rank.cluster), score it (digest.rank.score), then fill sections with variety
and choose each subscriber variant's selection.

    rank(articles, config, now=, day=, exclude=)  every story of the day + the general selection
    for_variant(ranked, config, variant, exclude=) one variant's selection
    variant_key(subscriber)                       which variant a subscriber gets

Backlog (an undated item already in its feed at the feed's first collect: a page,
not news) never enters the pool: it leads no story and fills no digest.

Variety, in order of precedence while sections fill:
- one story per event (clustering), each article in at most one story;
- at most ``selection.per_source`` stories led by one outlet (``Article.source``: the
  outlet's name, not the feed's host);
- diversity: a story that repeats an already chosen story's names (the same
  people and places: a follow-up or an analysis piece clustering kept apart) is
  held back from the general sections, so the top is not five takes on one event;
- sections in config order ("Top stories", then one per topic), empty ones dropped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from digest.config import Config
from digest.models import Article, Section, Selection, Story, Subscriber
from digest.rank import cluster as clustering
from digest.rank.score import TopicMatcher, order_key, score_stories, score_story
from digest.rank.signatures import read, signatures
from digest.rank.summarise import with_summaries

DIVERSITY_OVERLAP = 0.5  # share of names two general-section stories may have in common
TOPIC_SECTION_SIZE = 3


@dataclass(frozen=True)
class Ranked:
    """Every candidate story of the day, best first, and the selection made from them."""

    stories: tuple[Story, ...]
    selection: Selection
    names: dict[int, frozenset[str]] | None = None  # id(story) -> its names, for diversity
    now: datetime | None = None  # the clock the scores were computed at
    backlog: int = 0  # backlog articles of the day's window left out of the pool

    def story_names(self, story: Story) -> frozenset[str]:
        return (self.names or {}).get(id(story), frozenset())


def cluster(articles: Sequence[Article]) -> list[list[Article]]:
    """Group articles about the same event (see digest.rank.cluster)."""
    return clustering.cluster(articles)


def rank(articles: Iterable[Article], config: Config, *, now: datetime, day: date,
         exclude: set[int] | None = None) -> Ranked:
    """All of the day's stories, scored, and the day's general selection.

    ``exclude`` holds article ids nobody may get again (already sent).
    """
    with clustering.paused_gc():  # see there: the day's many small objects hold no cycles
        return _rank(articles, config, now=now, day=day, exclude=exclude)


def _rank(articles: Iterable[Article], config: Config, *, now: datetime, day: date,
          exclude: set[int] | None) -> Ranked:
    sel = config.selection
    exclude = exclude or set()
    cutoff = now - timedelta(hours=sel.max_age_hours) if sel.max_age_hours else None
    pool: list[Article] = []
    backlog = 0
    for a in articles:
        if a.id in exclude or (cutoff is not None and a.published < cutoff):
            continue
        if a.backlog:
            backlog += 1
        else:
            pool.append(a)
    feeds = {f.url: f for f in config.feeds}
    matcher = TopicMatcher(config)
    vectors = clustering.start_vectors(pool)  # on the other core while signatures are read
    reading = read(pool, vectors.texts)  # once: clustering, topics and diversity share it
    keys = {id(a): s.keys for a, s in zip(pool, reading.sigs, strict=True)}
    # Clustering centres its vectors in place; topics compare them raw: one copy.
    groups = clustering.cluster_indexes(pool, reading, vectors.copied())
    topics_of = matcher.topics_of_day(pool, reading, vectors.result())
    stories = score_stories(pool, groups, topics_of, feeds, config, now)
    stories.sort(key=order_key)
    names = {id(s): keys[id(s.lead)] for s in stories}
    selection = select(stories, config, day, names=names)
    stories, names = _adopt(stories, selection, names)
    return Ranked(tuple(stories), selection, names, now, backlog)


def _adopt(stories: list[Story], selection: Selection, names: dict[int, frozenset[str]]
           ) -> tuple[list[Story], dict[int, frozenset[str]]]:
    """The day's stories with the selection's summarised copies in their places, so
    one story is one object in both (explain and for_variant match them by id)."""
    chosen = {(s.lead.id, s.lead.url): s for s in selection.stories if s.summary is not None}
    if not chosen:
        return stories, names
    out, names = [], dict(names)
    for s in stories:
        copy = chosen.get((s.lead.id, s.lead.url)) if s.summary is None else None
        if copy is not None and copy.articles == s.articles:
            # (the old id goes: once the old object is freed, its id may be reused)
            names[id(copy)] = names.pop(id(s), frozenset())
            s = copy
        out.append(s)
    return out, names


def _story_names(stories: Sequence[Story]) -> dict[int, frozenset[str]]:
    leads = [s.lead for s in stories]
    sigs = signatures(leads) if leads else []
    return {id(s): sig.keys for s, sig in zip(stories, sigs, strict=True)}


def select(stories: Sequence[Story], config: Config, day: date, variant: str = "all", *,
           names: dict[int, frozenset[str]] | None = None) -> Selection:
    """Fill sections from the best stories for one variant ('all' or 'topic+topic').

    Each variant is selected on its own, so a reader who chose science gets a
    full Science section even on a day the general edition fills up elsewhere.
    """
    plan = planned_sections(config, variant)
    sections = _fill(stories, config, plan, names or {})
    if config.selection.summaries:
        # Only what is selected is summarised: a handful of stories, never the day.
        sections = tuple(replace(sec, stories=tuple(with_summaries(sec.stories)))
                         for sec in sections)
    return Selection(day=day, sections=sections)


def variant_topics(variant: str) -> list[str] | None:
    """The topics of a variant key, in the subscriber's order (None for 'all')."""
    return None if variant == "all" else [t for t in variant.split("+") if t]


@dataclass(frozen=True)
class _Plan:
    title: str
    topics: tuple[str, ...]
    limit: int
    topic: str | None  # set for a one-topic section


def planned_sections(config: Config, variant: str = "all") -> list[_Plan]:
    """The sections a variant asks for, in order: the configured sections that
    suit it, then one per topic — the subscriber's topics in their own order."""
    sel = config.selection
    wanted = variant_topics(variant)
    plan = [_Plan(s.title, s.topics, s.max_stories, s.topics[0] if len(s.topics) == 1 else None)
            for s in sel.sections
            if wanted is None or not s.topics or set(s.topics) & set(wanted)]
    if sel.topic_sections:
        order = list(config.topics) if wanted is None else [t for t in wanted
                                                            if t in config.topics]
        for name in order:
            spec = config.topics[name]
            plan.append(_Plan(spec.title or name.capitalize(), (name,), TOPIC_SECTION_SIZE, name))
    if wanted is None and sel.more_title:
        # The general edition promises max_stories: what the sections above could not
        # place (no topic of its own, or its topic's section full) goes here, best first.
        plan.append(_Plan(sel.more_title, (), sel.max_stories, None))
    return plan


def _fill(stories: Sequence[Story], config: Config, plan: Sequence[_Plan],
          names: dict[int, frozenset[str]]) -> tuple[Section, ...]:
    sel = config.selection
    per_source: dict[str, int] = defaultdict(int)
    used: set[int] = set()
    general_names: list[frozenset[str]] = []
    total = 0
    out: list[Section] = []
    for part in plan:
        chosen: list[Story] = []
        for i, story in enumerate(stories):
            if total >= sel.max_stories or len(chosen) >= part.limit:
                break
            if i in used or per_source[story.lead.source] >= sel.per_source:
                continue
            if part.topics and not set(part.topics) & set(story.topics):
                continue
            mine = names.get(id(story), frozenset())
            if not part.topics and _repeats(mine, general_names):
                continue
            chosen.append(story)
            used.add(i)
            per_source[story.lead.source] += 1
            total += 1
            if not part.topics:
                general_names.append(mine)
        if chosen:  # empty sections are dropped
            out.append(Section(title=part.title, stories=tuple(chosen), topic=part.topic))
    return tuple(out)


def _repeats(mine: frozenset[str], chosen: list[frozenset[str]]) -> bool:
    if len(mine) < 2:
        return False
    return any(len(mine & other) >= DIVERSITY_OVERLAP * min(len(mine), len(other))
               and len(mine & other) >= 2 for other in chosen)


def variant_key(subscriber: Subscriber) -> str:
    """The digest variant a subscriber gets: 'all', or the topics they chose, in
    their order (their first topic's section comes first).

    Derived from the subscriber alone, so a digest frozen in the store can be
    matched again on a rerun without re-ranking.
    """
    return "+".join(dict.fromkeys(subscriber.topics)) or "all"


def without(stories: Sequence[Story], exclude: set[int], config: Config,
            now: datetime) -> list[Story]:
    """The stories minus articles already sent; a story whose every article went
    out is dropped, one that lost its lead gets a new lead and a new score."""
    if not exclude:
        return list(stories)
    feeds = {f.url: f for f in config.feeds}
    out = []
    for s in stories:
        left = [a for a in s.articles if a.id not in exclude]
        if len(left) == len(s.articles):
            out.append(s)
        elif left:
            out.append(score_story(left, feeds, set(s.topics), config, now))
    out.sort(key=order_key)
    return out


def for_variant(ranked: Ranked, config: Config, variant: str, *,
                exclude: set[int] | None = None, now: datetime | None = None) -> Selection:
    """The selection one variant gets: general sections plus its own topics'
    sections, leaving out ``exclude`` (articles its readers already got)."""
    day = ranked.selection.day
    if variant == "all" and not exclude:
        return ranked.selection
    stories: Sequence[Story] = ranked.stories
    names = ranked.names or {}
    if exclude:
        when = now or ranked.now or datetime.now().astimezone()
        kept = without(stories, exclude, config, when)
        fresh = [s for s in kept if id(s) not in names]
        names = {**names, **_story_names(fresh)} if fresh else names
        stories = kept
    return select(stories, config, day, variant, names=names)
