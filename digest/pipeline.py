"""The one place the stages meet. Reads top to bottom like the day it runs:

    collect -> rank -> render (once per variant) -> plan journal -> send

Side effects come in as arguments (``now``, the store, the config) so tests
drive the real thing against local peers instead of patching.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from digest import lifecycle, runlog
from digest.collect import collector
from digest.config import Config
from digest.errors import SubscriberError
from digest.mail import tokens
from digest.models import Delivery, FeedResult, Rendered, SendReport, Story, Subscriber
from digest.store.facade import Store
from digest.subscribers import roster as subs

if TYPE_CHECKING:
    from digest.mail.message import PreparedMessage
    from digest.rank.select import Ranked

log = logging.getLogger(__name__)

# The later stages (ranking's model and numpy, MJML and Jinja, SMTP and DKIM) are
# imported by the functions that run them: `digest collect`, `digest feeds` and
# `digest subscribers` do not load them (0.2 s of a 1.2 s start).


@dataclass(frozen=True)
class Digest:
    """A day's digest: every variant compiled once, ready to personalise."""

    day: date
    variants: dict[str, Rendered]
    stories: tuple[Story, ...] = ()  # what it carries (empty when loaded from the store)
    article_ids: tuple[int, ...] = ()
    frozen: bool = False  # loaded from the store: an earlier run already fixed it
    frozen_at: datetime | None = None  # when that run fixed it
    group: str = ""  # time-zone group this edition is for; "" is the newsletter's own
    carried: dict[str, tuple[int, ...]] = field(default_factory=dict)  # variant -> article ids
    quiet: frozenset[str] = frozenset()  # variants with nothing new for their readers

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
    frozen_at: datetime | None = None  # the edition sent was frozen by an earlier run


def utcnow() -> datetime:
    return datetime.now(UTC)


def today(config: Config, now: datetime, group: str = "") -> date:
    """The digest's day is the date in its group's time zone (the newsletter's by default)."""
    return now.astimezone(ZoneInfo(group) if group else config.tz).date()


def group_of(config: Config, subscriber: Subscriber) -> str:
    """A subscriber's time-zone group: "" (the newsletter's zone) or another IANA zone.

    Each group gets its own edition at its own local hour, so Tokyo's digest is
    ranked at 07:00 Tokyo time with the news as it stands then.
    """
    tz = subscriber.timezone or ""
    return "" if tz in ("", config.schedule.timezone) else tz


def _stored_name(group: str, key: str) -> str:
    return f"{group}|{key}" if group else key


def _split_name(name: str) -> tuple[str, str]:
    group, _, key = name.rpartition("|")
    return group, key


def open_store(config: Config) -> Store:
    return Store.open(config.db_path)


def signing_secret(config: Config, store: Store) -> str:
    # Without the variable, a random secret kept in the database still gives
    # unforgeable tokens; it just cannot be shared with another install. The
    # tokens module also records when a secret stopped signing (rotation).
    return tokens.signing_secret(config, store)


def load_roster(config: Config) -> subs.Roster:
    """The subscribers to send to. A file that cannot be read is replaced by its last
    good version, with one warning; with no such version nobody is sent anything
    (SubscriberError naming file:line): that file's readers are not to be dropped
    without a word while everyone else gets the digest."""
    from digest.subscribers.last_good import copies_for

    roster = subs.load(config.subscribers_dir, tuple(config.topics),
                       keep=copies_for(config.db_path))
    lost = [b for b in roster.broken if b.fallback is None]
    if lost:
        raise SubscriberError(f"{lost[0].where}: {lost[0].reason}; no good version of this "
                              "file was ever read, so nothing is sent to anyone",
                              hint="fix the file, then run again")
    for broken in roster.broken:
        log.warning("%s", broken.message())
    for problem in roster.problems:
        log.warning("%s (entry skipped)", problem)
    return roster


