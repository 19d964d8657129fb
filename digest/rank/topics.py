"""Which configured topics an article belongs to: by what the feed says, by
keywords where they count, and by meaning.

An article is in a topic when

- its feed is configured with the topic (``feeds[].topics``), or
- one of the feed's own categories (RSS/Atom ``category``) names the topic: its
  key, its title, one of its keyword phrases or, when the topic's description
  is a comma-separated list, one of its terms; case- and plural-insensitive
  ("World News", "Technology", "Startups") — and the article's meaning is at
  least ``SIM_WITH_CATEGORY`` close (feeds tag loosely: a "World" desk files
  its economy stories there too), or
- a keyword phrase stands as whole words in its headline or lead (the first
  sentence of the summary, never deeper in the body) and its meaning is at
  least ``SIM_WITH_KEYWORD`` close, or
- its meaning alone is close: at least ``SIM_ALONE``, and no other topic
  closer by more than ``SIM_MARGIN``.

"Meaning" is the cosine between the article's sentence vector (headline and
first sentence; the day's vectors, made once for clustering) and the topic's
(title, keywords and description), both centred on a typical news day.

So a lone ambiguous keyword ("shares" the verb, "app", "study", a river's
"banks") does not put an article in a topic its meaning disagrees with, while a
clearly on-topic article that uses no keyword still gets its section. The
feed's configured topics are the operator's own word and count alone. Sentence
vectors are English-trained: for an article in another language a keyword or a
category counts alone, as keywords always did.

The thresholds were set on ``tests/data/topics/tune.toml`` and are reported
on the held-out sets (``tests/data/topics/test.toml``, the real day's
``tests/data/realday/topics.toml``); see ``tests/data/topics/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import numpy as np

from digest.config import Config
from digest.models import Article
from digest.rank.background import MEAN
from digest.rank.embed import Embedder, embedder
from digest.rank.signatures import (
    STOP,
    Reading,
    Signature,
    embed_text,
    first_sentence,
    fold,
    read,
    stem,
)

# Cosines between centred sentence vectors, set on the tune set (see the module
# docstring): the largest recall there with precision >= 0.93, a margin over the
# 0.9 the held-out sets must hold.
SIM_ALONE = 0.24  # meaning alone puts an article in a topic from here...
SIM_MARGIN = 0.03  # ...when no other topic is closer by more than this
SIM_WITH_KEYWORD = 0.16  # a keyword in headline or lead needs at least this much meaning
SIM_WITH_CATEGORY = 0.08  # a feed category naming the topic needs at least this much

_LEAD_CHARS = 200  # as signatures read the lead: a keyword past it is in the body
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# A category such as "Science & Environment" or "Politics, World" names each part.
_CATEGORY_PARTS = re.compile(r"\s*(?:[&/,;|+:]|\band\b)\s*")
_CATEGORY_FILLER = frozenset(stem(w) for w in ("news", "the", "latest", "top"))

Phrase = tuple[str, ...]


def words(text: str) -> Phrase:
    """The stems of a text's words, in order ("Interest Rates" -> interest, rate)."""
    return tuple(stem(w) for w in _WORD.findall(fold(text)))


def lead(article: Article) -> str:
    """Headline and lead: where a keyword may stand."""
    return f"{article.title}. {first_sentence(article.summary[:_LEAD_CHARS])}"


def _contains(text: Phrase, phrase: Phrase) -> bool:
    n = len(phrase)
    if n == 1:
        return phrase[0] in text
    return any(text[k:k + n] == phrase for k in range(len(text) - n + 1))


