"""Personalised, ready-to-send messages of a 12-story digest, per second, on one core.

    .venv/bin/python bench/render.py [--messages 10000] [--baseline 200] [--repeat 3]

fast:      Jinja + MJML once, MIME encoded once (message.prepare), then per subscriber
           personal_for (signed unsubscribe token) + PreparedMessage.bytes_for.
middle:    compile once, but the email package builds and serialises every message.
baseline:  Jinja + MJML for every subscriber, then the email package (what a naive
           mailer does). Run on a sample: at ~50 msg/s, 10,000 would take minutes.
Each of the three is run --repeat times and its best rate counts (like with like).

Targets (issue 5): fast >= 30x baseline and >= 3,000 msg/s.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench._naive import naive_message  # noqa: E402
from digest import config as config_mod  # noqa: E402
from digest.mail.message import personal_for, prepare  # noqa: E402
from digest.models import Article, Section, Selection, Story, Subscriber  # noqa: E402
from digest.render.qp import encoded_size  # noqa: E402
from digest.render.variant import render_variant  # noqa: E402

DAY = date(2026, 11, 27)
NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)
SECRET = "bench-secret"


def twelve_stories() -> Selection:
    rng = random.Random(12)
    words = ("harbour council ferry budget vote energy grid storm rail strike museum "
             "reopens telescope data privacy court ruling market rally drought farmers").split()

    def art(i: int, source: str) -> Article:
        title = " ".join(rng.choice(words) for _ in range(rng.randint(6, 12))).capitalize()
        summary = " ".join(rng.choice(words) for _ in range(rng.randint(30, 50))) + "."
        return Article(feed_url=f"https://{source.lower()}.example/feed", source=source,
                       guid=f"g{i}", url=f"https://{source.lower()}.example/news/{i}?utm=rss",
                       title=title, summary=summary.capitalize(), published=NOW,
                       image=f"https://img.example.com/{i}.jpg" if i % 2 == 0 else None)

    sources = ["Herald", "Ledger", "Wire", "Street", "Science"]
    stories = [Story(art(i, sources[i % 5]), tuple(art(100 + i * 3 + k, sources[(i + k + 1) % 5])
                                                  for k in range(i % 3)), score=12 - i)
               for i in range(12)]
    return Selection(day=DAY, sections=(
        Section("Top stories", tuple(stories[:5])),
        Section("Business", tuple(stories[5:9]), topic="business"),
        Section("Science", tuple(stories[9:]), topic="science"),
    ))  # fmt: skip


def people(n: int) -> list[Subscriber]:
    rng = random.Random(7)
    first = ["Ada", "Zoë", "Jörg", "Li", "María José", "O'Brien", "Ελένη", "Sam", "Åsa", "Kofi"]
    last = ["Lovelace", "Ångström", "Müller", "Wei", "García-López", "Pat", "Παπαδοπούλου"]
    # Readers in several zones: each story's time is spliced per zone (render.when).
    zones = [None, "America/New_York", "Asia/Tokyo", "Europe/London", "Australia/Sydney",
             "America/Los_Angeles", "Asia/Kolkata", "Europe/Berlin"]
    return [Subscriber(email=f"reader{i}@mail{i % 50}.example.org",
                       name=f"{rng.choice(first)} {rng.choice(last)}" if i % 7 else "",
                       timezone=zones[i % len(zones)])
            for i in range(n)]


def best(repeat: int, run: Callable[[], float]) -> tuple[float, str]:
    """The highest of ``repeat`` rates, and all of them for the output."""
    rates = [run() for _ in range(max(1, repeat))]
    return max(rates), ", ".join(f"{r:,.0f}" for r in rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--baseline", type=int, default=200, help="baseline sample size")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs of each kind (fast, middle, baseline); the best counts")
    args = ap.parse_args()
    cfg = config_mod.load(REPO / "config.toml")
    sel = twelve_stories()
    subs = people(args.messages)
    rendered = render_variant(sel, cfg, variant="all", now=NOW)
    total_bytes = 0

    # -- fast: compile once, encode once, splice per subscriber ---------------------
    def fast() -> float:
        nonlocal total_bytes
        t0 = time.perf_counter()
        r = render_variant(sel, cfg, variant="all", now=NOW)
        prepared = prepare(cfg, r, day=DAY, fmt="html")
        total_bytes = 0
        for s in subs:
            raw = prepared.bytes_for(s, personal_for(cfg, SECRET, s, DAY), now=NOW)
            total_bytes += len(raw)
        return len(subs) / (time.perf_counter() - t0)

    fast_rate, fast_all = best(args.repeat, fast)
    fast_s = len(subs) / fast_rate

    # bytes_for alone (Personal precomputed), the splice the delivery stage repeats
    prepared = prepare(cfg, rendered, day=DAY, fmt="html")
    personals = [personal_for(cfg, SECRET, s, DAY) for s in subs]
    t0 = time.perf_counter()
    for s, p in zip(subs, personals, strict=True):
        prepared.bytes_for(s, p, now=NOW)
    splice_us = (time.perf_counter() - t0) / len(subs) * 1e6

    # -- middle: compile once, email package per message ----------------------------
    sample = subs[: args.baseline]

    def middle() -> float:
        t0 = time.perf_counter()
        for s in sample:
            naive_message(cfg, rendered, s, personal_for(cfg, SECRET, s, DAY), day=DAY,
                          now=NOW).as_bytes()
        return len(sample) / (time.perf_counter() - t0)

    middle_rate, middle_all = best(args.repeat, middle)

    # -- baseline: Jinja + MJML + email package for every subscriber ----------------
    def baseline() -> float:
        t0 = time.perf_counter()
        for s in sample:
            r = render_variant(sel, cfg, variant="all", now=NOW)
            naive_message(cfg, r, s, personal_for(cfg, SECRET, s, DAY), day=DAY,
                          now=NOW).as_bytes()
        return len(sample) / (time.perf_counter() - t0)

    base_rate, base_all = best(args.repeat, baseline)

    print(f"method: every rate is the best of {max(1, args.repeat)} runs (fast, middle and "
          "baseline alike)")
    print(f"digest: {len(sel.stories)} stories, HTML {len(rendered.html) / 1000:.1f} KB, "
          f"HTML part as sent (quoted-printable) {encoded_size(rendered.html) / 1000:.1f} KB "
          f"(Gmail clips at 102 KB); message {total_bytes / len(subs) / 1000:.1f} KB")
    print(f"fast      {len(subs):>6} messages in {fast_s:6.2f} s  {fast_rate:8.0f} msg/s "
          f"(bytes_for alone {splice_us:.1f} us/msg; best of {fast_all})")
    print(f"middle    {len(sample):>6} messages             {middle_rate:8.0f} msg/s "
          f"(compile once, email package per message; best of {middle_all})")
    print(f"baseline  {len(sample):>6} messages             {base_rate:8.0f} msg/s "
          f"(Jinja + MJML + email package per message; best of {base_all})")
    ratio = fast_rate / base_rate
    ok = ratio >= 30 and fast_rate >= 3000
    print(f"ratio     {ratio:.0f}x baseline, {fast_rate / middle_rate:.0f}x middle  "
          f"[targets >= 30x and >= 3,000 msg/s: {'met' if ok else 'NOT met'}]")


if __name__ == "__main__":
    main()