def catch_up_files(config: Config, store: Store) -> None:
    """Unsubscribes in the database that have not reached their file yet are written
    now (digest.subscribers.sync); never stops the run."""
    from digest.subscribers.sync import catch_up_before_sending

    catch_up_before_sending(config, store)


# -- stages -------------------------------------------------------------------

def collect(config: Config, store: Store, *, now: datetime,
            on_result: Callable[[FeedResult], None] | None = None) -> list[FeedResult]:
    return collector.collect_for(config, store, now=now, on_result=on_result)


def rank_day(config: Config, store: Store, *, now: datetime, day: date | None = None,
             exclude: set[int] | None = None) -> Ranked:
    """The day's stories. Without ``exclude``, articles any earlier digest carried
    are left out (what `digest rank` shows); build_digest passes an empty set and
    leaves out, per variant, only what that variant's readers were really sent."""
    from digest.rank import select as ranker

    day = day or today(config, now)
    if exclude is None:
        exclude = store.sent_article_ids(before=day)
    return ranker.rank(store.articles_since(None), config, now=now, day=day, exclude=exclude)


def build_digest(config: Config, store: Store, *, now: datetime,
                 subscribers: Sequence[Subscriber] = (), group: str = "") -> Digest:
    """Rank and render today's digest without saving it (preview uses this too)."""
    from digest.rank import desk
    from digest.rank import select as ranker
    from digest.render import variant as render

    day = today(config, now, group)
    ranked = rank_day(config, store, now=now, day=day, exclude=set())
    readers: dict[str, list[str]] = {"all": []}
    for s in subscribers:
        readers.setdefault(ranker.variant_key(s), []).append(s.email)
    # Nobody gets an article a digest already sent them: each variant leaves out
    # what its own readers were sent on earlier days (store.sent_to).
    sent = {key: store.sent_to(emails, before=day) for key, emails in readers.items()}
    selections = {key: ranker.for_variant(ranked, config, key, now=now, exclude=sent[key])
                  for key, emails in sorted(readers.items())}
    edits = store.edits(day, group)
    if edits:  # the editor's desk shapes the day (digest.rank.desk), every variant alike
        selections = {key: desk.apply(sel, ranked.stories, edits,
                                      exclude=frozenset(sent[key])).selection
                      for key, sel in selections.items()}
    quiet = frozenset(key for key, sel in selections.items() if not sel.stories)
    selections = {key: sel for key, sel in selections.items() if sel.stories}
    if not selections:
        return Digest(day=day, variants={}, quiet=quiet, group=group)
    selection = selections.get("all") or next(iter(selections.values()))
    variants = {key: render.render_variant(sel, config, variant=key, now=now)
                for key, sel in selections.items()}
    ids = tuple(sorted({a.id for sel in selections.values() for s in sel.stories
                        for a in s.articles if a.id is not None}))
    carried = {key: tuple(sorted({a.id for s in sel.stories for a in s.articles
                                  if a.id is not None})) for key, sel in selections.items()}
    return Digest(day=day, variants=variants, stories=selection.stories, article_ids=ids,
                  group=group, carried=carried, quiet=quiet)


def prepare(config: Config, store: Store, *, now: datetime,
            subscribers: Sequence[Subscriber], group: str = "") -> Digest:
    """Today's digest, frozen in the store the first time so reruns send the same one."""
    day = today(config, now, group)
    stored = {key: replace(r, variant=key) for r in store.load_digest(day)
              for g, key in [_split_name(r.variant)] if g == group}
    if stored:
        when, ids = store.digest_frozen(day) or (None, ())
        return Digest(day=day, variants=stored, frozen=True, group=group, frozen_at=when,
                      article_ids=ids)
    digest = build_digest(config, store, now=now, subscribers=subscribers, group=group)
    if not digest.empty:
        named = [replace(r, variant=_stored_name(group, key)) for key, r in digest.variants.items()]
        store.save_digest(day, named, digest.article_ids, now=now)
        store.save_variant_articles(day, digest.carried)
    return digest


