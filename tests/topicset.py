"""The labelled topic sets and their scorer (used by tests/test_topics.py; run it
as ``python -m tests.topicset`` to print the calibration grid and the report).

Each item is an article as collect made it (title, the first 300 characters of
its summary, the feed's categories) labelled by hand into the demo topics; the
rule is in ``tests/data/topics/README.md``. The matcher is judged without feed
topics (the corpus feeds have none, and a demo feed's configured topic would
only repeat the config): categories, keywords and meaning.
"""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest import config as configuration
from digest.config import Config
from digest.models import Article

DATA = Path(__file__).parent / "data"
TUNE = DATA / "topics" / "tune.toml"
TEST = DATA / "topics" / "test.toml"
REALDAY = DATA / "realday" / "topics.toml"
TOPICS = ("world", "business", "tech", "science")

CONFIG = Path(__file__).parent.parent / "config.toml"  # its topics: the labels are into these


def demo_config(tmp: Path) -> Config:
    """The demo config's topics, and no feeds (so no feed topics)."""
    data = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    return configuration.from_dict({"topics": data["topics"]}, tmp / "config.toml")


@dataclass(frozen=True)
class Labelled:
    articles: tuple[Article, ...]
    labels: tuple[frozenset[str], ...]


def load(path: Path) -> Labelled:
    items = tomllib.loads(path.read_text(encoding="utf-8"))["items"]
    articles, labels = [], []
    for n, row in enumerate(items, start=1):
        feed = row["feed"]
        articles.append(Article(
            id=n, feed_url=feed, source=feed.rsplit("/", 1)[-1], guid=row["guid"],
            url=f"https://example.org/{n}", title=row["title"], summary=row["summary"],
            published=datetime.fromisoformat(row["published"]),
            categories=tuple(row.get("categories", ()))))
        labels.append(frozenset(row["labels"]))
    return Labelled(tuple(articles), tuple(labels))


@dataclass(frozen=True)
class Score:
    """Precision and recall over (article, topic) decisions."""

    tp: int
    fp: int
    fn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    def __str__(self) -> str:
        return (f"P {self.precision:.3f} R {self.recall:.3f} "
                f"(tp {self.tp}, fp {self.fp}, fn {self.fn})")


def score(found: Sequence[frozenset[str]], labels: Sequence[frozenset[str]],
          topic: str | None = None) -> Score:
    tp = fp = fn = 0
    for got, want in zip(found, labels, strict=True):
        for t in TOPICS if topic is None else (topic,):
            tp += t in got and t in want
            fp += t in got and t not in want
            fn += t not in got and t in want
    return Score(tp, fp, fn)


def report(found: Sequence[frozenset[str]], labels: Sequence[frozenset[str]]) -> str:
    rows = [f"  {t:9} {score(found, labels, t)}" for t in TOPICS]
    return "\n".join([*rows, f"  {'overall':9} {score(found, labels)}"])


def match(sets: Sequence[Labelled], config: Config) -> list[list[frozenset[str]]]:
    """The matcher's topics for each set (each set read as one day)."""
    from digest.rank.embed import embedder
    from digest.rank.signatures import embed_text, read
    from digest.rank.topics import TopicMatcher

    out = []
    for s in sets:
        vectors = embedder().embed([embed_text(a) for a in s.articles])
        out.append(TopicMatcher(config).topics_of_day(s.articles, read(s.articles), vectors))
    return out


GRID = {  # the values tried on the tune set
    "SIM_ALONE": (0.18, 0.20, 0.22, 0.24, 0.26, 0.28, 0.30, 0.34),
    "SIM_MARGIN": (0.0, 0.03, 0.06, 1.0),
    "SIM_WITH_KEYWORD": (-1.0, 0.0, 0.08, 0.12, 0.16, 0.20),
    "SIM_WITH_CATEGORY": (-1.0, 0.0, 0.04, 0.08, 0.12),
}


def main() -> None:  # pragma: no cover - a calibration tool
    """Grid on the tune set (the best recall with precision >= 0.93 first), then the
    report on every set with the module's constants."""
    import itertools
    import tempfile

    from digest.rank import topics as topicmod

    with tempfile.TemporaryDirectory() as tmp:
        config = demo_config(Path(tmp))
    tune = load(TUNE)
    keep = {k: getattr(topicmod, k) for k in GRID}
    found = []
    for values in itertools.product(*GRID.values()):
        for k, v in zip(GRID, values, strict=True):
            setattr(topicmod, k, v)
        sc = score(match([tune], config)[0], tune.labels)
        found.append((sc.precision >= 0.93, sc.recall, sc.precision, values))
    for k, v in keep.items():
        setattr(topicmod, k, v)
    print("tune grid, best first:", ", ".join(GRID))
    for ok, recall, precision, values in sorted(found, reverse=True)[:10]:
        print(f"  {values}  P {precision:.3f} R {recall:.3f}{'' if ok else '  (P < 0.93)'}")
    sets = {"tune": tune, "test": load(TEST), "realday": load(REALDAY)}
    for (name, s), got in zip(sets.items(), match(list(sets.values()), config), strict=True):
        print(f"{name} ({len(s.articles)} items)\n{report(got, s.labels)}")


if __name__ == "__main__":  # pragma: no cover
    main()
