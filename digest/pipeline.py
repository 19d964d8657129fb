"""The one place the stages meet. Reads top to bottom like the day it runs:

    collect -> rank -> render (once per variant) -> plan journal -> send

Side effects come in as arguments (``now``, the store, the config) so tests
drive the real thing against local peers instead of patching.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.message import EmailMessage

from digest import collect as collector
from digest import rank as ranker
from digest import render, send
from digest import subscribers as subs
from digest.config import Config
from digest.message import build_message, personal_for
from digest.models import Delivery, FeedResult, Rendered, SendReport, Story, Subscriber
from digest.rank import Ranked
from digest.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Digest:
    """A day's digest: every variant compiled once, ready to personalise."""

    day: date
    variants: dict[str, Rendered]
    stories: tuple[Story, ...] = ()  # what it carries (empty when loaded from the store)
    article_ids: tuple[int, ...] = ()
    frozen: bool = False  # loaded from the store: an earlier run already fixed it

    @property
    def empty(self) -> bool:
        return not self.variants

    def variant_for(self, key: str) -> Rendered:
        # A subscriber whose topics appeared after the day's digest was frozen gets "all".
        return self.variants.get(key) or self.variants["all"]


@dataclass(frozen=True)
class RunReport:
    day: date
    feeds: tuple[FeedResult, ...] = ()
    stories: int = 0  # articles carried, all variants together
    variants: int = 0
    send: SendReport = field(default_factory=SendReport)
    nothing_new: bool = False


def utcnow() -> datetime:
    return datetime.now(UTC)


def today(config: Config, now: datetime) -> date:
    """The digest's day is the date in the newsletter's own time zone."""
    return now.astimezone(config.tz).date()


def open_store(config: Config) -> Store:
    return Store.open(config.db_path)


def signing_secret(config: Config, store: Store) -> str:
    env = os.environ.get(config.newsletter.secret_env)
    if env:
        return env
    # Without the variable, a random secret kept in the database still gives
    # unforgeable tokens; it just cannot be shared with another install.
    return store.secret()


def load_roster(config: Config) -> subs.Roster:
    roster = subs.load(config.subscribers_dir, tuple(config.topics))
    for problem in roster.problems:
        log.warning("%s (entry skipped)", problem)
    return roster


# -- stages -------------------------------------------------------------------

def collect(config: Config, store: Store, *, now: datetime,
            on_result: Callable[[FeedResult], None] | None = None) -> list[FeedResult]:
    return collector.collect_sync(config.feeds, store, now=now, on_result=on_result)


def rank_day(config: Config, store: Store, *, now: datetime, day: date | None = None) -> Ranked:
    day = day or today(config, now)
    return ranker.rank(store.articles_since(None), config, now=now, day=day,
                       exclude=store.sent_article_ids(before=day))


def build_digest(config: Config, store: Store, *, now: datetime,
                 subscribers: Sequence[Subscriber] = ()) -> Digest:
    """Rank and render today's digest without saving it (preview uses this too)."""
    day = today(config, now)
    ranked = rank_day(config, store, now=now, day=day)
    selection = ranked.selection
    if not selection.stories:
        return Digest(day=day, variants={})
    keys = {"all"} | {ranker.variant_key(s) for s in subscribers}
    selections = {key: ranker.for_variant(ranked, config, key) for key in sorted(keys)}
    variants = {key: render.render_variant(sel, config, variant=key, now=now)
                for key, sel in selections.items()}
    ids = tuple(sorted({a.id for sel in selections.values() for s in sel.stories
                        for a in s.articles if a.id is not None}))
    return Digest(day=day, variants=variants, stories=selection.stories, article_ids=ids)


def prepare(config: Config, store: Store, *, now: datetime,
            subscribers: Sequence[Subscriber]) -> Digest:
    """Today's digest, frozen in the store the first time so reruns send the same one."""
    day = today(config, now)
    stored = store.load_digest(day)
    if stored:
        return Digest(day=day, variants={r.variant: r for r in stored}, frozen=True)
    digest = build_digest(config, store, now=now, subscribers=subscribers)
    if not digest.empty:
        store.save_digest(day, list(digest.variants.values()), digest.article_ids, now=now)
    return digest


