"""The labelled clustering sets (the fictional day in tests/data/clustering/, the real
day in tests/data/realday/) and the pairwise scorer (used by tests and bench/rank.py)."""

from __future__ import annotations

import random
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from itertools import combinations
from pathlib import Path

from digest.models import Article

SET = Path(__file__).parent / "data" / "clustering" / "day.toml"
REALDAY = Path(__file__).parent / "data" / "realday"


@dataclass(frozen=True)
class Labelled:
    articles: tuple[Article, ...]
    labels: tuple[str, ...]  # event of each article
    langs: tuple[str, ...]


def load(path: Path = SET) -> Labelled:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    day = data["day"]
    articles, labels, langs = [], [], []
    for n, row in enumerate(data["articles"], start=1):
        slug = row["o"].lower().replace(" ", "-")
        articles.append(Article(
            id=n, feed_url=f"https://{slug}.example/feed", source=row["o"], guid=f"{slug}-{n}",
            url=f"https://{slug}.example/{n}", title=row["title"], summary=row["summary"],
            published=datetime.fromisoformat(f"{day}T{row['t']}:00+00:00"),
        ))
        labels.append(row["e"])
        langs.append(row.get("lang", "en"))
    return Labelled(tuple(articles), tuple(labels), tuple(langs))


def _title_key(title: str) -> str:
    """A title as a key that survives harmless changes to how titles are cleaned
    (curly quotes, spacing, case)."""
    folded = unicodedata.normalize("NFKC", title).translate(_QUOTES).casefold()
    return " ".join(folded.split())


_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def load_realday(folder: Path = REALDAY) -> Labelled:
    """The real day: every item of ``folder/feeds`` in the labelled window, parsed
    as digest parses it at the labelled hour, with its event from ``events.toml``.

    Every item in the window must be labelled and every labelled news item found
    (a page, ``page = true``, may be dated out of the window or dropped)."""
    from digest.collect.parse import parse_feed
    from digest.models import Feed

    data = tomllib.loads((folder / "events.toml").read_text(encoding="utf-8"))
    now = datetime.fromisoformat(data["now"])
    since = now - timedelta(hours=data["hours"])
    wanted = {(row["f"], _title_key(row["title"])): row for row in data["items"]}
    articles: list[Article] = []
    labels: list[str] = []
    unlabelled: list[str] = []
    for path in sorted((folder / "feeds").iterdir()):
        feed = Feed(url=str(path), name=path.stem)
        for a in parse_feed(path.read_bytes(), feed, now=now):
            if not since <= a.published <= now:
                continue
            row = wanted.pop((path.stem, _title_key(a.title)), None)
            if row is None:
                unlabelled.append(f"{path.stem}: {a.title}")
                continue
            articles.append(replace(a, id=len(articles) + 1))
            labels.append(row["e"])
    missing = [f"{f}: {row['title']}" for (f, _), row in wanted.items() if not row.get("page")]
    if unlabelled or missing:
        raise ValueError(f"events.toml out of step: unlabelled {unlabelled}, missing {missing}")
    return Labelled(tuple(articles), tuple(labels), tuple("en" for _ in articles))


@dataclass(frozen=True)
class PairScore:
    precision: float
    recall: float
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def _pairs(groups: Iterable[Iterable[int]]) -> set[tuple[int, int]]:
    return {(a, b) for g in groups for a, b in combinations(sorted(g), 2)}


def pairwise(predicted: Sequence[Sequence[int]], labels: Sequence[str]) -> PairScore:
    """Pairwise precision and recall: of the article pairs put in one story, how
    many are one event; of the pairs that are one event, how many were put together.

    ``predicted`` holds groups of indexes into ``labels``.
    """
    by_label: dict[str, list[int]] = {}
    for k, label in enumerate(labels):
        by_label.setdefault(label, []).append(k)
    truth = _pairs(by_label.values())
    guess = _pairs(predicted)
    hit = len(truth & guess)
    return PairScore(precision=hit / len(guess) if guess else 1.0,
                     recall=hit / len(truth) if truth else 1.0,
                     true_pairs=len(truth), predicted_pairs=len(guess), correct_pairs=hit)


# -- synthetic days (bench/rank.py) --------------------------------------------

_WORD = re.compile(r"\d+|[^\W\d_]+")
_SYLLABLES = ("ka", "lo", "mi", "ren", "tov", "sa", "ul", "bra", "dim", "ek", "no", "vash",
              "tri", "ga", "pel", "zor", "in", "ha", "qua", "mos")


