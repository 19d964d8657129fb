"""Clustering + ranking of synthetic news days, and how the time grows.

    .venv/bin/python bench/rank.py [--sizes 5000,10000,20000,40000] [--baseline 5000]
                                   [--repeat 3]

Days are built by perturbing the labelled set (tests/data/clustering): each copy of
it becomes a new set of events (new invented names, shifted numbers, part of the
vocabulary swapped, times spread over two days). Each size is timed cold, best of
--repeat runs: before each run the sentence-vector chunk caches (here and in the
embedding worker process) and the word caches are emptied, and the runs before
it are cleared away, stories and garbage (a real run has none in its process;
a daemon frees yesterday's long before). The model itself is loaded and the
worker started once, and a 500-article day ranked once, before timing, as in a
daemon.

baseline: naive all-pairs at the first size — the same pair score for every pair
of the day (sentence-vector cosine by blocked matrix products, word overlap from
the same inverted index), then the same linking. The fast path scores only
blocked and LSH candidate pairs. Both paths are timed --repeat times on the same
prepared day and each side's best counts (like with like).

Targets (issue 4): 20k articles clustered and ranked in under 2 s; fitted growth
exponent <= 1.2.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest import config as config_mod  # noqa: E402
from digest.rank import candidates, cluster, embed, merge, pairscore  # noqa: E402
from digest.rank import select as rank  # noqa: E402
from digest.rank import signatures as textsig  # noqa: E402
from tests.clusterset import pairwise, synthetic_day  # noqa: E402

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
DAY = date(2026, 11, 27)


def cold() -> None:
    """Forget everything learnt from earlier days except the model itself."""
    embed.forget()  # the chunk caches, here and in the embedding worker
    for f in (textsig.fold, textsig.stem, textsig._word, textsig._number):
        f.cache_clear()


def blocked_pairs_stage(day: pairscore.Day) -> list[list[int]]:
    """What cluster.cluster does after reading the articles: candidates, scores, links."""
    i, j, lexnum, keynum = candidates.blocked_pairs(day)
    i, j, lexnum, keynum = candidates.add_lsh_pairs(day, i, j, lexnum, keynum)
    return merge.link(day, i, j, pairscore.score_pairs(day, i, j, lexnum, keynum))


def naive_pairs_stage(day: pairscore.Day) -> list[list[int]]:
    """The same scores for every pair of the day, then the same linking."""
    n = len(day.sigs)
    # Word and name overlap of every pair that shares any (rarer) word: the rest is 0.
    bi, bj, lexnum, keynum = candidates.blocked_pairs(day, min_lex=-1.0)
    keep_i, keep_j, keep_s = [], [], []
    cols = np.arange(n)
    step = 512
    for start in range(0, n, step):
        rows = np.arange(start, min(n, start + step))
        cos = day.vec[rows] @ day.vec.T  # every pair, this block of rows
        lx = np.zeros_like(cos, dtype=np.float64)
        ky = np.zeros_like(cos, dtype=np.float64)
        inside = (bi >= start) & (bi < start + step)
        lx[bi[inside] - start, bj[inside]] = lexnum[inside]
        ky[bi[inside] - start, bj[inside]] = keynum[inside]
        r, j = np.nonzero(cols[None, :] > rows[:, None])
        i = rows[r]
        lex = lx[r, j] / np.maximum(day.norm[i] * day.norm[j], 1e-9)
        names = 2 * ky[r, j] / np.maximum(day.key_mass[i] + day.key_mass[j], 1e-9)
        dt = np.abs(day.hours[i] - day.hours[j])
        s = pairscore.combine(cos[r, j], lex, names, dt,
                              day.english[i] & day.english[j], day.feed[i] == day.feed[j])
        s[dt > pairscore.WINDOW_HOURS] = -1.0
        for k in np.flatnonzero(s >= 0):
            s[k] -= pairscore.penalty(day.sigs[i[k]], day.sigs[j[k]])
        keep = s >= 0
        keep_i.append(i[keep])
        keep_j.append(j[keep])
        keep_s.append(s[keep])
    return merge.link(day, np.concatenate(keep_i), np.concatenate(keep_j),
                      np.concatenate(keep_s))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,10000,20000,40000")
    parser.add_argument("--baseline", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="cold runs per size; the best counts (this machine's speed "
                             "swings by a third between runs)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    config = config_mod.load(REPO / "config.toml")
    embed.warm()  # the model loads (and the embedding worker starts) once, before any timing
    # One small day first, so one-off process costs (thread pools, first large
    # allocations) do not land on the first size and skew the fitted exponent.
    rank.rank(synthetic_day(500).articles, config, now=NOW, day=DAY)
    print(f"{'articles':>9} {'seconds':>8} {'stories':>8} {'pairs P':>8} {'pairs R':>8}"
          f"   every cold run (best of {args.repeat} counts)")
    timings: list[tuple[int, float]] = []
    ranked: rank.Ranked | None = None
    for size in sizes:
        ranked = None  # the last size's stories go before this size is built
        day = synthetic_day(size)
        runs = []
        for _ in range(max(1, args.repeat)):
            cold()  # every run starts from nothing learnt, as a new day would
            ranked = None
            gc.collect()  # and without the garbage of the runs before it
            started = time.perf_counter()
            ranked = rank.rank(day.articles, config, now=NOW, day=DAY)
            runs.append(time.perf_counter() - started)
        seconds = min(runs)
        timings.append((size, seconds))
        assert ranked is not None
        index = {a.id: k for k, a in enumerate(day.articles)}
        score = pairwise([[index[a.id] for a in s.articles] for s in ranked.stories], day.labels)
        print(f"{size:>9,} {seconds:>8.2f} {len(ranked.stories):>8,} "
              f"{score.precision:>8.3f} {score.recall:>8.3f}   "
              f"{', '.join(f'{r:.2f}' for r in runs)}", flush=True)
    xs = np.log([n for n, _ in timings])
    ys = np.log([t for _, t in timings])
    exponent = float(np.polyfit(xs, ys, 1)[0]) if len(timings) > 1 else math.nan
    print(f"fitted growth exponent: {exponent:.2f}  (time ~ n^k over {sizes[0]:,}..{sizes[-1]:,})")
    for n, t in timings:
        if n == 20000:
            print(f"20k articles: {t:.2f} s ({'under' if t < 2 else 'OVER'} the 2 s target)")

    base = synthetic_day(args.baseline)
    cold()
    fast_runs: list[float] = []
    naive_runs: list[float] = []
    with cluster.paused_gc():  # as rank.rank runs, for both paths alike
        started = time.perf_counter()
        prepared = cluster.prepare(list(base.articles))
        reading = time.perf_counter() - started
        for _ in range(max(1, args.repeat)):  # alternating, so load falls on both alike
            started = time.perf_counter()
            fast_groups = blocked_pairs_stage(prepared)
            fast_runs.append(time.perf_counter() - started)
            started = time.perf_counter()
            naive_groups = naive_pairs_stage(prepared)
            naive_runs.append(time.perf_counter() - started)
    fast, naive = min(fast_runs), min(naive_runs)
    same = sorted(map(sorted, fast_groups)) == sorted(map(sorted, naive_groups))
    print(f"{args.baseline:,} articles: reading them (signatures + vectors, shared)"
          f" {reading:.2f} s;"
          f" pairing + linking, best of {len(fast_runs)} on both sides: blocked {fast:.2f} s,"
          f" naive all-pairs {naive:.2f} s -> {naive / fast:.1f}x; same stories as all-pairs:"
          f" {same}")


if __name__ == "__main__":
    main()
