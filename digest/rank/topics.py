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
from digest.rank.signatures import STOP, Reading, Signature, embed_text, first_sentence, fold, stem

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
_CATEGORY_FILLER = frozenset({"news", "the", "latest", "top"})

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
        return {name for p, name in self._keywords if _contains(text, p)}

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
        english = sig.lang == "en" if sig is not None else True
        if vector is None and english and self._names:
            vector = embedder().embed([embed_text(a)])[0]
        sims = self.similarities(vector[None, :])[0] if english and vector is not None \
            else None
        return set(self._decide(a, self.by_keywords(a), sims))

    def topics_of_day(self, articles: Sequence[Article], reading: Reading,
                      vectors: np.ndarray | None = None) -> list[frozenset[str]]:
        """``topics`` for every article of a day at once. ``vectors`` are the
        day's raw sentence vectors (``cluster.start_vectors(...).result()``,
        before clustering centres them in place); made here when not given."""
        if not articles:
            return []
        if vectors is None and self._names:
            vectors = embedder().embed([embed_text(a) for a in articles])
        sims = self.similarities(vectors) if vectors is not None else None
        keyword_hits = self._keyword_candidates(articles, reading)
        out = []
        for k, a in enumerate(articles):
            english = reading.sigs[k].lang == "en"
            kws = self.by_keywords(a) if k in keyword_hits else set()
            out.append(frozenset(self._decide(
                a, kws, sims[k] if sims is not None and english else None)))
        return out

    def _keyword_candidates(self, articles: Sequence[Article], reading: Reading) -> set[int]:
        """Articles whose title-and-lead words hold a keyword's first word."""
        if any(w in STOP for w in self._first_words):  # not in a signature's words
            return set(range(len(articles)))
        vocab = {w: k for k, w in enumerate(reading.vocab)}
        ids = [vocab[w] for w in self._first_words if w in vocab]
        if not ids:
            return set()
        hit = np.isin(reading.word_id, np.asarray(ids, np.int64))
        return set(np.unique(reading.word_art[hit]).tolist())

    def _decide(self, a: Article, keywords: set[str], sims: np.ndarray | None) -> Iterable[str]:
        yield from self._feed_topics.get(a.feed_url, ())
        categories = self.by_categories(a.categories) if a.categories else set()
        if sims is None:  # no judgement of meaning: a keyword or a category counts alone
            yield from keywords | categories
            return
        best = float(sims.max(initial=0.0))
        for name, s in zip(self._names, sims.tolist(), strict=True):
            if (s >= SIM_ALONE and s >= best - SIM_MARGIN) \
                    or (name in keywords and s >= SIM_WITH_KEYWORD) \
                    or (name in categories and s >= SIM_WITH_CATEGORY):
                yield name


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
