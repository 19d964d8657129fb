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

(with the cross-language weights when either article is not English). The cosine
counts only with **content evidence** (``pairscore.LEX_MIN``): a shared rarer name
or number, enough shared rarer words, or a cosine ≥ COS_ALONE on its own. Without
it a pair scores below 0 whatever its time: time only subtracts, so a timestamp
alone never joins two articles. "Rarer" is ``posting_cap``: a word in more than
MAX_POSTING articles, or in a small day a tenth of them, is a topic, not an event.

Pairs with s ≥ 0 are merged best first, but only a pair with **event evidence**
(``Day.starts``) may start a story or join two: a shared word or name that few of
the day's articles carry (``specific_limit``; never a date, never a country alone,
never an outlet's repeated beat) that a headline carries, with a cosine ≥ COS_WORD
as a second sign, or a cosine ≥ COS_EVENT alone. A topic ("Olympic", "Iran") is in many articles:
two pieces sharing only it stay apart. Two pieces of one outlet need both headlines to name the same
specific thing (an update), or another outlet's report to tie them. Two groups join
only while the *average* score over every pair across them stays ≥ LINK (and within
GAP of each group's own), and while every member of the joined group shares content
evidence with more than half of the others. A story is what its members have in
common: one loose link cannot chain two events (the same minister presenting a
budget and facing an expenses inquiry), and an article close to one member only
does not join.

Candidate pairs come from blocking, never from all pairs: an inverted index of
the rarer words and names (a word past ``posting_cap`` is too common to block
on), plus random-hyperplane LSH over the sentence vectors for
paraphrases that share no rare word. Work grows with the day's size, not its square.

Where each part lives: ``pairscore`` (the day's evidence, the weights, the pair
score, which pairs have content and event evidence), ``candidates`` (blocking and LSH),
``merge`` (linking pairs into groups: who may start one, the average, gap and
evidence-majority rules); this module runs them in order.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from digest.models import Article
from digest.rank.candidates import add_lsh_pairs, blocked_pairs, lsh_codes
from digest.rank.embed import Pending, embed_async
from digest.rank.merge import link
from digest.rank.pairscore import Day, prepare_words, score_pairs, take_vectors
from digest.rank.signatures import Reading, Signature, embed_text
from digest.rank.threads import in_thread


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
        day = prepare_words(articles, sigs, vectors)
        if vectors.ready():
            # Both candidate searches are mostly numpy that lets go of the GIL:
            # LSH runs in a thread beside the blocking (the worker's core is free).
            take_vectors(day, vectors)
            lsh = in_thread(lambda: lsh_codes(day))
            i, j, lexnum, keynum = blocked_pairs(day)
            found = lsh()
        else:  # block on words and names while the worker finishes the vectors
            i, j, lexnum, keynum = blocked_pairs(day)
            take_vectors(day, vectors)
            found = lsh_codes(day)
        i, j, lexnum, keynum = add_lsh_pairs(day, i, j, lexnum, keynum, found)
        scores = score_pairs(day, i, j, lexnum, keynum)
        groups = link(day, i, j, scores)
    return [sorted(g) for g in groups]


def prepare(articles: Sequence[Article], given: Reading | Sequence[Signature] | None = None,
            vectors: Pending | None = None) -> Day:
    """Everything pair scoring needs (signatures and vectors made here if not given)."""
    if vectors is None:
        vectors = start_vectors(articles)
    day = prepare_words(articles, given, vectors)
    take_vectors(day, vectors)
    return day