def recipients(config: Config, store: Store, roster: subs.Roster,
               to: str | None = None) -> list[Subscriber]:
    """Active, unsuppressed subscribers, or the one address given with --to."""
    if to is None:
        return list(roster.active(store.suppressed()))
    address = subs.normalise_email(to)
    # --to must not become a way around an unsubscribe (raises SubscriberError).
    subs.check_mailable(address, roster, store.suppression(address))
    return [roster.find(address) or Subscriber(email=address, source="--to")]


def send_digest(config: Config, store: Store, digest: Digest, people: Sequence[Subscriber], *,
                now: datetime, password: str | None,
                on_progress: Callable[[Delivery], None] | None = None) -> SendReport:
    """Journal every recipient first, then deliver; the journal skips anyone already sent."""
    from digest.mail.message import personal_for
    from digest.mail.message import prepare as prepare_message
    from digest.rank import select as ranker
    from digest.send import deliver as send

    blocked = store.suppressed()  # last word: an unsubscribe since the roster was read wins
    people = [p for p in people if p.email.lower() not in blocked]
    idle = [p for p in people if ranker.variant_key(p) in digest.quiet]
    if idle:
        log.info("nothing new for %d subscriber(s) since their last digest: no email for them",
                 len(idle))
        people = [p for p in people if ranker.variant_key(p) not in digest.quiet]
    secret = signing_secret(config, store)
    selection_keys = {p.email: ranker.variant_key(p) for p in people}
    store.plan_deliveries(digest.day, [(p.email, selection_keys[p.email]) for p in people], now=now)

    # MIME built and encoded once per (variant, format); each message is then a splice
    # of the subscriber's fields into those bytes (digest.mail.mime), not an email-package build.
    prepared: dict[tuple[str, str], PreparedMessage] = {}

    def builder(p: Subscriber) -> Callable[[], bytes]:
        def build() -> bytes:
            lifecycle.check()  # after SIGTERM: nothing new starts; in-flight ones finish
            rendered = digest.variant_for(selection_keys[p.email])
            key = (rendered.variant, p.format)
            if key not in prepared:
                prepared[key] = prepare_message(config, rendered, day=digest.day, fmt=p.format)
            personal = personal_for(config, secret, p, digest.day)
            return prepared[key].bytes_for(p, personal, now=utcnow())
        return build

    outgoing = [send.Outgoing(email=p.email, build=builder(p)) for p in people]
    worker = f"{socket.gethostname()}:{os.getpid()}"
    return send.deliver_sync(config, store, digest.day, outgoing, password=password,
                             worker=worker, on_progress=on_progress)


def run_once(config: Config, *, now: datetime | None = None, password: str | None = None,
             group: str | None = None, kind: str = "once",
             on_feed: Callable[[FeedResult], None] | None = None,
             on_progress: Callable[[Delivery], None] | None = None) -> RunReport:
    """One full cycle: collect, rank, render, send. The daemon calls this per group.

    ``group`` None means everyone with the newsletter's edition (a manual run);
    a group name ("" or an IANA zone) means only that group's subscribers,
    with that group's own edition. Every run is recorded for `digest status`.
    """
    now = now or utcnow()
    store = open_store(config)
    run_id = runlog.RUN_ID.get()
    if run_id == "-":
        run_id = runlog.new_run_id()
    day = today(config, now, group or "")
    with runlog.run_context(run_id):
        store.start_run(run_id, group=group if group is not None else "*", day=day, kind=kind,
                        now=now)
        try:
            result = _cycle(config, store, now=now, password=password, group=group,
                            on_feed=on_feed, on_progress=on_progress)
        except BaseException as e:
            status = "stopped" if isinstance(e, lifecycle.Stopping) else "failed"
            store.finish_run(run_id, status=status, note=str(e)[:500] or type(e).__name__)
            store.close()
            raise
        sent = result.send
        store.finish_run(run_id, status="skipped" if result.nothing_new else "ok",
                         note="nothing new" if result.nothing_new else None,
                         collected=sum(f.new for f in result.feeds), selected=result.stories,
                         sent=sent.sent, deferred=sent.deferred, failed=sent.failed)
        store.close()
        return result


