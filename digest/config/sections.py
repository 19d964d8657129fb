"""The sections of config.toml as pydantic models: every option declared once, with
its default, its check and a one-line docstring. Reading the file and reporting
its problems is ``loader``'s job.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import time as dtime
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Section(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class NewsletterConfig(_Section):
    name: str = "The Daily Selection"
    """Shown in the masthead, the From name and the subject."""
    from_address: Annotated[str, Field(alias="from")] = "Daily Selection <digest@example.org>"
    """The From header: "Name <address>" or a bare address."""
    reply_to: str = ""
    """Reply-To address; empty for none."""
    list_id: str = "daily.example.org"
    """List-Id (RFC 2919): a domain-like identifier for this list."""
    postal_address: str = ""
    """Postal address printed in the footer (required by CAN-SPAM)."""
    base_url: str = "http://127.0.0.1:8026"
    """Public base URL of `digest serve`: unsubscribe and view-in-browser links."""
    language: str = "en"
    """Language of dates and fixed strings in the template (en, de)."""
    secret_env: str = "DIGEST_SECRET"
    """Environment variable holding the secret that signs unsubscribe tokens."""
    secret_grace_days: int = Field(default=90, ge=0)
    """Days a retired secret (<secret_env>_OLD, or the database one) still verifies the
    tokens it signed, counted from its retirement day; see README, rotating the secret."""
    unsubscribe_mailto: str = ""
    """mailto fallback for List-Unsubscribe; default unsubscribe@<from domain>."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v.rstrip("/")

    @field_validator("name", "from_address", "reply_to", "list_id", "unsubscribe_mailto")
    @classmethod
    def _one_line(cls, v: str) -> str:
        # These go into mail headers: digest encodes them, but a line break or a
        # control character there is a typo worth a clear error, not a silent fix.
        bad = next((c for c in v if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
        if bad is not None:
            raise ValueError(f"holds a control character or line break (U+{ord(bad):04X}): "
                             "write it on one line")
        return v

    @field_validator("from_address")
    @classmethod
    def _from(cls, v: str) -> str:
        if "@" not in v:
            raise ValueError(f"not an email address: {v!r}")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        if v not in ("en", "de"):
            raise ValueError(f"unsupported language {v!r}; use 'en' or 'de'")
        return v


class ScheduleConfig(_Section):
    time: str = "07:00"
    """Local time of the daily send, HH:MM (or HH:MM:SS)."""
    timezone: str = "UTC"
    """IANA time zone of the schedule, e.g. Europe/Berlin."""
    days: tuple[str, ...] = DAYS
    """Days to send on: mon..sun."""
    misfire_grace_minutes: int = Field(default=60, ge=0)
    """A run missed (daemon down) by less than this still goes out, once."""
    approval: Literal["none", "required"] = "none"
    """"required": a scheduled send waits for `digest desk approve` (see the desk)."""
    approval_deadline: str = ""
    """Local HH:MM after which an unapproved edition is sent or skipped (on_deadline);
    empty: it waits until its day ends, then on_deadline applies."""
    on_deadline: Literal["send", "skip"] = "skip"
    """What an edition still unapproved at the deadline does: go out, or not at all."""

    @field_validator("approval_deadline")
    @classmethod
    def _deadline(cls, v: str) -> str:
        return cls._time(v) if v else v

    @field_validator("time")
    @classmethod
    def _time(cls, v: str) -> str:
        if not re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", v):
            raise ValueError(f"not a time of day {v!r}; write HH:MM, e.g. '07:00'")
        v = v.zfill(len(v) + (1 if v.index(":") == 1 else 0))
        try:
            dtime.fromisoformat(v)
        except ValueError:
            raise ValueError(f"not a time of day {v!r}; write HH:MM, e.g. '07:00'") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("days")
    @classmethod
    def _days(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        bad = [d for d in v if d.lower()[:3] not in DAYS]
        if bad:
            raise ValueError(f"unknown day {bad[0]!r}; use {', '.join(DAYS)}")
        return tuple(d.lower()[:3] for d in v)

    @property
    def hour(self) -> int:
        return int(self.time[:2])

    @property
    def minute(self) -> int:
        return int(self.time[3:5])

    @property
    def second(self) -> int:
        return int(self.time[6:8] or 0)


class FeedConfig(_Section):
    url: str
    """http(s) URL, or a path to a local file (relative to config.toml)."""
    name: str = ""
    """Display name of the outlet; defaults to the feed's own title trimmed of section
    and tagline ("World - CBSNews.com" -> "CBSNews.com"), else the site's host."""
    weight: float = Field(default=1.0, ge=0)
    """Source weight in the score; 1.0 is neutral."""
    topics: tuple[str, ...] = ()
    """Topics every article of this feed belongs to."""
    site: str = ""
    """The site's home page (OPML's htmlUrl), as `digest feeds add`/`import` found it."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if re.match(r"[A-Za-z][A-Za-z0-9+.-]+:", v):  # has a scheme (not a C: drive)
            parts = urlsplit(v)
            if parts.scheme == "file":
                return v
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"not a URL: {v!r} (use http(s)://host/path or a local path)")
        elif not v.strip():
            raise ValueError("empty URL")
        return v


class TopicConfig(_Section):
    title: str = ""
    """Section heading for the topic; defaults to the capitalised topic name."""
    keywords: tuple[str, ...] = ()
    """Words or phrases that put an article into this topic when they stand in its headline
    or lead (whole words, any case, plurals too) and its meaning agrees."""
    description: str = ""
    """What the topic is about, best as a comma-separated list of the words its articles
    use: with the title and keywords it makes the topic's meaning, which an article's
    meaning is compared with; each listed term also names the topic in feed categories."""


class SectionConfig(_Section):
    title: str
    """Heading shown in the email."""
    topics: tuple[str, ...] = ()
    """Only stories in these topics; empty means any story."""
    max_stories: int = Field(default=5, ge=1)
    """At most this many stories in the section."""


class SelectionConfig(_Section):
    max_stories: int = Field(default=12, ge=1)
    """Stories in one digest, all sections together."""
    max_age_hours: float = Field(default=36, ge=0)
    """Only articles published this recently; 0 means no limit."""
    half_life_hours: float = Field(default=12, gt=0)
    """Recency score halves every this many hours."""
    per_source: int = Field(default=3, ge=1)
    """At most this many stories led by one source."""
    topic_weight: float = Field(default=0.5, ge=0)
    """Score added per matched topic."""
    coverage_boost: float = Field(default=0.25, ge=0)
    """Score multiplier added per extra outlet reporting a story (capped at 3x)."""
    sections: tuple[SectionConfig, ...] = (SectionConfig(title="Top stories", max_stories=5),)
    """Sections in order; each takes the best remaining stories that fit it."""
    topic_sections: bool = True
    """After the listed sections, add one section per configured topic."""
    more_title: str = "More stories"
    """The general edition's last section: the best stories left, up to max_stories
    ("" leaves them out). A real day's topic sections rarely fill on their own."""
    skip_if_empty: bool = True
    """With no new stories, send nothing (and say so)."""
    summaries: bool = True
    """Under the headline of a story several outlets report, two or three of their most
    central sentences, each credited to its outlet (in place of the lead's own teaser)."""


class SmtpConfig(_Section):
    host: str = "127.0.0.1"
    """SMTP server host."""
    port: int = Field(default=587, ge=1, le=65535)
    """SMTP server port (587 starttls, 465 tls, 25 none)."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls, tls (implicit, port 465) or none."""
    username: str = ""
    """Login name; empty to send without AUTH."""
    password_env: str = "SMTP_PASSWORD"
    """Environment variable holding the SMTP password."""
    verify_certificates: bool = True
    """Verify the server's TLS certificate."""
    ca_file: str = ""
    """PEM bundle to trust instead of the system's (e.g. a private CA)."""
    timeout: float = Field(default=30, gt=0)
    """Seconds to wait for the server at each step."""
    connections: int = Field(default=4, ge=1, le=32)
    """Concurrent SMTP connections, each reused for many messages."""
    messages_per_connection: int = Field(default=100, ge=1)
    """Reconnect after this many messages on one connection."""
    rate_per_second: float = Field(default=0, ge=0)
    """At most this many messages a second (token bucket); 0 for no limit."""
    rate_per_hour: float = Field(default=0, ge=0)
    """At most this many messages in any hour; 0 for no limit."""
    retry_first: float = Field(default=300, gt=0)
    """Seconds before a deferred (4xx) message is retried; doubles each time, up to 6 h."""
    retry_within_run: float = Field(default=900, ge=0)
    """A send keeps retrying deferred messages that fall due within this many seconds."""
    lease: float = Field(default=120, ge=10)
    """Seconds a sender holds the rows it claimed, renewed while it works; past it
    another sender may take them (keep it above twice smtp.timeout)."""


class DkimConfig(_Section):
    selector: str = ""
    """DKIM selector (the key is published at <selector>._domainkey.<domain>); empty: no DKIM."""
    domain: str = ""
    """Signing domain (d=); default the From address's domain."""
    private_key_file: str = ""
    """PEM private key (RSA or Ed25519), relative to config.toml."""
    private_key_env: str = "DKIM_PRIVATE_KEY"
    """Environment variable holding the PEM key, used when private_key_file is empty."""


class StorageConfig(_Section):
    path: str = "var/digest.db"
    """SQLite database file, relative to config.toml."""
    keep_days: int = Field(default=30, ge=0)
    """Articles older than this many days are pruned after each collect; 0 keeps all."""


class CollectConfig(_Section):
    concurrency: int = Field(default=16, ge=1, le=256)
    """Feeds fetched at once, in all."""
    per_host: int = Field(default=2, ge=1, le=32)
    """Feeds fetched at once from one host."""
    connect_timeout: float = Field(default=10, gt=0)
    """Seconds to wait for a connection."""
    read_timeout: float = Field(default=20, gt=0)
    """Seconds to wait for each piece of a response."""
    timeout: float = Field(default=60, gt=0)
    """Seconds one feed's whole fetch may take, redirects included."""
    max_mb: float = Field(default=10, gt=0)
    """Largest feed body accepted, in MB after decompression."""
    parse_workers: int | None = Field(default=None, ge=0, le=32)
    """Processes that parse the feeds; unset: one per core (none on one core); 0: a thread."""


class PathsConfig(_Section):
    subscribers: str = "subscribers"
    """Folder of subscriber files (*.toml), relative to config.toml."""
    templates: str = "templates"
    """Folder of email templates, relative to config.toml."""
    template: str = "daily"
    """Template name: <name>.mjml.j2 and <name>.txt.j2."""


class PreviewConfig(_Section):
    host: str = "127.0.0.1"
    """Interface `digest preview` listens on."""
    port: int = Field(default=8025, ge=1, le=65535)
    """Port for `digest preview`."""


class ServeConfig(_Section):
    host: str = "127.0.0.1"
    """Interface `digest serve` listens on (a reverse proxy makes it public)."""
    port: int = Field(default=8026, ge=1, le=65535)
    """Port for `digest serve` (newsletter.base_url must reach it); not preview's 8025."""
    header_timeout: float = Field(default=10.0, gt=0, le=600)
    """Seconds a client has to send a request's headers; a slower one is dropped (408)."""
    body_timeout: float = Field(default=30.0, gt=0, le=3600)
    """Seconds a client has, once its headers are in, to send the request body."""
    max_connections: int = Field(default=1000, ge=1)
    """Connections served at once; beyond it a request gets 503 at once."""
    busy_timeout: float = Field(default=2.0, gt=0, le=60)
    """Seconds a request waits for a locked subscriber file or database, then 503."""


class BouncesConfig(_Section):
    soft_limit: int = Field(default=3, ge=1)
    """Soft bounces (4.x.x, delayed) of one address within window_days that suppress it."""
    window_days: int = Field(default=14, ge=1, le=365)
    """Days the soft bounces are counted over; also how recently digest must have
    mailed an address for a report about it to be believed (the delivery journal)."""


class ThemeConfig(_Section):
    brand_color: str = "#9c2b23"
    """Brand colour (#rgb or #rrggbb): masthead rule and section headings."""
    logo_url: str = ""
    """http(s) URL of a logo for the masthead (a transparent PNG survives dark mode)."""
    logo_width: int = Field(default=180, ge=16, le=552)
    """Logo width in CSS pixels."""
    font_stack: str = ("-apple-system, BlinkMacSystemFont, 'Segoe UI', Roboto, Helvetica, "
                       "Arial, sans-serif")
    """CSS font-family for body text."""
    heading_font_stack: str = "Georgia, 'Times New Roman', serif"
    """CSS font-family for headlines."""

    @field_validator("brand_color")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not re.fullmatch(r"#(?:[0-9a-fA-F]{3}){1,2}", v):
            raise ValueError(f"not a colour {v!r}; write #rrggbb, e.g. '#9c2b23'")
        v = v.lower()
        return v if len(v) == 7 else "#" + "".join(c * 2 for c in v[1:])

    @field_validator("logo_url")
    @classmethod
    def _logo(cls, v: str) -> str:
        if v and (urlsplit(v).scheme not in ("http", "https") or not urlsplit(v).netloc):
            raise ValueError(f"not an http(s) URL: {v!r}")
        return v

    @field_validator("font_stack", "heading_font_stack")
    @classmethod
    def _fonts(cls, v: str) -> str:
        # It lands inside style attributes and CSS: no ; { } < > or backslashes.
        if not re.fullmatch(r"[A-Za-z0-9 ,'\"._-]+", v):
            raise ValueError(f"not a CSS font list {v!r}; e.g. \"Helvetica, Arial, sans-serif\"")
        return v.replace('"', "'")


class ConfigModel(_Section):
    newsletter: NewsletterConfig = NewsletterConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    feeds: tuple[FeedConfig, ...] = ()
    topics: dict[str, TopicConfig] = {}
    selection: SelectionConfig = SelectionConfig()
    smtp: SmtpConfig = SmtpConfig()
    dkim: DkimConfig = DkimConfig()
    storage: StorageConfig = StorageConfig()
    collect: CollectConfig = CollectConfig()
    paths: PathsConfig = PathsConfig()
    preview: PreviewConfig = PreviewConfig()
    serve: ServeConfig = ServeConfig()
    theme: ThemeConfig = ThemeConfig()
    bounces: BouncesConfig = BouncesConfig()


def check_timezone(v: str) -> str:
    try:
        ZoneInfo(v)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {v!r}; use an IANA name such as 'Europe/Berlin'") from None
    return v