def recipients(config: Config, store: Store, roster: subs.Roster,
               to: str | None = None) -> list[Subscriber]:
    """Active, unsuppressed subscribers, or the one address given with --to."""
    if to is None:
        return list(roster.active(store.suppressed()))
    address = subs.normalise_email(to)
    return [roster.find(address) or Subscriber(email=address, source="--to")]


def send_digest(config: Config, store: Store, digest: Digest, people: Sequence[Subscriber], *,
                now: datetime, password: str | None,
                on_progress: Callable[[Delivery], None] | None = None) -> SendReport:
    """Journal every recipient first, then deliver; the journal skips anyone already sent."""
    secret = signing_secret(config, store)
    selection_keys = {p.email: ranker.variant_key(p) for p in people}
    store.plan_deliveries(digest.day, [(p.email, selection_keys[p.email]) for p in people], now=now)

    def builder(p: Subscriber) -> Callable[[], EmailMessage]:
        def build() -> EmailMessage:
            rendered = digest.variant_for(selection_keys[p.email])
            personal = personal_for(config, secret, p, digest.day)
            return build_message(config, rendered, p, personal, day=digest.day, now=utcnow())
        return build

    outgoing = [send.Outgoing(email=p.email, build=builder(p)) for p in people]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return send.deliver_sync(config, store, digest.day, outgoing, password=password,
                             worker=worker, on_progress=on_progress)


def run_once(config: Config, *, now: datetime | None = None, password: str | None = None,
             on_feed: Callable[[FeedResult], None] | None = None,
             on_progress: Callable[[Delivery], None] | None = None) -> RunReport:
    """One full cycle: collect, rank, render, send. The daemon calls this."""
    now = now or utcnow()
    store = open_store(config)
    try:
        roster = load_roster(config)
        render.check_templates(config)
        feeds = collect(config, store, now=now, on_result=on_feed)
        people = recipients(config, store, roster)
        digest = prepare(config, store, now=now, subscribers=people)
        if digest.empty and config.selection.skip_if_empty:
            log.info("nothing new since the last digest: no email today")
            return RunReport(day=today(config, now), feeds=tuple(feeds), nothing_new=True)
        report = send_digest(config, store, digest, people, now=now, password=password,
                             on_progress=on_progress)
        return RunReport(day=digest.day, feeds=tuple(feeds), stories=len(digest.article_ids),
                         variants=len(digest.variants), send=report)
    finally:
        store.close()


@dataclass(frozen=True)
class Copy:
    """One subscriber's copy of a digest, as it would be sent."""

    rendered: Rendered
    subscriber: Subscriber
    html: str
    text: str
    message: EmailMessage


def copy_for(config: Config, store: Store, *, now: datetime, email: str | None = None,
             day: date | None = None) -> Copy | None:
    """What one subscriber would get (the first active one by default), without
    freezing or sending anything. None when there is nothing to send."""
    roster = load_roster(config)
    people = recipients(config, store, roster, to=email) if email else list(roster.active())
    person = people[0] if people else Subscriber(email="reader@example.org", name="Reader")
    day = day or today(config, now)
    stored = store.load_digest(day)
    if stored:
        digest = Digest(day=day, variants={r.variant: r for r in stored}, frozen=True)
    else:
        digest = build_digest(config, store, now=now, subscribers=[person])
    if digest.empty:
        return None
    rendered = digest.variant_for(ranker.variant_key(person))
    personal = personal_for(config, signing_secret(config, store), person, day)
    html, text = render.personalise(rendered, personal)
    message = build_message(config, rendered, person, personal, day=day, now=now)
    return Copy(rendered=rendered, subscriber=person, html=html, text=text, message=message)
