"""Fold a day's articles into stories: one group per event.

Three signals, combined per pair of articles (precision first: two events glued
together is worse than one event shown twice):

- **meaning**: cosine of static sentence vectors (wordllama, headline + first
  sentence, centred on the day's mean so that "news-ness" shared by every
  article cancels out). This is what lets "Strong quake jolts Chile's mining
  north" meet "Antofagasta tremor: three dead as copper mines halt". It is only
  trusted between two English articles: the vectors are English-trained and two
  Spanish texts look alike whatever they say.
- **shared words and names**: IDF-weighted overlap of content words, and of names
  and numbers (Dice over their IDF mass). Across languages this is the evidence
  that remains ("Chile", "6.8", "Antofagasta").
- **contradiction and distance**: both headlines name something the other text
  never mentions (Chile vs Hokkaido, 2% vs 3.75%), or the reports are far apart in
  time.

    s = W_COS·cos + W_LEX·lex + W_KEY·names − W_CONFLICT·conflict − W_HOURS·Δh/24 + BIAS

(with the cross-language weights when either article is not English). Pairs with
s ≥ 0 are merged best first, and two groups join only while the *average* score
over every pair across them stays ≥ LINK, so one loose link cannot chain two
events (the same minister presenting a budget and facing an expenses inquiry).

Candidate pairs come from blocking, never from all pairs: an inverted index of
the rarer words and names (a word in more than MAX_POSTING articles is too
common to block on), plus random-hyperplane LSH over the sentence vectors for
paraphrases that share no rare word. Work grows with the day's size, not its square.
"""

from __future__ import annotations

import gc
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np

from digest.models import Article
from digest.rank.background import MEAN
from digest.rank.embed import Pending, embed_async
from digest.rank.signatures import Reading, Signature, embed_text, read

T = TypeVar("T")

# Pair score weights (see the module docstring). Set on tests/data/clustering/.
W_COS = 1.0
W_LEX = 0.4
W_KEY = 0.0
W_LEX_CROSS = 1.2  # either article not English: no vectors, words and names decide
W_KEY_CROSS = 0.9
W_CONFLICT = 0.12
W_NUMBERS = 0.3
VETO = 1.0
W_HOURS = 0.25
# One outlet rarely runs two pieces on one event in a day unless one updates the
# other; two of its pieces on one subject (the same telescope, security flaws)
# are usually two stories. Updates clear this easily.
W_SAME_FEED = 0.1
BIAS = -0.25
BIAS_CROSS = -0.3
LINK = 0.0  # average score two groups need to merge
GAP = 0.1  # ...and no less than this below the average inside either group

BACKGROUND_WEIGHT = 40  # articles' worth of weight the typical day's mean gets
WINDOW_HOURS = 36.0  # reports further apart than this are not one event
MAX_POSTING = 30  # a word in more articles than this is too common to block on
LEX_MIN = 0.05  # a blocked pair without a shared name needs this much word overlap
LSH_BANDS = 10  # more bands find more paraphrases; more bits per band, fewer false pairs
LSH_MAX_BUCKET = 40


@contextmanager
def paused_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a day is read and clustered.

    A 20k-article day makes millions of small containers (word sets, pair lists),
    none in a cycle: reference counting frees them all, but every generation
    scan the allocations trigger walks them again, which cost a third of the
    run. The collector's previous state is restored on the way out.
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class _Day:
    """Everything pair scoring needs, computed once for the day."""

    sigs: list[Signature]
    reading: Reading  # the same words and names as arrays
    vec: np.ndarray  # n × d, centred, unit length
    english: np.ndarray  # n bools
    hours: np.ndarray  # n floats, publication time
    feed: np.ndarray  # n ints, which feed each article came from
    idf: dict[str, float]
    df: dict[str, int]
    idf_of: np.ndarray  # the same, by word id
    df_of: np.ndarray
    norm: np.ndarray  # sqrt(Σ idf²) over each article's words
    key_mass: np.ndarray  # Σ idf over each article's names and numbers
    cap: int

    def score(self, i: int, j: int) -> float:
        """The pair score, computed directly (for pairs blocking did not propose)."""
        return self.scorer()(i, j)

    def scorer(self) -> Callable[[int, int], float]:
        """``score`` as a function with the day bound in (linking calls it for
        thousands of pairs, one at a time): plain lists, each word's IDF with
        the too-common words (not blocked on) at zero."""
        rare = {w: (v if self.df[w] <= self.cap else 0.0) for w, v in self.idf.items()}
        idf, idf2 = rare.__getitem__, {w: v * v for w, v in rare.items()}.__getitem__
        sigs, rows = self.sigs, list(self.vec)
        hours, english, feed = self.hours.tolist(), self.english.tolist(), self.feed.tolist()
        norm, mass = self.norm.tolist(), self.key_mass.tolist()

        def score(i: int, j: int) -> float:
            a, b = sigs[i], sigs[j]
            dt = abs(hours[i] - hours[j])
            if dt > WINDOW_HOURS:
                return -1.0
            lex = sum(map(idf2, a.words & b.words)) / (norm[i] * norm[j] or 1.0)
            names = 2 * sum(map(idf, a.keys & b.keys)) / ((mass[i] + mass[j]) or 1.0)
            if english[i] and english[j]:
                base = W_COS * float(rows[i] @ rows[j]) + W_LEX * lex + W_KEY * names + BIAS
            else:
                base = W_LEX_CROSS * lex + W_KEY_CROSS * names + BIAS_CROSS
            same = W_SAME_FEED if feed[i] == feed[j] else 0.0
            return base - W_HOURS * dt / 24.0 - same - penalty(a, b)

        return score