def _pseudo_name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3))).capitalize()


def synthetic_day(size: int, seed: int = 7) -> Labelled:
    """About ``size`` articles: copies of the labelled day, each copy a new set of
    events. Per copy every name becomes a new invented name (the same one for every
    article of the copy, so "the same minister in two stories" stays a trap),
    numbers shift, and part of the vocabulary is swapped for other words of the set
    (consistently within a copy, so its articles still read as one event to each
    other but differently from the other copies); publication times spread over
    two days."""
    from digest.rank.signatures import signatures

    base = load()
    sigs = signatures(base.articles)
    vocabulary = sorted({w.lower() for a in base.articles for w in f"{a.title} {a.summary}".split()
                         if w.isalpha() and len(w) > 3})
    rng = random.Random(seed)
    articles: list[Article] = []
    labels: list[str] = []
    langs: list[str] = []
    copy = 0
    while len(articles) < size:
        shuffled = vocabulary[:]
        rng.shuffle(shuffled)
        remap = {w: v for w, v in zip(vocabulary, shuffled, strict=True) if rng.random() < 0.8}
        shift = rng.randint(1, 97)
        hours = rng.uniform(-24, 0)

        swap = _Perturb(rng, remap, shift)

        for k, (a, sig) in enumerate(zip(base.articles, sigs, strict=True)):
            if len(articles) >= size:
                break
            n = len(articles) + 1
            articles.append(Article(
                id=n, feed_url=a.feed_url, source=a.source, guid=f"{a.guid}-{copy}",
                url=f"{a.url}-{copy}", title=swap(a.title, sig.keys),
                summary=swap(a.summary, sig.keys),
                published=a.published + timedelta(hours=hours + rng.uniform(-1, 1)),
            ))
            labels.append(f"{base.labels[k]}#{copy}")
            langs.append(base.langs[k])
        copy += 1
    return Labelled(tuple(articles), tuple(labels), tuple(langs))


class _Perturb:
    """Rewrites one copy's texts: the same invented name for the same name, one
    shift for every number, one swapped word for every chosen word."""

    def __init__(self, rng: random.Random, remap: dict[str, str], shift: int) -> None:
        self.rng, self.remap, self.shift = rng, remap, shift
        self.names: dict[str, str] = {}

    def __call__(self, text: str, keys: frozenset[str]) -> str:
        from digest.rank.signatures import stem

        def one(m: re.Match[str]) -> str:
            word = m.group()
            if word[:1].isdigit():
                return str(int(word) + self.shift)
            if word[:1].isupper() and (stem(word) in keys or m.start() > 0):
                return self.names.setdefault(word, _pseudo_name(self.rng))
            new = self.remap.get(word.lower())
            if new is None:
                return word
            return new.capitalize() if word[:1].isupper() else new

        return _WORD.sub(one, text)


# -- the real day in other shapes (tests/test_cluster_quality.py) ----------------

def realday_window(hours: float, day: Labelled | None = None) -> Labelled:
    """The real day cut to its last ``hours`` before the labelled hour (the
    pipeline's ``max_age_hours``): a smaller day, where fewer articles share a word."""
    day = day or load_realday()
    data = tomllib.loads((REALDAY / "events.toml").read_text(encoding="utf-8"))
    now = datetime.fromisoformat(data["now"])
    keep = [k for k, a in enumerate(day.articles) if a.published >= now - timedelta(hours=hours)]
    return Labelled(tuple(day.articles[k] for k in keep), tuple(day.labels[k] for k in keep),
                    tuple(day.langs[k] for k in keep))


def padded_realday() -> tuple[Labelled, int]:
    """The real day with the fictional day laid over its last 24 hours (times
    shifted, labels kept apart): a bigger day of other news, so that how many
    articles a word is in changes while the real events do not. Returns the day
    and how many of its first articles are the real ones."""
    real, fiction = load_realday(), load()
    data = tomllib.loads((REALDAY / "events.toml").read_text(encoding="utf-8"))
    now = datetime.fromisoformat(data["now"])
    first = min(a.published for a in fiction.articles)
    shift = now - timedelta(hours=24) - first.replace(hour=0, minute=0)
    articles = list(real.articles)
    for a in fiction.articles:
        articles.append(replace(a, id=len(articles) + 1, guid=f"fiction-{a.guid}",
                                published=a.published + shift))
    labels = (*real.labels, *(f"fiction:{label}" for label in fiction.labels))
    return Labelled(tuple(articles), labels, (*real.langs, *fiction.langs)), len(real.articles)
