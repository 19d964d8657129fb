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


# -- event evidence: what may start a story ------------------------------------

FILLERS = [  # a day's other news, on other subjects
    "Valdor council approves new park", "Kesmir bakery celebrates 200 years",
    "Storm floods coastal road near Orlan", "Tavik Rovers sign teenage striker",
    "Brenna hospital opens cancer wing", "Ostrel airport strike delays flights",
    "Qumar election count goes to recount", "Halden museum returns looted statue",
    "Zerin ferry runs aground, no one hurt", "Pellam school bans phones in class",
    "Arvost bank raises savings rates", "Misra wildfire forces evacuations",
    "Dunmore choir tours Japan", "Savel startup builds solid-state batteries",
    "Ulric bridge closes for repairs", "Norvik zoo welcomes twin pandas",
    "Farrow novelist wins book award", "Lisk police seize forged banknotes"]


def feed_day(rows: Sequence[tuple[str, str, str]]) -> list[Article]:
    """One article per (outlet, title, summary), ten minutes apart, then the
    fillers (each its own outlet): a small day, where few articles make a word
    specific (pairscore.specific_limit)."""
    return [Article(feed_url=f"https://{o}.example/feed", source=o, guid=f"g{k}",
                    url=f"https://{o}.example/{k}", title=t, summary=s,
                    published=T0 + timedelta(minutes=10 * k), id=k)
            for k, (o, t, s) in enumerate([*rows, *(("f" + str(k), t, "") for k, t in
                                                    enumerate(FILLERS))])]


def together(day_articles: list[Article], a: int, b: int) -> bool:
    return any({a, b} <= set(g) for g in cluster.cluster_indexes(day_articles))


CLIP = "From Tuesdays with Stories #641 Black Pleasantville @marknormand @JoeListComedy"
OLYMPICS = [
    ("cbs", "See the Olympic medal count for the Winter Games",
     "Here is where the medal count stands for Team USA at the Winter Olympics."),
    ("week", "The Olympic timekeepers keeping the Games on track",
     "Swiss watchmaking giant Omega has been at the finish line for nearly 100 years."),
    ("npr", "Bobsledder Elana Meyers Taylor wins gold at the Winter Olympics",
     "Meyers Taylor won her first Olympic gold in the women's monobob at the Games."),
    ("post", "Meyers Taylor, 41, takes monobob gold in her fifth Olympic Games",
     "The oldest American woman to win Winter Olympics gold, Meyers Taylor said."),
    ("ap", "Malinin speaks of Olympic pressure after falls at the Winter Games",
     "The skater says the Olympics brought endless pressure."),
    ("bbc", "Lindsey Vonn leaves Italy after her Olympic crash at the Winter Games",
     "The skier crashed in the Olympic downhill a week ago."),
]


def test_a_topic_word_does_not_start_a_story() -> None:
    # Every Olympic piece says "Olympic", "Games", "Winter": in a small day those
    # are the topic (in more articles than specific_limit), not an event. The medal
    # count and the timekeepers share nothing else and read only middling alike:
    # they score >= 0 (content evidence: a name under the blocking cap) but carry
    # no event evidence, so they do not start a story. The two reports on Meyers
    # Taylor share her name, in two articles only: that starts one.
    day_articles = feed_day(OLYMPICS)
    day = cluster.prepare(day_articles)
    limit = pairscore.specific_limit(len(day_articles))
    assert day.df["olympic"] > limit and day.df["meyer"] == 2 <= limit
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) < pairscore.COS_EVENT
    pairs = np.array([0, 2]), np.array([1, 3])
    assert day.starts(*pairs).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 2, 3)


EPSTEIN = [
    ("week", "Hyatt chair joins growing list of Epstein files losers",
     "Thomas Pritzker stepped down as executive chair of the Hyatt Hotels Corporation over "
     "his ties with Jeffrey Epstein and Ghislaine Maxwell"),
    ("post", "The Epstein files have brought a wave of resignations and investigations",
     "A number of prominent figures have stepped down or are facing investigations after "
     "their communications with Jeffrey Epstein and his former longtime companion, "
     "Ghislaine Maxwell, were released last month."),
    ("cbs", "Epstein survivor tells CBS News how she was trafficked",
     "Juliette Bryant says Jeffrey Epstein assaulted her."),
    ("pod", "Comedians joke about the Epstein files", "A new special on Jeffrey Epstein."),
    ("npr", "What the Epstein files say about Wall Street", "Bankers appear in the emails."),
    ("npr", "Navalny was poisoned with dart frog toxin, European leaders say",
     "Five governments say Alexei Navalny was killed in prison."),
    ("week", "Alexei Navalny and Russia's history of poisonings",
     "The Kremlin's use of poison to silence critics."),
]