def penalty(a: Signature, b: Signature) -> float:
    """The contradiction penalty: each headline names something (a place, a
    figure) the other text never mentions — "6.8 quake in Chile" vs "6.1 quake
    off Hokkaido" — and more when both headlines carry figures and share none."""
    found = W_CONFLICT if a.title_keys - b.words and b.title_keys - a.words else 0.0
    if a.title_numbers and b.title_numbers and not (a.title_numbers & b.words
                                                    or b.title_numbers & a.words):
        # "rate cut to 3.75%" vs "rate held at 2%", "beat City 3-1" vs "drew 0-0":
        # figures in both headlines that the other never mentions. With a name
        # in common it may be an update ("death toll rises to 12"); without one
        # it is another event told from the same template.
        found += W_NUMBERS if a.keys & b.keys else VETO
    return found


def _combine(cos: np.ndarray, lex: np.ndarray, names: np.ndarray, dt: np.ndarray,
             english: np.ndarray, same_feed: np.ndarray) -> np.ndarray:
    same_lang = W_COS * cos + W_LEX * lex + W_KEY * names + BIAS
    cross = W_LEX_CROSS * lex + W_KEY_CROSS * names + BIAS_CROSS
    return np.where(english, same_lang, cross) - W_HOURS * dt / 24.0 - W_SAME_FEED * same_feed


def start_vectors(articles: Sequence[Article]) -> Pending:
    """Start the articles' sentence vectors (in the embedding worker for a large
    day): call it before reading the signatures, and the two overlap."""
    return embed_async([embed_text(a) for a in articles])


def cluster(articles: Sequence[Article], sigs: Reading | Sequence[Signature] | None = None,
            vectors: Pending | None = None) -> list[list[Article]]:
    """Group articles about the same event; each group in input order.

    ``sigs`` are the articles' signatures (best as ``textsig.read`` gives them)
    and ``vectors`` their sentence vectors (from ``start_vectors``) when the
    caller already has them."""
    return [[articles[k] for k in g] for g in cluster_indexes(articles, sigs, vectors)]


def cluster_indexes(articles: Sequence[Article],
                    sigs: Reading | Sequence[Signature] | None = None,
                    vectors: Pending | None = None) -> list[list[int]]:
    """``cluster``, as ascending indexes into ``articles``."""
    n = len(articles)
    if n < 2:
        if vectors is not None:
            vectors.result()
        return [[k] for k in range(n)]
    with paused_gc():
        if vectors is None:
            vectors = start_vectors(articles)
        day = _prepare_words(articles, sigs, vectors)
        if vectors.ready():
            # Both candidate searches are mostly numpy that lets go of the GIL:
            # LSH runs in a thread beside the blocking (the worker's core is free).
            _take_vectors(day, vectors)
            lsh = _in_thread(lambda: _lsh_codes(day))
            i, j, lexnum, keynum = _blocked_pairs(day)
            found = lsh()
        else:  # block on words and names while the worker finishes the vectors
            i, j, lexnum, keynum = _blocked_pairs(day)
            _take_vectors(day, vectors)
            found = _lsh_codes(day)
        i, j, lexnum, keynum = _add_lsh_pairs(day, i, j, lexnum, keynum, found)
        scores = _score_pairs(day, i, j, lexnum, keynum)
        groups = _link(day, i, j, scores)
    return [sorted(g) for g in groups]


def _prepare(articles: Sequence[Article], given: Reading | Sequence[Signature] | None = None,
             vectors: Pending | None = None) -> _Day:
    """Everything pair scoring needs (signatures and vectors made here if not given)."""
    if vectors is None:
        vectors = start_vectors(articles)
    day = _prepare_words(articles, given, vectors)
    _take_vectors(day, vectors)
    return day