class TopicMatcher:
    """The topics of each article (see the module docstring)."""

    def __init__(self, config: Config) -> None:
        self._feed_topics = {f.url: frozenset(f.topics) for f in config.feeds}
        self._names = list(config.topics)
        self._keywords: list[tuple[Phrase, str]] = []
        self._category_names: dict[Phrase, set[str]] = {}
        texts = []
        for name, topic in config.topics.items():
            phrases = [words(kw) for kw in topic.keywords]
            self._keywords += [(p, name) for p in phrases if p]
            terms = [words(t) for t in topic.description.split(",")] if "," in \
                topic.description else []
            for p in [words(name), words(topic.title), *phrases, *terms]:
                p = tuple(w for w in p if w not in _CATEGORY_FILLER)
                if p:
                    self._category_names.setdefault(p, set()).add(name)
            texts.append(topic_text(name, topic.title, topic.keywords,
                                    topic.description))
        self._texts = texts
        self._vectors: np.ndarray | None = None
        self._category_cache: dict[tuple[str, ...], set[str]] = {}
        # The cheap test first: an article can hold a keyword only if its
        # signature (title and lead words) has the keyword's words.
        self._first_words: dict[str, list[tuple[Phrase, str]]] = {}
        for p, name in self._keywords:
            self._first_words.setdefault(p[0], []).append((p, name))

    # -- the signals -----------------------------------------------------------

    def by_categories(self, categories: Iterable[str]) -> set[str]:
        """The topics the feed's own categories name."""
        found: set[str] = set()
        for category in categories:
            for part in _CATEGORY_PARTS.split(fold(category)):
                p = tuple(w for w in words(part) if w not in _CATEGORY_FILLER)
                found |= self._category_names.get(p, set())
        return found

    def by_keywords(self, article: Article) -> set[str]:
        """The topics with a keyword phrase as whole words in headline or lead."""
        text = words(lead(article))
        found: set[str] = set()
        for first in self._first_words.keys() & set(text):
            for p, name in self._first_words[first]:
                if name not in found and _contains(text, p):
                    found.add(name)
        return found

    def similarities(self, vectors: np.ndarray) -> np.ndarray:
        """Cosine of each (raw, as ``embed`` gives them) article vector with each
        topic: one row per article, one column per topic in config order."""
        topics = self.topic_vectors()
        if not len(vectors) or not len(topics):
            return np.zeros((len(vectors), len(topics)), np.float32)
        mean = np.asarray(MEAN, np.float32)
        # (a - mean)·t / |a - mean| without a centred copy of the day's vectors.
        dots = vectors @ topics.T - (mean @ topics.T)[None, :]
        sq = (np.einsum("ij,ij->i", vectors, vectors) - 2 * (vectors @ mean)
              + float(mean @ mean))
        return dots / np.sqrt(np.maximum(sq, 1e-12))[:, None]

    def topic_vectors(self) -> np.ndarray:
        """The topics' sentence vectors, centred and unit length (made once)."""
        if self._vectors is None:
            self._vectors = _centred(np.stack([_embed_long(t) for t in self._texts])) \
                if self._texts else np.zeros((0, 0), np.float32)
        return self._vectors

    # -- one article, one day --------------------------------------------------

    def topics(self, a: Article, sig: Signature | None = None,
               vector: np.ndarray | None = None) -> set[str]:
        """The topics of one article (``vector``: its raw sentence vector, made
        here when not given)."""
        reading = Reading.of([sig]) if sig is not None else read([a])
        return set(self.topics_of_day([a], reading, None if vector is None
                                      else vector[None, :])[0])

    def topics_of_day(self, articles: Sequence[Article], reading: Reading,
                      vectors: np.ndarray | None = None) -> list[frozenset[str]]:
        """``topics`` for every article of a day at once. ``vectors`` are the
        day's raw sentence vectors (``cluster.start_vectors(...).result()``,
        not the copy clustering centred); made here when not given."""
        n = len(articles)
        found = [self._feed_topics.get(a.feed_url, frozenset()) for a in articles]
        if not n or not self._names:
            return found
        if vectors is None:
            vectors = embedder().embed([embed_text(a) for a in articles])
        sims = self.similarities(vectors)
        # Meaning is judged for English articles only (see the module docstring).
        judged = np.fromiter((s.lang == "en" for s in reading.sigs), bool, n)
        best = sims.max(axis=1)
        alone = (sims >= SIM_ALONE) & (sims >= best[:, None] - SIM_MARGIN) & judged[:, None]
        added: dict[int, set[str]] = {}
        for k, t in zip(*np.nonzero(alone), strict=True):
            added.setdefault(int(k), set()).add(self._names[t])
        # Keywords and categories: only the articles that may hold one and whose
        # meaning could agree with some topic are visited.
        agree = sims >= SIM_WITH_KEYWORD
        agree[~judged] = True
        visit = set(np.flatnonzero((self._keyword_candidates(reading, n) & agree).any(axis=1))
                    .tolist())
        reach = ~judged | (best >= SIM_WITH_CATEGORY)
        visit.update(k for k, a in enumerate(articles) if a.categories and reach[k])
        column = {name: t for t, name in enumerate(self._names)}
        for k in sorted(visit):
            a = articles[k]
            keywords = self.by_keywords(a)
            categories = self._categories_of(a.categories) if a.categories else set()
            for name in keywords | categories:
                floor = min(SIM_WITH_KEYWORD if name in keywords else 2.0,
                            SIM_WITH_CATEGORY if name in categories else 2.0)
                if not judged[k] or sims[k, column[name]] >= floor:
                    added.setdefault(k, set()).add(name)
        for k, names in added.items():
            found[k] = found[k] | names
        return found

    def _categories_of(self, categories: tuple[str, ...]) -> set[str]:
        # A feed repeats the same few category sets all day.
        got = self._category_cache.get(categories)
        if got is None:
            got = self._category_cache[categories] = self.by_categories(categories)
        return got

    def _keyword_candidates(self, reading: Reading, n: int) -> np.ndarray:
        """Which article may hold which topic's keyword (its title-and-lead words
        hold the keyword's first word): one row per article, one column per topic."""
        may = np.zeros((n, len(self._names)), bool)
        if any(w in STOP for w in self._first_words):  # not in a signature's words
            may[:] = True
            return may
        # Each vocabulary word's topics as bits, then every (article, word) row at once.
        bits = np.zeros(len(reading.vocab), np.int64)
        index = {w: k for k, w in enumerate(reading.vocab)}
        # A signature keeps "open-source" whole; a keyword reads its parts.
        firsts = set(self._first_words)
        compounds = [(k, parts) for k, w in enumerate(reading.vocab) if "-" in w
                     if (parts := firsts.intersection(map(stem, w.split("-"))))]
        for t, name in enumerate(self._names):
            mine = {p[0] for p, owner in self._keywords if owner == name}
            ids = [index[w] for w in mine if w in index]
            ids += [k for k, parts in compounds if not mine.isdisjoint(parts)]
            bits[ids] |= 1 << t
        row_bits = bits[reading.word_id]
        hit = np.flatnonzero(row_bits)
        for t in range(len(self._names)):
            rows = hit[(row_bits[hit] >> t) & 1 == 1]
            may[reading.word_art[rows], t] = True
        return may


def topic_text(name: str, title: str, keywords: Sequence[str], description: str = "") -> str:
    """What a topic's sentence vector is made of."""
    head = title or name
    return ". ".join(p for p in (head, ", ".join(keywords), description) if p)


def _embed_long(text: str) -> np.ndarray:
    """One mean vector for a text longer than an article's lead (a topic with many
    keywords and a description): embedded in pieces the embedder does not cut,
    weighted by their words."""
    chunks = text.split()
    size = Embedder.MAX_CHUNKS
    pieces = [" ".join(chunks[k:k + size]) for k in range(0, len(chunks), size)] or [""]
    weights = np.asarray([len(p.split()) or 1 for p in pieces], np.float32)
    return (embedder().embed(pieces) * weights[:, None]).sum(axis=0) / weights.sum()


def _centred(vectors: np.ndarray) -> np.ndarray:
    out = vectors - np.asarray(MEAN, np.float32)
    lengths = np.linalg.norm(out, axis=1, keepdims=True)
    return (out / np.where(lengths > 0, lengths, 1.0)).astype(np.float32)
