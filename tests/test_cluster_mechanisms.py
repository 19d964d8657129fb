"""Each clustering mechanism held on its own, on pairs and scores built for the
purpose (not on the labelled days): the gap rule, the evidence majority (no
chaining through one member), no merging on time alone, the contradiction
penalty, LSH for paraphrases blocking misses, and both scoring paths weighing a
pair the same."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from digest.models import Article
from digest.rank import cluster, merge, pairscore
from digest.rank.candidates import blocked_pairs, lsh_codes
from digest.rank.signatures import signatures

T0 = datetime(2026, 3, 4, 8, tzinfo=UTC)


def articles(titles: Sequence[str], summaries: Sequence[str] | None = None) -> list[Article]:
    """One article per title, each from its own outlet, ten minutes apart."""
    return [Article(feed_url=f"https://o{k}.example/feed", source=f"O{k}", guid=f"g{k}",
                    url=f"https://o{k}.example/{k}", title=t,
                    summary=summaries[k] if summaries else "",
                    published=T0 + timedelta(minutes=10 * k), id=k)
            for k, t in enumerate(titles)]


@dataclass
class Scored:
    """What ``merge.link`` reads of a day: how many articles, a pair scorer, and
    which pairs share content evidence (every pair in ``table`` but the ``bare``)."""

    sigs: list[None]
    table: dict[tuple[int, int], float]
    bare: frozenset[tuple[int, int]] = frozenset()

    def scorer(self) -> Callable[[int, int], float]:
        return lambda x, y: self.table.get((min(x, y), max(x, y)), -1.0)

    def evidence(self) -> Callable[[int, int], bool]:
        return lambda x, y: (x, y) in self.table and (x, y) not in self.bare

    def starts(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.ones(len(i), bool)  # event evidence is tested on real scoring days


def link(n: int, table: dict[tuple[int, int], float],
         bulk: dict[tuple[int, int], float] | None = None,
         bare: frozenset[tuple[int, int]] = frozenset()) -> list[list[int]]:
    """``merge.link`` over the pairs of ``table`` (their bulk scores from ``bulk``
    where given, as score_pairs would hand them over; ``bare``: pairs without
    content evidence), groups sorted."""
    pairs = sorted(table)
    i = np.array([a for a, _ in pairs], np.int64)
    j = np.array([b for _, b in pairs], np.int64)
    given = {**table, **(bulk or {})}
    scores = np.array([given[p] for p in pairs], np.float64)
    day = Scored(sigs=[None] * n, table=table, bare=bare)
    return sorted(sorted(g) for g in merge.link(day, i, j, scores))  # type: ignore[arg-type]


# -- the gap rule and average linkage ------------------------------------------

def test_one_loose_link_does_not_chain_two_tight_events() -> None:
    # Two tight pairs; one strong pair across them (the same minister in two
    # stories), the other three cross pairs indifferent: the average across
    # (0.2) is above LINK but far below either event's own cohesion (1.0).
    table = {(0, 1): 1.0, (2, 3): 1.0, (1, 2): 0.8, (0, 2): 0.0, (0, 3): 0.0, (1, 3): 0.0}
    assert link(4, table) == [[0, 1], [2, 3]]


def test_two_tight_groups_about_as_alike_across_as_inside_merge() -> None:
    # The gap rule must not split one event reported twice: across 0.95, inside 1.0.
    table = {(0, 1): 1.0, (2, 3): 1.0, (1, 2): 0.95, (0, 2): 0.95, (0, 3): 0.95, (1, 3): 0.95}
    assert link(4, table) == [[0, 1, 2, 3]]
    # ...and the rule's margin is GAP: just inside it merges, just outside not.
    inside = {**table, **{p: 1.0 - merge.GAP + 0.01 for p in [(1, 2), (0, 2), (0, 3), (1, 3)]}}
    outside = {**table, **{p: 1.0 - merge.GAP - 0.01 for p in [(1, 2), (0, 2), (0, 3), (1, 3)]}}
    assert link(4, inside) == [[0, 1, 2, 3]]
    assert link(4, outside) == [[0, 1], [2, 3]]


def test_a_single_article_joins_a_group_only_on_the_average() -> None:
    # 2 likes 1 (0.5) but contradicts 0 (-0.6): the average across is below LINK.
    assert link(3, {(0, 1): 1.0, (1, 2): 0.5, (0, 2): -0.6}) == [[0, 1], [2]]
    assert link(3, {(0, 1): 1.0, (1, 2): 0.5, (0, 2): -0.4}) == [[0, 1, 2]]


def test_the_limits_are_inclusive() -> None:
    # An average across of exactly LINK joins; exactly GAP below the groups' own joins.
    assert link(3, {(0, 1): 1.0, (1, 2): 0.5, (0, 2): -0.5}) == [[0, 1, 2]]
    table = {(0, 1): 1.0, (2, 3): 1.0, (1, 2): 0.9, (0, 2): 0.9, (0, 3): 0.9, (1, 3): 0.9}
    assert sum([0.9] * 4) / 4 == 1.0 - merge.GAP  # exactly, in floats too
    assert link(4, table) == [[0, 1, 2, 3]]


def test_a_group_that_grew_is_judged_on_its_new_cohesion() -> None:
    # A={0,1} and B={2,3} meet first and stay apart (cohesions 1.0 noted); 6 joins A,
    # whose cohesion drops to 0.87; then A and C={4,5} meet at 0.78 across: within
    # GAP of A's cohesion now, not of the 1.0 it had.
    table = {(0, 1): 1.0, (2, 3): 1.0, (4, 5): 1.0, (1, 2): 0.85, (0, 2): 0.0, (0, 3): 0.0,
             (1, 3): 0.0, (0, 6): 0.8, (1, 6): 0.8}
    table |= {(min(a, c), max(a, c)): 0.78 for a in (0, 1, 6) for c in (4, 5)}
    assert link(7, table) == [[0, 1, 4, 5, 6], [2, 3]]


def test_pairs_below_zero_never_start_a_merge() -> None:
    assert link(2, {(0, 1): -0.01}) == [[0], [1]]
    assert link(2, {(0, 1): 0.0}) == [[0, 1]]


def test_the_best_pair_links_first() -> None:
    # 1 is claimed by whichever of 0 and 2 links first; they contradict each other.
    table = {(0, 1): 0.3, (1, 2): 0.9, (0, 2): -1.0}
    assert link(3, table) == [[0], [1, 2]]
    table = {(0, 1): 0.9, (1, 2): 0.3, (0, 2): -1.0}
    assert link(3, table) == [[0, 1], [2]]


def test_a_negative_bulk_score_counts_with_its_penalty() -> None:
    # score_pairs skips the penalty below 0 (bulk -0.05); the pair's real score,
    # penalty included, is -0.5. In the average across the groups the real one
    # must count, as it does for a pair blocking never proposed.
    table = {(0, 1): 1.0, (1, 2): 0.3, (0, 2): -0.5}
    assert link(3, table, bulk={(0, 2): -0.05}) == [[0, 1], [2]]


# -- no chaining: every member shares content with most of its story -----------

def test_no_chaining_through_one_member() -> None:
    # 1 is close to 0 and to 2; 0 and 2 share nothing ("cucumber prices in Russia",
    # "Russia-Ukraine war: key events", via "Russian flags at the Paralympics"). The
    # average across (0.45) clears LINK, so only the evidence rule keeps 2 out.
    # (A pair without evidence scores below 0: see the time-alone test below.)
    table = {(0, 1): 1.0, (1, 2): 1.0, (0, 2): -0.1}
    assert link(3, table) == [[0, 1, 2]]  # with evidence between 0 and 2: one story
    assert link(3, table, bare=frozenset({(0, 2)})) == [[0, 1], [2]]


def test_a_member_needs_evidence_with_more_than_half_of_the_others() -> None:
    # 4 joins the tight {0..3}: with evidence to 3 of the 4 it is in; with 2 of 4
    # (half) it is not, however high the average across.
    tight = {(a, b): 1.0 for a in range(4) for b in range(a + 1, 4)}
    table = tight | {(k, 4): 0.9 for k in range(4)} | {(0, 4): -0.1, (1, 4): -0.1}
    assert link(5, table, bare=frozenset({(0, 4)})) == [[0, 1, 2, 3, 4]]
    assert link(5, table, bare=frozenset({(0, 4), (1, 4)})) == [[0, 1, 2, 3], [4]]


def test_a_grown_group_counts_each_members_evidence() -> None:
    # 2 joins {0,1} with evidence to both; 3 then has evidence with 0 and 1 but
    # not 2: 2 of 3 is still a majority. 4 has it with 3 only: 1 of 4, out.
    table = {(0, 1): 1.0, (0, 2): 0.9, (1, 2): 0.9, (0, 3): 0.8, (1, 3): 0.8, (2, 3): -0.1,
             (3, 4): 0.7, (0, 4): -0.1, (1, 4): -0.1, (2, 4): -0.1}
    bare = frozenset({(2, 3), (0, 4), (1, 4), (2, 4)})
    assert link(5, table, bare=bare) == [[0, 1, 2, 3], [4]]
    assert link(5, table) == [[0, 1, 2, 3, 4]]


# -- time alone never joins ----------------------------------------------------

SAME_HOUR = [  # one outlet's batch at 07:00 sharp: unrelated, middling cosines
    ("What are the best investments for beginners?", "Stocks and ETFs and bonds, oh my"),
    ("What to know before filing your own taxes for the first time",
     "Tackle this financial milestone with confidence"),
    ("Ferry operator adds winter sailings", "More crossings to the islands from December."),
    ("Harbour ferry timetable changes for winter",
     "Extra boats will run to the islands in the cold months."),
]


def test_same_timestamp_unrelated_stay_apart() -> None:
    day_articles = [replace(a, published=T0) for a in articles(
        [t for t, _ in SAME_HOUR], [s for _, s in SAME_HOUR])]
    day = cluster.prepare(day_articles)
    # The two guides share no word or name and their cosine is only middling: no
    # content evidence, so even at 0 h apart (nothing subtracted for time) they
    # score below 0, on both paths, and link apart when proposed (as LSH might).
    assert 0.25 < float(day.vec[0] @ day.vec[1]) < pairscore.COS_ALONE
    assert not day.evidence()(0, 1)
    assert day.score(0, 1) < 0
    from digest.rank.candidates import add_lsh_pairs

    i, j, lexnum, keynum = add_lsh_pairs(day, *blocked_pairs(day), found=np.array([1]))
    assert (0, 1) in set(zip(i.tolist(), j.tolist(), strict=True))
    bulk = pairscore.score_pairs(day, i, j, lexnum, keynum)
    assert bulk.max() >= 0 and bulk[(i == 0) & (j == 1)][0] < 0
    assert sorted(sorted(g) for g in merge.link(day, i, j, bulk)) == [[0], [1], [2, 3]]
    # The same pair is no closer for being published in the same second than an hour apart.
    later = [day_articles[0], replace(day_articles[1], published=T0 + timedelta(hours=1))]
    assert cluster.prepare(later).score(0, 1) <= day.score(0, 1)


def test_without_evidence_no_weights_reach_zero() -> None:
    # Linking takes a pair scoring >= 0 as evidenced: without a shared rarer name,
    # with word overlap under LEX_MIN and no cosine counted, no pair may reach 0.
    assert pairscore.W_LEX * pairscore.LEX_MIN + pairscore.BIAS < 0
    assert pairscore.W_LEX_CROSS * pairscore.LEX_MIN + pairscore.BIAS_CROSS < 0


def test_a_topic_of_a_small_day_is_no_evidence() -> None:
    # Ten of forty articles name Iran: the talks, the protests, the oil price...
    # "Iran" is the day's topic, not an event, so it is not rare: a pair that
    # shares only it (and a middling cosine) has no evidence and is not blocked on.
    topics = [f"Iran {what}" for what in ("talks resume in Geneva", "protests grow in Tabriz",
                                          "oil exports rise", "football team qualifies",
                                          "currency falls again", "airline buys jets",
                                          "heatwave hits south", "film wins prize",
                                          "earthquake shakes Kerman", "chess star defects")]
    fillers = [f"{name} council approves new park" for name in (
        "Valdor", "Kesmir", "Orlan", "Tavik", "Brenna", "Ostrel", "Qumar", "Halden", "Zerin",
        "Pellam", "Arvost", "Misra", "Dunmore", "Savel", "Ulric", "Norvik", "Farrow", "Lisk",
        "Morran", "Tessel", "Quillon", "Ardent", "Bexley", "Corvin", "Delmar", "Esker",
        "Fennick", "Gorlan", "Hestia", "Ivel")]
    day = cluster.prepare(articles(topics + fillers))
    assert len(day.sigs) == 40 and day.df["iran"] == 10
    assert day.cap == pairscore.TOPIC_MIN < day.df["iran"]
    assert not day.evidence()(0, 2)  # talks in Geneva / oil exports: only "Iran"
    i, j, _, _ = blocked_pairs(day)
    assert (0, 2) not in set(zip(i.tolist(), j.tolist(), strict=True))
    # A large day keeps the fixed cap: a tenth of it is far too many to block on.
    assert pairscore.posting_cap(20_000) == max(pairscore.MAX_POSTING, 20)
    assert pairscore.posting_cap(181) == 18 and pairscore.posting_cap(3) == pairscore.TOPIC_MIN


# -- the contradiction penalty -------------------------------------------------

def test_penalty_values() -> None:
    chile, hokkaido, chile_update, rate_cut, rate_hold, toll_a, toll_b = signatures(articles([
        "Strong quake strikes Chile", "Strong quake strikes Hokkaido",
        "Chile counts the damage after the quake",
        "Central bank cuts its key rate to 3.75%", "Central bank holds its key rate at 2%",
        "Chile quake death toll rises to 7", "Chile quake death toll reaches 12",
    ]))
    assert pairscore.penalty(chile, hokkaido) == pairscore.W_CONFLICT > 0
    assert pairscore.penalty(chile, chile_update) == 0.0
    assert pairscore.penalty(chile, chile) == 0.0
    # Figures in both headlines, none shared: another event told from one template.
    assert pairscore.penalty(rate_cut, rate_hold) == pytest.approx(
        pairscore.W_CONFLICT + pairscore.VETO)
    # With a name in common it may be an update: a smaller penalty.
    assert pairscore.penalty(toll_a, toll_b) == pytest.approx(
        pairscore.W_CONFLICT + pairscore.W_NUMBERS)
    assert 0 < pairscore.W_NUMBERS < pairscore.VETO


@pytest.mark.parametrize("a, b", [
    ("Magnitude 6.8 quake strikes off Chile's coast",
     "Magnitude 6.1 quake strikes off Hokkaido's coast"),
    ("Central bank cuts its key rate to 3.75%", "Central bank holds its key rate at 2%"),
])
def test_contradicting_headlines_stay_apart(a: str, b: str) -> None:
    day_articles = articles([a, b])
    day = cluster.prepare(day_articles)
    # Alike enough to merge on everything else: it is the penalty that holds them apart.
    penalty = pairscore.penalty(day.sigs[0], day.sigs[1])
    assert day.score(0, 1) + penalty >= 0
    assert day.score(0, 1) < 0
    assert len(cluster.cluster(day_articles)) == 2


# -- LSH: paraphrases blocking cannot see --------------------------------------

PARAPHRASES = [("Volcano erupts", "Volcanic eruption"),
               ("Cyberattack", "Cyber attack"),
               ("Stock market crash", "Stockmarket crashes")]
OTHERS = ["Parliament passes the budget", "Tennis star wins the final",
          "Museum reopens after renovation", "Chess champion retires"]


def test_lsh_finds_paraphrases_that_share_no_word_to_block_on() -> None:
    titles = [t for pair in PARAPHRASES for t in pair] + OTHERS
    day_articles = articles(titles)
    day = cluster.prepare(day_articles)
    i, j, _, _ = blocked_pairs(day)
    blocked = set(zip(i.tolist(), j.tolist(), strict=True))
    n = len(titles)
    found = {divmod(c, n) for c in lsh_codes(day).tolist()}
    groups = {frozenset(a.title for a in g) for g in cluster.cluster(day_articles)}
    for k, (a, b) in enumerate(PARAPHRASES):
        pair = (2 * k, 2 * k + 1)
        assert pair not in blocked, (a, b)  # no shared word: blocking alone misses it
        assert pair in found, (a, b)
        assert frozenset((a, b)) in groups, (a, b)
    assert all(frozenset((t,)) in groups for t in OTHERS)


# -- both scoring paths give a pair the same score -----------------------------

def assert_paths_agree(day_articles: list[Article]) -> None:
    """score_pairs (bulk) and Day.scorer (one pair at a time) give every candidate
    pair the same score, the penalty aside where bulk leaves it out."""
    from digest.rank.candidates import add_lsh_pairs

    day = cluster.prepare(day_articles)
    blocked = blocked_pairs(day)
    n = len(day.sigs)
    by_blocking = set((blocked[0] * n + blocked[1]).tolist())
    i, j, lexnum, keynum = add_lsh_pairs(day, *blocked)
    bulk = pairscore.score_pairs(day, i, j, lexnum, keynum)
    one = day.scorer()
    lazy = np.array([one(a, b) for a, b in zip(i.tolist(), j.tolist(), strict=True)])
    penalties = np.array([pairscore.penalty(day.sigs[a], day.sigs[b])
                          for a, b in zip(i.tolist(), j.tolist(), strict=True)])
    merging = bulk >= 0
    # Pairs that may merge: the same score both ways, penalty included.
    assert np.allclose(bulk[merging], lazy[merging], atol=1e-5)
    # Pairs below 0 in bulk: penalised if they scored >= 0 before it, else they lack
    # only their penalty (which is why linking re-scores them one at a time).
    window = bulk == -1.0
    # (LSH-only pairs enter the bulk without the few words they share: not compared.)
    rest = ~merging & ~window & np.isin(i * n + j, list(by_blocking))
    penalised = np.isclose(bulk, lazy, atol=1e-5) & (bulk + penalties >= 0)
    unpenalised = np.isclose(bulk - penalties, lazy, atol=1e-5) & (bulk < 0)
    assert np.all((penalised | unpenalised)[rest])
    assert np.all(lazy[window] == -1.0)


def test_bulk_and_one_at_a_time_scores_agree_on_the_labelled_day() -> None:
    from tests.clusterset import load

    assert_paths_agree(list(load().articles))


def test_bulk_and_one_at_a_time_scores_agree_past_the_edges() -> None:
    # A word in more articles than the blocking cap counts for nothing in either
    # path; reports 36 h apart are still scored, 40 h apart are not one event.
    names = ["Valdor", "Kesmir", "Orlan", "Tavik", "Brenna", "Ostrel", "Qumar", "Halden",
             "Zerin", "Pellam", "Arvost", "Misra", "Dunmore", "Savel", "Ulric", "Norvik",
             "Farrow"]
    titles = [f"Storm warning as {name} braces for gales" for name in names for _ in (0, 1)]
    day_articles = articles(titles, [f"Storm {k}: officials in {names[k // 2]} ready "
                                     "shelters." for k in range(len(titles))])
    assert len(day_articles) > pairscore.MAX_POSTING
    day_articles[1] = replace(day_articles[1], published=day_articles[0].published
                              + timedelta(hours=pairscore.WINDOW_HOURS))
    day_articles[3] = replace(day_articles[3], published=day_articles[2].published
                              + timedelta(hours=40))
    day = cluster.prepare(day_articles)
    assert day.df["storm"] > day.cap
    assert day.score(0, 1) > -1.0 and day.score(2, 3) == -1.0
    assert_paths_agree(day_articles)


def test_the_days_evidence_follows_the_documented_formulas() -> None:
    day_articles = articles(["Storm hits Valdor coast", "Storm hits Kesmir", "Quiet day in Orlan"])
    day = cluster.prepare(day_articles)
    n = len(day_articles)
    for word, df in day.df.items():
        assert day.idf[word] == pytest.approx(np.log((n + 10) / (df + 0.5)))
    for k, s in enumerate(day.sigs):
        assert day.norm[k] == pytest.approx(np.sqrt(sum(day.idf[w] ** 2 for w in s.words)))
        assert day.key_mass[k] == pytest.approx(sum(day.idf[w] for w in s.keys))
        assert day.hours[k] == pytest.approx(day_articles[k].published.timestamp() / 3600.0)
    assert day.df["storm"] == 2 and day.cap == pairscore.posting_cap(n) == pairscore.TOPIC_MIN
    assert day.vec.shape[0] == n and np.allclose(np.linalg.norm(day.vec, axis=1), 1.0)
