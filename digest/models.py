"""The typed values that flow between the stages.

collect -> Article, rank -> Story/Section/Selection, render -> Rendered,
personalise -> Personal, send -> Delivery. All frozen: a stage never edits
what an earlier stage produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, NamedTuple

FeedStatus = Literal["ok", "not_modified", "error"]
SubscriberStatus = Literal["active", "paused", "unsubscribed"]
MailFormat = Literal["html", "text"]
DeliveryStatus = Literal["pending", "sending", "sent", "failed", "deferred"]


@dataclass(frozen=True)
class Feed:
    """One configured feed. ``url`` is http(s) or a local path (resolved by config)."""

    url: str
    name: str
    weight: float = 1.0
    topics: tuple[str, ...] = ()
    # False when config.toml gave no name and ``name`` is only the URL's host: the
    # collect then names the outlet from the feed's own title (digest.collect.outlet).
    named: bool = True


@dataclass(frozen=True)
class Article:
    """One item of one feed, sanitized and normalised."""

    feed_url: str
    source: str  # the outlet: the feed's configured name, else its title's (collect.outlet)
    guid: str
    url: str
    title: str
    summary: str  # plain text, already cut to a readable length
    published: datetime  # timezone-aware, UTC
    content_html: str = ""  # sanitized HTML (nh3), may be empty
    author: str | None = None
    categories: tuple[str, ...] = ()
    image: str | None = None
    id: int | None = None  # row id once stored
    # False when the feed gave no usable date (none, unreadable, the year 1, far in
    # the future): ``published`` is then when digest first saw the item.
    dated: bool = True
    # An undated item already in its feed at the feed's first successful collect: a
    # page (About, Projects), not news. Never ranked.
    backlog: bool = False


@dataclass(frozen=True)
class FeedResult:
    """What happened to one feed during a collect (the ``--json`` row)."""

    feed: str
    url: str
    status: FeedStatus
    items: int = 0
    new: int = 0
    error: str | None = None
    moved_to: str | None = None  # the feed answered with a permanent redirect to here
    undated: int = 0  # new items without a usable date (dated by first sight)
    backlog: int = 0  # of those, the ones kept out of ranking (see Article.backlog)

    def as_json(self) -> dict[str, object]:
        row: dict[str, object] = {
            "feed": self.feed,
            "url": self.url,
            "status": self.status,
            "items": self.items,
            "new": self.new,
            "error": self.error,
        }
        if self.moved_to:  # only when there is news: the six fields above are the contract
            row["moved_to"] = self.moved_to
        if self.undated:
            row["undated"] = self.undated
        if self.backlog:
            row["backlog"] = self.backlog
        return row


class Sentence(NamedTuple):
    """One sentence of a story summary, verbatim from a member, and its outlet."""

    text: str
    source: str  # the outlet (Article.source) credited after the sentence


@dataclass(frozen=True, slots=True)
class Summary:
    """Two or three sentences drawn from a story's members (digest.rank.summarise),
    each credited to its outlet; shown under the headline. A plain value: an editor's
    rewrite replaces it whole."""

    sentences: tuple[Sentence, ...]


@dataclass(frozen=True, slots=True)
class Story:
    """One event: a lead article and others reporting the same thing."""

    lead: Article
    others: tuple[Article, ...] = ()
    score: float = 0.0
    # Score components, for --explain; not to be changed. A dict of plain values is
    # invisible to the cyclic garbage collector, where six pairs in a tuple were
    # seven objects for it to scan per story (0.05 s of a 20k-article day).
    reasons: dict[str, float] = field(default_factory=dict, hash=False)
    topics: tuple[str, ...] = ()
    # Only for a selected story that several outlets report, when
    # ``selection.summaries`` is on (digest.rank.select); None otherwise.
    summary: Summary | None = None

    @property
    def articles(self) -> tuple[Article, ...]:
        return (self.lead, *self.others)

    @property
    def also_reported_by(self) -> tuple[str, ...]:
        seen: list[str] = []
        for a in self.others:
            if a.source != self.lead.source and a.source not in seen:
                seen.append(a.source)
        return tuple(seen)


@dataclass(frozen=True)
class Section:
    title: str
    stories: tuple[Story, ...]
    topic: str | None = None  # None for a general section such as "Top stories"


@dataclass(frozen=True)
class Selection:
    """The stories chosen for one day, in sections, best first."""

    day: date
    sections: tuple[Section, ...]
    # The editor's note for the top of the edition (digest desk note): the small
    # Markdown subset digest.render.note reads; "" for none.
    note: str = ""

    @property
    def stories(self) -> tuple[Story, ...]:
        return tuple(s for sec in self.sections for s in sec.stories)

    @property
    def lead(self) -> Story | None:
        stories = self.stories
        return stories[0] if stories else None


EditKind = Literal["pin", "drop", "drop_article", "lead", "move", "headline", "blurb",
                   "note", "reset", "approve"]


@dataclass(frozen=True)
class Edit:
    """One editor's change to one day's edition (digest desk), as the store keeps it.

    ``anchor`` is the URL the edit was made on (the story's earliest member, or the
    article dropped); ``members`` every member URL of the story then: the edit follows
    the story through later collects by these, not by its id.
    """

    kind: EditKind
    day: date
    group: str = ""
    story: str = ""  # the story's id when the edit was made, for show and log
    anchor: str = ""
    members: tuple[str, ...] = ()
    text: str = ""  # headline, blurb, note; the section title for move
    position: int | None = None  # pin --at N (1 = the lead)
    by: str = ""
    at: datetime | None = None
    id: int | None = None  # row id once stored


@dataclass(frozen=True)
class Subscriber:
    email: str
    name: str = ""
    topics: tuple[str, ...] = ()
    timezone: str | None = None
    format: MailFormat = "html"
    status: SubscriberStatus = "active"
    source: str = ""  # "file:line" it was read from, for messages


@dataclass(frozen=True)
class Rendered:
    """One digest variant, compiled once. Personal fields are placeholders.

    ``html`` and ``text`` contain the tokens in ``digest.render.variant.PLACEHOLDERS``;
    ``digest.render.variant.personalise`` swaps them per subscriber.
    """

    variant: str  # stable key for the set of sections this variant holds
    subject: str
    preheader: str
    mjml: str
    html: str
    text: str
    dropped: tuple[str, ...] = ()  # titles left out to stay under Gmail's clipping limit


@dataclass(frozen=True)
class Personal:
    """The per-subscriber fields spliced into a Rendered variant."""

    email: str
    name: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    view_url: str
    # The IANA zone the story times are shown in: the subscriber's, else the schedule's.
    timezone: str = "UTC"


@dataclass(frozen=True)
class Delivery:
    """One row of the delivery journal."""

    day: date
    email: str
    status: DeliveryStatus
    variant: str = ""
    attempts: int = 0
    message_id: str | None = None
    last_error: str | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class SendReport:
    """What one ``digest send`` did."""

    sent: int = 0
    failed: int = 0
    deferred: int = 0
    skipped: int = 0  # already sent by an earlier run
    total: int = 0
    seconds: float = 0.0
    failures: tuple[tuple[str, str], ...] = field(default_factory=tuple)


BounceKind = Literal["hard", "soft", "complaint"]


@dataclass(frozen=True)
class Bounce:
    """What one bounce or complaint report says about one address we mailed."""

    address: str
    kind: BounceKind
    status: str = ""  # the enhanced status code (RFC 3463), e.g. "5.1.1"; "" if none
    diagnostic: str = ""  # the remote server's words, or the feedback type of a complaint
    reporter: str = ""  # the Reporting-MTA, or who sent the report
    arrived_at: datetime | None = None  # the report's Date, when it had a sane one