def _prepare_words(articles: Sequence[Article], given: Reading | Sequence[Signature] | None,
                   vectors: Pending) -> _Day:
    """The day without its vectors (``_take_vectors`` adds them): the blocking
    needs only this, so it can run while the vectors are still being made."""
    if given is None:
        reading = read(articles, vectors.texts)
    else:
        reading = given if isinstance(given, Reading) else Reading.of(given)
    sigs = reading.sigs
    n = len(sigs)
    english = np.array([s.lang == "en" for s in sigs])
    df_of = np.bincount(reading.word_id, minlength=len(reading.vocab))
    # +10: in a small day every word is "rare"; this keeps IDF from overrating them.
    idf_of = np.log((n + 10) / (df_of + 0.5))
    present = np.flatnonzero(df_of)
    words = [reading.vocab[k] for k in present.tolist()]
    idf = dict(zip(words, idf_of[present].tolist(), strict=True))
    df = dict(zip(words, df_of[present].tolist(), strict=True))
    # Per-article sums by bincount (in word order within each article).
    norm = np.sqrt(np.bincount(reading.word_art, weights=idf_of[reading.word_id] ** 2,
                               minlength=n))
    key_mass = np.bincount(reading.key_art, weights=idf_of[reading.key_id], minlength=n)
    hours = np.array([a.published.timestamp() / 3600.0 for a in articles])
    feed_ids: dict[str, int] = {}
    feed = np.array([feed_ids.setdefault(a.feed_url, len(feed_ids)) for a in articles])
    return _Day(sigs=sigs, reading=reading, vec=np.zeros((0, 0), np.float32), english=english,
                hours=hours, feed=feed, idf=idf, df=df, idf_of=idf_of, df_of=df_of, norm=norm,
                key_mass=key_mass, cap=max(MAX_POSTING, n // 1000))


def _take_vectors(day: _Day, vectors: Pending) -> None:
    """The day's sentence vectors, centred and made unit length."""
    vec, english = vectors.result(), day.english
    # Centre on the day's mean, blended with a typical day's mean while the day is
    # small: two articles centred on their own mean would point in opposite ways.
    count = int(english.sum())
    day_mean = vec[english].mean(axis=0) if count else np.zeros(vec.shape[1], np.float32)
    mean = (count * day_mean + BACKGROUND_WEIGHT * np.asarray(MEAN, np.float32)) / (
        count + BACKGROUND_WEIGHT)
    vec -= mean  # in place: the day's vectors are made for this day alone
    lengths = np.linalg.norm(vec, axis=1, keepdims=True)
    vec /= np.where(lengths > 0, lengths, 1.0)
    day.vec = vec


@lru_cache(maxsize=512)
def _triu(size: int) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(size, 1)
    return a.astype(np.int64), b.astype(np.int64)


def _blocked_pairs(day: _Day, min_lex: float = LEX_MIN
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
    # One shared middling word is no evidence: keep pairs that share a name or
    # enough rare words (paraphrases with neither come in through LSH).
    lex = lexnum / np.maximum(day.norm[i] * day.norm[j], 1e-9)
    keep = (keynum > 0) | (lex >= min_lex)
    return i[keep], j[keep], lexnum[keep], keynum[keep]


def _posting_pairs(day: _Day, keys: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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


def _add_lsh_pairs(day: _Day, i: np.ndarray, j: np.ndarray, lexnum: np.ndarray,
                   keynum: np.ndarray, found: np.ndarray | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Add English pairs whose sentence vectors fall in one LSH bucket in some
    band (``found``: their codes, when _lsh_codes ran already)."""
    found = _lsh_codes(day) if found is None else found
    n = len(day.sigs)
    known = i * n + j  # sorted
    spot = np.searchsorted(known, found)
    new = spot == len(known)
    new[~new] = known[spot[~new]] != found[~new]
    spot, extra = spot[new], found[new]
    codes = np.insert(known, spot, extra)  # still sorted
    return (codes // n, codes % n, np.insert(lexnum, spot, 0.0), np.insert(keynum, spot, 0.0))


def _lsh_codes(day: _Day) -> np.ndarray:
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


def _score_pairs(day: _Day, i: np.ndarray, j: np.ndarray, lexnum: np.ndarray,
                 keynum: np.ndarray) -> np.ndarray:
    dt = np.abs(day.hours[i] - day.hours[j])
    english = day.english[i] & day.english[j]
    # Vectors count only between two English articles (see _combine).
    cos = np.zeros(len(i), dtype=np.float32)
    both = np.flatnonzero(english)
    step = 8192  # pairs at a time: keeps the gathered vectors in cache

    def cosines(first: int, last: int) -> None:
        for start in range(first, last, step):
            at = both[start:min(start + step, last)]
            cos[at] = np.einsum("ij,ij->i", day.vec[i[at]], day.vec[j[at]])

    # Gathering the vectors is memory-bound numpy work that lets go of the GIL:
    # a second thread takes half (the embedding worker's core is idle by now).
    _in_two_threads(cosines, len(both), step)
    lex = lexnum / np.maximum(day.norm[i] * day.norm[j], 1e-9)
    names = 2 * keynum / np.maximum(day.key_mass[i] + day.key_mass[j], 1e-9)
    scores = _combine(cos, lex, names, dt, english, day.feed[i] == day.feed[j])
    scores[dt > WINDOW_HOURS] = -1.0
    # The contradiction check is per pair in Python; it can only lower a score,
    # so only pairs that would otherwise merge need it.
    merging = np.flatnonzero(scores >= 0)
    sigs = day.sigs
    scores[merging] -= np.array([penalty(sigs[a], sigs[b]) for a, b in
                                 zip(i[merging].tolist(), j[merging].tolist(), strict=True)],
                                dtype=np.float64)
    return scores


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A label per article, the same for two articles joined by a path of (a, b) edges."""
    label = np.arange(n)
    while True:
        low = np.minimum(label[a], label[b])
        new = label.copy()
        np.minimum.at(new, a, low)
        np.minimum.at(new, b, low)
        new = new[new]  # and follow each label to its own label
        if np.array_equal(new, label):
            return label
        label = new


def _in_thread(work: Callable[[], T]) -> Callable[[], T]:
    """Start ``work()`` in a helper thread; the answer waits for it (and raises
    its error, if any)."""
    answer: list[T] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            answer.append(work())
        except BaseException as error:  # handed to the caller below
            failed.append(error)

    helper = threading.Thread(target=run, name="digest-cluster")
    helper.start()

    def result() -> T:
        helper.join()
        if failed:
            raise failed[0]
        return answer[0]

    return result


def _in_two_threads(work: Callable[[int, int], None], size: int, step: int) -> None:
    """``work(first, last)`` over range(size), the second half (cut at a
    multiple of ``step``) in a helper thread."""
    half = size // 2 // step * step
    if not half:
        work(0, size)
        return
    second = _in_thread(lambda: work(half, size))
    try:
        work(0, half)
    finally:
        second()


def _link(day: _Day, i: np.ndarray, j: np.ndarray, scores: np.ndarray) -> list[list[int]]:
    """Average-link agglomeration, best pair first, only over pairs scoring ≥ 0."""
    n = len(day.sigs)
    # Groups only ever grow along pairs scoring ≥ 0, so only pairs inside one
    # connected part of those can be looked up while groups are compared.
    part = _components(n, i[scores >= 0], j[scores >= 0])
    kept = part[i] == part[j]
    table = dict(zip((i[kept] * n + j[kept]).tolist(), scores[kept].tolist(), strict=True))
    score = day.scorer()

    def pair(x: int, y: int) -> float:
        if x > y:
            x, y = y, x
        code = x * n + y
        got = table.get(code)
        if got is None:  # a pair blocking did not propose: scored once, here
            got = table[code] = score(x, y)
        return got

    cohesions: dict[int, float] = {}  # by group owner, dropped when the group grows

    def cohesion(owner_id: int) -> float:
        got = cohesions.get(owner_id)
        if got is None:
            group = members[owner_id]
            pairs = [(x, y) for pos, x in enumerate(group) for y in group[pos + 1:]]
            got = cohesions[owner_id] = sum(pair(x, y) for x, y in pairs) / len(pairs)
        return got

    members: dict[int, list[int]] = {k: [k] for k in range(n)}
    owner = list(range(n))
    ranked = np.flatnonzero(scores >= 0)
    ranked = ranked[np.argsort(-scores[ranked], kind="stable")]  # the best first, down to 0
    for x0, y0 in zip(i[ranked].tolist(), j[ranked].tolist(), strict=True):
        a, b = owner[x0], owner[y0]
        if a == b:
            continue
        ga, gb = members[a], members[b]
        if len(ga) * len(gb) > 1:
            cross = sum(pair(x, y) for x in ga for y in gb) / (len(ga) * len(gb))
            if cross < LINK:
                continue
            if min(len(ga), len(gb)) > 1 and cross < min(cohesion(a), cohesion(b)) - GAP:
                continue  # two tight groups that are much less alike than each is inside
        if len(ga) < len(gb):
            a, b, ga, gb = b, a, gb, ga
        for x in gb:
            owner[x] = a
        ga.extend(members.pop(b))
        cohesions.pop(a, None)
        cohesions.pop(b, None)
    return list(members.values())