def test_a_specific_word_counts_when_a_headline_carries_it() -> None:
    # The Hyatt chair's resignation and the round-up of resignations share rare
    # names ("Ghislaine", "Maxwell", in two articles), but only in their leads,
    # where a name is background; their headlines share only the topic,
    # "Epstein". The two Navalny pieces share his name in their headlines.
    day_articles = feed_day(EPSTEIN)
    day = cluster.prepare(day_articles)
    limit = pairscore.specific_limit(len(day_articles))
    assert min(day.df["epstein"], day.df["file"]) > limit and day.df["ghislaine"] == 2 <= limit
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) < pairscore.COS_EVENT
    assert "ghislaine" not in day.sigs[0].title_words | day.sigs[1].title_words
    assert day.starts(np.array([0, 5]), np.array([1, 6])).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 5, 6)


def test_one_outlets_two_pieces_need_one_specific_name_in_both_headlines() -> None:
    # Two clips of one podcast episode carry the same blurb: specific words in
    # common ("Pleasantville", "641") and a high cosine from the blurb alone. From
    # two outlets that would start a story; from one, the headlines must name the
    # same specific thing, as an outlet's update does ("Elana Meyers Taylor").
    day_articles = feed_day([
        ("pod", "The Worst Thing About the Barbershop", CLIP),
        ("pod", "Pod vs Com", CLIP),
        ("cbs", "Bobsledder Elana Meyers Taylor, 41, wins gold in 5th Olympic appearance",
         "She made history as the oldest American woman to win it."),
        ("cbs", "Bobsledder Elana Meyers Taylor captures gold, her sixth Olympic medal",
         "The American won her first gold in the women's monobob."),
    ])
    day = cluster.prepare(day_articles)
    assert day.score(0, 1) >= 0 and float(day.vec[0] @ day.vec[1]) >= pairscore.COS_EVENT
    assert day.starts(np.array([0, 2]), np.array([1, 3])).tolist() == [False, True]
    assert not together(day_articles, 0, 1)
    assert together(day_articles, 2, 3)


def test_another_outlet_can_tie_one_outlets_two_pieces() -> None:
    # One outlet's two reports on the talks name nothing specific in both
    # headlines (only "Iran", the day's topic), so their own pair starts nothing;
    # a second outlet's report, evidenced with each, ties all three into one story.
    day_articles = feed_day([
        ("cbs", "U.S. and Iran wrap up second round of nuclear talks in Geneva",
         "Negotiators say there has been progress in Geneva."),
        ("cbs", "Iran calls the talks with U.S. more constructive",
         "Negotiators sat down in Geneva to discuss a deal."),
        ("npr", "Iran and U.S. negotiators end second round of Geneva nuclear talks",
         "The talks in Geneva ended with progress, negotiators said."),
        ("post", "Popular anger burns in Iran after crackdown",
         "Iranians say outrage has not abated."),
        ("week", "Will tensions with Iran boil over into war?", "Threats from Washington grow."),
    ])
    day = cluster.prepare(day_articles)
    assert day.df["iran"] > pairscore.specific_limit(len(day_articles))
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert together(day_articles, 0, 1) and together(day_articles, 1, 2)


def test_a_date_is_not_what_two_pieces_share() -> None:
    # Two pages of one magazine issue: their headlines share only the date.
    day_articles = feed_day([
        ("week", "Magazine solutions - February 27, 2026",
         "Magazine solutions - February 27, 2026"),
        ("week", "Magazine printables - February 27, 2026",
         "Magazine printables - February 27, 2026"),
    ])
    day = cluster.prepare(day_articles)
    assert day.score(0, 1) >= 0 and "february" in day.sigs[0].title_keys & day.sigs[1].title_keys
    assert not day.starts(np.array([0]), np.array([1]))[0]
    assert not together(day_articles, 0, 1)
    assert [pairscore.calendar(w) for w in ("february", "tuesday", "2026", "27", "geneva")] == [
        True, True, True, False, False]
    assert pairscore.specific_limit(87) == pairscore.SPECIFIC == 3
    assert pairscore.specific_limit(181) == 6 and pairscore.specific_limit(20_000) == 10
