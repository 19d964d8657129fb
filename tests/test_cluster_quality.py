"""Story clustering against the labelled days: the fictional one in
tests/data/clustering/ (see its README) and the real one in tests/data/realday/
(events.toml; every item of 48 h of real feeds, labelled by an editor's rule)."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from digest.rank import cluster
from tests.clusterset import (
    Labelled,
    PairScore,
    load,
    load_realday,
    padded_realday,
    pairwise,
    realday_window,
    synthetic_day,
)


@pytest.fixture(scope="module")
def labelled() -> Labelled:
    return load()


@pytest.fixture(scope="module")
def groups(labelled: Labelled) -> list[list[int]]:
    index = {a.id: k for k, a in enumerate(labelled.articles)}
    return [[index[a.id] for a in g] for g in cluster.cluster(list(labelled.articles))]


def test_the_set_is_what_the_issue_asks_for(labelled: Labelled) -> None:
    assert len(labelled.articles) >= 150
    assert len({a.source for a in labelled.articles}) >= 8
    events = Counter(labelled.labels)
    assert len(events) >= 30
    assert sum(n > 1 for n in events.values()) >= 30  # multi-outlet events, not singletons
    assert {"de", "es", "fr"} <= set(labelled.langs)
    assert all(a.summary for a in labelled.articles)


def indexes(day: Labelled) -> list[list[int]]:
    index = {a.id: k for k, a in enumerate(day.articles)}
    return [[index[a.id] for a in g] for g in cluster.cluster(list(day.articles))]


# Tuning discipline (issue 18): the pair weights, LEX_MIN and COS_ALONE were set on
# the fictional day and are reported on the real one; the event evidence that starts
# a story (pairscore.SPECIFIC, SPECIFIC_PER_CAP, COS_EVENT, the headline and
# one-outlet rules, calendar words) was set on the real day (1.000 / 0.957) and is
# reported on the fictional one, which it leaves unchanged (1.000 / 0.897).
# The second round (issue 18, robust to the day's size and make-up): a specific
# word in a headline counts only with a cosine past COS_WORD 0.3 (set on the
# fictional day: 0.4 loses its Antofagasta paraphrases, 0.870; the real day is
# the same at 0.3 and 0.4); the country list (PLACES), COS_PLACE 0.45 and REPEATS 1
# were set on the real day's 36 h window and the padded day. Reported: fiction
# 1.000 / 0.891, real day 1.000 / 0.957, its 36 h 1.000 / 1.000, padded (real
# part) 0.818 / 0.783.
@pytest.mark.parametrize("which", ["fiction", "realday"])
def test_pairwise_precision_and_recall(which: str) -> None:
    day = load() if which == "fiction" else load_realday()
    score = pairwise(indexes(day), day.labels)
    assert score.precision >= 0.95, score
    assert score.recall >= 0.85, score


def test_the_real_day_in_the_pipelines_36_hours() -> None:
    # The window digest ranks by default (max_age_hours = 36): a smaller day, in
    # which a country ("China", "Chinese") is in few articles. Measured 1.000 / 1.000;
    # the one false pair it had (0.950) was the crying-horse toy with Polymarket.
    day = realday_window(36)
    score = pairwise(indexes(day), day.labels)
    assert score.precision == 1.0, score
    assert score.recall >= 0.9, score


def real_part(day: Labelled, real: int) -> PairScore:
    index = {a.id: k for k, a in enumerate(day.articles)}
    groups = [[index[a.id] for a in g if index[a.id] < real]
              for g in cluster.cluster(list(day.articles))]
    return pairwise(groups, day.labels[:real])


def test_the_real_day_padded_with_other_news() -> None:
    # The real day with the fictional day laid over its last 24 h (268 articles):
    # the real events do not change, how many articles carry a word does. Scored
    # on the real part. Measured 0.818 / 0.783 (was 0.581 / 0.783 before the
    # headline, country and repeat rules): two topic pairs still start a story
    # here ("Epstein files" in both headlines, five articles from four outlets;
    # Iran talks vs Iran's crackdown at cosine 0.62), see the xfail below.
    day, real = padded_realday()
    score = real_part(day, real)
    assert score.precision >= 0.8, score
    assert score.recall >= 0.75, score


@pytest.mark.xfail(strict=True, reason="issue 18 target not reached on the padded day: "
                   "precision 0.818 on its real part")
def test_the_padded_real_day_reaches_the_target() -> None:
    day, real = padded_realday()
    assert real_part(day, real).precision >= 0.95


def test_the_real_day_is_labelled_whole() -> None:
    # load_realday raises unless every item of the window is labelled.
    day = load_realday()
    assert len(day.articles) >= 81
    news = {"cbs-world", "the-week", "washington-post-world", "npr-world"}
    assert news <= {a.source for a in day.articles}
    events = Counter(day.labels)
    assert sum(n > 1 for n in events.values()) >= 5


@pytest.mark.parametrize("a, b", [
    ("quake-chile", "quake-japan"),
    ("ecb-hold", "norges-cut"),
    ("rail-strike", "dock-strike"),
    ("rail-strike", "nurses-strike"),
    ("match-rovers-city", "match-athletic-united"),
    ("brandt-budget", "brandt-expenses"),
    ("nairobi-summit", "rainer-border"),
    ("storm-ireland", "typhoon-luzon"),
    ("recall-ebikes", "recall-formula"),
])
def test_traps_stay_apart(labelled: Labelled, groups: list[list[int]], a: str, b: str) -> None:
    for g in groups:
        labels = {labelled.labels[k] for k in g}
        assert not {a, b} <= labels, [labelled.articles[k].title for k in g]


def test_paraphrases_with_little_word_overlap_meet(labelled: Labelled,
                                                   groups: list[list[int]]) -> None:
    owner = {k: n for n, g in enumerate(groups) for k in g}
    titles = {a.title: k for k, a in enumerate(labelled.articles)}
    same = [("Strong quake jolts Chile's mining north",
             "Copper output halted at Antofagasta mines after tremor"),
            ("Norway trims interest rates in surprise move",
             "Krone tumbles as Oslo lowers borrowing costs"),
            ("Chatterly down worldwide for hours",
             "Millions unable to send messages as popular app fails")]
    for x, y in same:
        assert owner[titles[x]] == owner[titles[y]], (x, y)


def test_updates_from_one_feed_fold_in(labelled: Labelled, groups: list[list[int]]) -> None:
    titles = {a.title: k for k, a in enumerate(labelled.articles)}
    first = titles["Chile earthquake: at least three dead, dozens injured"]
    update = titles["Chile quake death toll rises to seven as rescuers search rubble"]
    assert any(first in g and update in g for g in groups)


def test_non_english_articles_glue_nothing_unrelated(labelled: Labelled,
                                                     groups: list[list[int]]) -> None:
    for g in groups:
        if any(labelled.langs[k] != "en" for k in g):
            assert len({labelled.labels[k] for k in g}) == 1


def test_every_article_in_exactly_one_story(labelled: Labelled,
                                            groups: list[list[int]]) -> None:
    flat = sorted(k for g in groups for k in g)
    assert flat == list(range(len(labelled.articles)))


def test_scorer() -> None:
    labels = ["a", "a", "a", "b", "b", "c"]
    perfect = pairwise([[0, 1, 2], [3, 4], [5]], labels)
    assert (perfect.precision, perfect.recall, perfect.true_pairs) == (1.0, 1.0, 4)
    glued = pairwise([[0, 1, 2, 3, 4], [5]], labels)  # 10 pairs, 4 right
    assert glued.precision == pytest.approx(0.4) and glued.recall == 1.0
    split = pairwise([[0, 1], [2], [3], [4], [5]], labels)  # 1 of 4 true pairs
    assert split.precision == 1.0 and split.recall == pytest.approx(0.25)
    assert pairwise([[k] for k in range(6)], labels).recall == 0.0


def test_synthetic_day_keeps_events_apart_across_copies() -> None:
    day = synthetic_day(600)
    assert len(day.articles) == 600
    assert len({a.guid for a in day.articles}) == 600
    index = {a.id: k for k, a in enumerate(day.articles)}
    groups = [[index[a.id] for a in g] for g in cluster.cluster(list(day.articles))]
    score = pairwise(groups, day.labels)
    # Perturbed copies read as word salad to the sentence vectors, so recall is
    # not the point here; copies of one event must not be glued together.
    assert score.precision >= 0.8, score
    base = {label.split("#")[0] for label in day.labels}
    assert len(base) == len(set(load().labels))


def test_tiny_and_odd_inputs() -> None:
    assert cluster.cluster([]) == []
    base = load().articles
    assert cluster.cluster([base[0]]) == [[base[0]]]
    odd = [replace(base[0], id=900, guid="x1", title="!!! ???", summary=""),
           replace(base[1], id=901, guid="x2", title="智利北部发生6.8级地震",
                   summary="至少三人死亡。"),
           replace(base[2], id=902, guid="x3", title="", summary=""),
           *base[:3]]
    groups = cluster.cluster(odd)
    assert sorted(a.id for g in groups for a in g) == sorted(a.id for a in odd)
    assert [odd[0]] in groups and [odd[2]] in groups
