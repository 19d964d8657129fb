"""Candidate pairs: which of the day's article pairs are worth scoring at all.

Blocking, never all pairs: an inverted index of the rarer words and names (a
word in more articles than the day's ``cap`` is too common to block on), plus
random-hyperplane LSH over the sentence vectors for paraphrases that share no
rare word. Work grows with the day's size, not its square.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from digest.rank.pairscore import LEX_MIN, Day

LSH_BANDS = 10  # more bands find more paraphrases; more bits per band, fewer false pairs
LSH_MAX_BUCKET = 40


@lru_cache(maxsize=512)
def _triu(size: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(size, 1)
    return a.astype(np.int64), b.astype(np.int64)


def blocked_pairs(day: Day, min_lex: float = LEX_MIN
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs sharing a rarer word or name, with their summed IDF² and name IDF."""
    parts_i: list[np.ndarray] = []
    parts_j: list[np.ndarray] = []
    parts_lex: list[np.ndarray] = []
    parts_key: list[np.ndarray] = []
    for is_key in (False, True):
        pi, pj, weight = _posting_pairs(day, is_key)
        parts_i.append(pi)
        parts_j.append(pj)
        parts_lex.append(np.zeros(len(pi)) if is_key else weight * weight)
        parts_key.append(weight if is_key else np.zeros(len(pi)))
    n = len(day.sigs)
    codes = np.concatenate(parts_i) * n + np.concatenate(parts_j)
    uniq, inverse = np.unique(codes, return_inverse=True)
    lexnum = np.bincount(inverse, weights=np.concatenate(parts_lex), minlength=len(uniq))
    keynum = np.bincount(inverse, weights=np.concatenate(parts_key), minlength=len(uniq))
    i, j = uniq // n, uniq % n
    # One shared middling word is no evidence (pairscore.LEX_MIN): keep pairs that
    # share a name or enough rare words (paraphrases with neither come in through LSH).
    lex = lexnum / np.maximum(day.norm[i] * day.norm[j], 1e-9)
    keep = (keynum > 0) | (lex >= min_lex)
    return i[keep], j[keep], lexnum[keep], keynum[keep]


def _posting_pairs(day: Day, keys: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair of articles sharing a word (or, with ``keys``, a name or number)
    that is rare enough to block on, with that word's IDF: per word in id order,
    its articles' pairs in row-major order (the order the sums over shared words
    are taken in, so they come out the same every run).

    The pairs of all words with postings of one size are made in one numpy
    step, then put in place, instead of a Python loop over the day's words.
    """
    r = day.reading
    art, ids = (r.key_art, r.key_id) if keys else (r.word_art, r.word_id)
    owner = art[np.argsort(ids, kind="stable")]  # grouped by word, articles in order
    counts = np.bincount(ids, minlength=len(r.vocab))
    starts = np.cumsum(counts) - counts
    df, idf = day.df_of, day.idf_of
    used = np.flatnonzero((counts >= 2) & (df <= day.cap))
    n_pairs = counts[used] * (counts[used] - 1) // 2
    offsets = np.cumsum(n_pairs) - n_pairs
    total = int(n_pairs.sum())
    out_i = np.empty(total, np.int64)
    out_j = np.empty(total, np.int64)
    out_w = np.empty(total, np.float64)
    for size in np.unique(counts[used]).tolist():
        group = counts[used] == size
        words = used[group]
        members = owner[starts[words][:, None] + np.arange(size)]
        a, b = _triu(size)
        at = (offsets[group][:, None] + np.arange(len(a))).ravel()
        out_i[at] = members[:, a].ravel()
        out_j[at] = members[:, b].ravel()
        out_w[at] = np.repeat(idf[words], len(a))
    return out_i, out_j, out_w


def add_lsh_pairs(day: Day, i: np.ndarray, j: np.ndarray, lexnum: np.ndarray,
                  keynum: np.ndarray, found: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add English pairs whose sentence vectors fall in one LSH bucket in some
    band (``found``: their codes, when lsh_codes ran already)."""
    found = lsh_codes(day) if found is None else found
    n = len(day.sigs)
    known = i * n + j  # sorted
    spot = np.searchsorted(known, found)
    new = spot == len(known)
    new[~new] = known[spot[~new]] != found[~new]
    spot, extra = spot[new], found[new]
    codes = np.insert(known, spot, extra)  # still sorted
    return (codes // n, codes % n, np.insert(lexnum, spot, 0.0), np.insert(keynum, spot, 0.0))


def lsh_codes(day: Day) -> np.ndarray:
    """Sorted codes (i·n + j, i < j) of the English pairs sharing an LSH bucket."""
    english = np.flatnonzero(day.english)
    if len(english) < 2:
        return np.zeros(0, np.int64)
    # Buckets of about the same size whatever the day's size: one bit per doubling.
    width = int(min(16, max(10, math.ceil(math.log2(len(english))) - 1)))
    rng = np.random.default_rng(20261126)  # fixed: the same day always clusters the same
    planes = rng.standard_normal((day.vec.shape[1], LSH_BANDS * width)).astype(np.float32)
    bits = (day.vec[english] @ planes) > 0
    weights = (1 << np.arange(width, dtype=np.int64))
    n = len(day.sigs)
    # Every band's buckets at once: a bucket is (band, code), sorted into runs.
    codes = np.stack([bits[:, band * width:(band + 1) * width] @ weights
                      for band in range(LSH_BANDS)])
    keys = (codes + (np.arange(LSH_BANDS, dtype=np.int64) << width)[:, None]).ravel()
    order = np.argsort(keys)  # (which pairs a bucket makes does not depend on its order)
    runs = np.flatnonzero(np.r_[True, np.diff(keys[order]) != 0])
    sizes = np.diff(np.r_[runs, len(order)])
    # Buckets of one hold no pair; over-full ones are too coarse to mean anything.
    full = (sizes >= 2) & (sizes <= LSH_MAX_BUCKET)
    runs, sizes = runs[full], sizes[full]
    if not len(runs):
        return np.zeros(0, np.int64)
    # Each member pairs with the members after it in its bucket.
    ends = np.repeat(runs + sizes, sizes)
    at = np.repeat(runs - (np.cumsum(sizes) - sizes), sizes) + np.arange(int(sizes.sum()))
    later = ends - at - 1
    first = np.repeat(at, later)
    second = first + 1 + np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later)
    member = english[order % len(english)]
    x, y = member[first], member[second]
    found = np.sort(np.minimum(x, y) * n + np.maximum(x, y))
    return found[np.r_[True, found[1:] != found[:-1]]]  # (np.unique hashes: slower here)