def _cycle(config: Config, store: Store, *, now: datetime, password: str | None,
           group: str | None, on_feed: Callable[[FeedResult], None] | None,
           on_progress: Callable[[Delivery], None] | None) -> RunReport:
    from digest.render import variant as render

    catch_up_files(config, store)
    roster = load_roster(config)
    render.check_templates(config)
    feeds = collect(config, store, now=now, on_result=on_feed)
    people = recipients(config, store, roster)
    if group is not None:
        people = [p for p in people if group_of(config, p) == group]
    digest = prepare(config, store, now=now, subscribers=people, group=group or "")
    if digest.empty and config.selection.skip_if_empty:
        log.info("nothing new since the last digest: no email today")
        return RunReport(day=today(config, now, group or ""), feeds=tuple(feeds),
                         nothing_new=True)
    report = send_digest(config, store, digest, people, now=now, password=password,
                         on_progress=on_progress)
    return RunReport(day=digest.day, feeds=tuple(feeds), stories=len(digest.article_ids),
                     variants=len(digest.variants), send=report, frozen_at=digest.frozen_at)


@dataclass(frozen=True)
class Copy:
    """One subscriber's copy of a digest, as it would be sent."""

    rendered: Rendered
    subscriber: Subscriber
    html: str
    text: str
    eml: bytes  # the message exactly as `digest send` would mail it

    @property
    def message(self) -> EmailMessage:
        """The message parsed, for reading. Never serialise it again: the email
        package would refold (and decode) headers digest encoded itself."""
        return email.message_from_bytes(self.eml, policy=email.policy.default)


READER = Subscriber(email="reader@example.org", name="Reader")  # no real person


def frozen_notice(config: Config, store: Store, *, now: datetime) -> str | None:
    """The line render, preview and run --once print once today's edition is frozen:
    from then on the templates no longer change what goes out today."""
    frozen = store.digest_frozen(today(config, now))
    return None if frozen is None else frozen_line(config, frozen[0])


def frozen_line(config: Config, at: datetime) -> str:
    return (f"today's edition was frozen at {at.astimezone(config.tz):%H:%M:%S} "
            f"when sending began; template changes apply from tomorrow")


def copy_for(config: Config, store: Store, *, now: datetime, email: str | None = None,
             day: date | None = None, edition: bool = False) -> Copy | None:
    """What one subscriber would get (the first active one by default), without
    freezing or sending anything. None when there is nothing to send.

    ``edition`` without ``email``: the whole general edition (every section) for a
    neutral "Reader", whose unsubscribe link is nobody's (`digest render`)."""
    from digest.mail.message import message_bytes, personal_for
    from digest.rank import select as ranker
    from digest.render import variant as render

    roster = load_roster(config)
    people = recipients(config, store, roster, to=email) if email else \
        [] if edition else list(roster.active())
    person = people[0] if people else READER
    day = day or today(config, now)
    stored = store.load_digest(day)
    if stored:
        digest = Digest(day=day, variants={r.variant: r for r in stored}, frozen=True)
    else:
        # The neutral reader has read nothing: nothing is left out of its edition.
        digest = build_digest(config, store, now=now,
                              subscribers=[] if person is READER else [person])
    if digest.empty:
        return None
    rendered = digest.variant_for(ranker.variant_key(person))
    personal = personal_for(config, signing_secret(config, store), person, day)
    html, text = render.personalise(rendered, personal)
    eml = message_bytes(config, rendered, person, personal, day=day, now=now)
    return Copy(rendered=rendered, subscriber=person, html=html, text=text, eml=eml)
