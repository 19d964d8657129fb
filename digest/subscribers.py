"""Read and validate the subscriber files under subscribers/.

Files are ``subscribers/*.toml``, each a list of ``[[subscriber]]`` tables that
people edit by hand and keep in git. Reading is strict about each entry (one clear
line per problem, naming file and line) but never lets one bad entry stop the
others. Editing lives in :mod:`digest.subscribers_edit`, CSV and JSON in
:mod:`digest.subscribers_csv`.
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.models import MailFormat, Subscriber, SubscriberStatus

log = logging.getLogger(__name__)

KEYS = ("email", "name", "topics", "timezone", "format", "status", "added")
DEFAULT_FILE = "subscribers.toml"
# When one address is on several lists the most restrictive status wins: an
# unsubscribe written in one file must never be undone by another file.
_RESTRICTIVE = {"active": 0, "paused": 1, "unsubscribed": 2}
_HEADER = re.compile(r"\s*\[\[\s*subscriber\s*\]\]\s*(#.*)?$")


@dataclass(frozen=True)
class Entry:
    """One valid [[subscriber]] table as written, before lists are merged."""

    subscriber: Subscriber
    path: Path
    line: int
    added: date | None = None


@dataclass(frozen=True)
class Roster:
    """Everyone in the subscriber files, de-duplicated, plus every problem found.

    ``problems`` are entries skipped (``digest subscribers check`` fails on them);
    ``notes`` are worth knowing but harmless, such as one address on two lists.
    """

    subscribers: tuple[Subscriber, ...]
    problems: tuple[str, ...] = field(default_factory=tuple)
    notes: tuple[str, ...] = field(default_factory=tuple)
    entries: tuple[Entry, ...] = field(default_factory=tuple)
    files: tuple[Path, ...] = field(default_factory=tuple)

    def active(self, suppressed: set[str] | None = None) -> tuple[Subscriber, ...]:
        blocked = suppressed or set()
        return tuple(s for s in self.subscribers
                     if s.status == "active" and s.email.lower() not in blocked)

    def find(self, email: str) -> Subscriber | None:
        key = normalise_email(email)
        return next((s for s in self.subscribers if s.email == key), None)

    def entries_of(self, email: str) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.subscriber.email == email)


def normalise_email(address: str) -> str:
    """Syntax check (no DNS) and normalise to lower case, IDN domains in Unicode form.

    Local parts are case-sensitive in theory and never in practice; lower-casing
    them is what keeps "Ada@x" and "ada@x" from getting two digests. A punycode
    domain (xn--...) and its Unicode spelling normalise to the same address.
    """
    try:
        info = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise SubscriberError(f"{address!r} is not a valid email address: {e}") from None
    return f"{info.local_part}@{info.domain}".lower()


def check_timezone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise SubscriberError(f"unknown time zone {tz!r}; "
                              "use an IANA name such as 'Europe/Berlin'") from None
    return tz


class Unmailable(SubscriberError):
    """The address unsubscribed (file or suppression list): nothing may be mailed to it."""


def check_mailable(address: str, roster: Roster,
                   suppression: tuple[str, datetime] | None) -> None:
    """Raise Unmailable unless ``address`` may be mailed: suppression and unsubscribes
    always win."""
    if suppression is not None:
        reason, when = suppression
        raise Unmailable(f"{address} unsubscribed on {when:%Y-%m-%d} ({reason}); not sending",
                              hint=f"only 'digest subscribers resubscribe {address}', "
                                   "with their consent, lifts that")
    person = roster.find(address)
    if person is not None and person.status == "unsubscribed":
        raise Unmailable(f"{address} is unsubscribed ({person.source}); not sending")


# -- loading ------------------------------------------------------------------

def load(folder: Path, topics: Sequence[str] = ()) -> Roster:
    """Read every subscribers/*.toml; bad entries become problems, not exceptions."""
    if not folder.is_dir():
        raise SubscriberError(f"{folder}: subscribers folder not found",
                              hint="create it or set paths.subscribers in config.toml")
    files = tuple(sorted(folder.glob("*.toml")))
    merged: dict[str, Subscriber] = {}
    first_seen: dict[str, Entry] = {}
    entries: list[Entry] = []
    problems: list[str] = []
    notes: list[str] = []
    for path in files:
        for item in _read_file(path, set(topics)):
            if isinstance(item, str):
                problems.append(item)
                continue
            email = item.subscriber.email
            first = first_seen.get(email)
            if first is None:
                first_seen[email] = item
                merged[email] = item.subscriber
                entries.append(item)
            elif first.path == item.path:
                problems.append(f"{item.subscriber.source}: duplicate of {first.subscriber.source}"
                                f" ({email}); remove one")
            else:
                entries.append(item)
                merged[email] = _merge(merged[email], item.subscriber)
                notes.append(_two_lists_note(first.subscriber, item.subscriber, merged[email]))
    return Roster(tuple(merged.values()), tuple(problems), tuple(notes), tuple(entries), files)


def _merge(first: Subscriber, again: Subscriber) -> Subscriber:
    status: SubscriberStatus = max(first.status, again.status, key=lambda s: _RESTRICTIVE[s])
    # An empty topic list means "all sections": all of one list covers the other.
    if first.topics and again.topics:
        topics = tuple(dict.fromkeys(first.topics + again.topics))
    else:
        topics = ()
    return replace(first, status=status, topics=topics)


def _two_lists_note(first: Subscriber, again: Subscriber, merged: Subscriber) -> str:
    note = (f"{again.source}: {again.email} is also on {first.source}; "
            f"one digest goes out")
    if first.status != again.status:
        note += f" (status {merged.status}: the stricter of {first.status} and {again.status})"
    return note


def _read_file(path: Path, topics: set[str]) -> list[Entry | str]:
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        return [f"{path}: not UTF-8 (byte {e.start}); save it as UTF-8"]
    except OSError as e:
        return [f"{path}: cannot read: {e.strerror}"]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"{path}: not valid TOML: {e}"]
    out: list[Entry | str] = [f"{path}: {key}: unknown top-level key (only [[subscriber]] "
                              "tables belong here)" for key in data if key != "subscriber"]
    entries = data.get("subscriber", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [*out, f"{path}: 'subscriber' must be a list of [[subscriber]] tables"]
    lines = header_lines(text)
    for i, entry in enumerate(entries):
        line = lines[i] if i < len(lines) and len(lines) == len(entries) else 0
        where = f"{path}:{line or '?'}"
        try:
            sub, added = validate_entry(entry, where, topics)
        except SubscriberError as e:
            out.append(e.message)
            continue
        out.append(Entry(sub, path, line, added))
    return out


def header_lines(text: str) -> list[int]:
    """1-based line numbers of the [[subscriber]] headers, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1) if _HEADER.match(line)]


def validate_entry(entry: Mapping[str, Any], where: str,
                   topics: set[str]) -> tuple[Subscriber, date | None]:
    """One table (or CSV row) -> Subscriber; raise SubscriberError naming the first problem."""
    for key in entry:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(KEYS)}"
            raise SubscriberError(f"{where}: {key}: unknown key; {hint}")
    if "email" not in entry:
        raise SubscriberError(f"{where}: email: required key is missing")
    raw_email = entry["email"]
    if not isinstance(raw_email, str):
        raise SubscriberError(f"{where}: email: must be a string")
    try:
        email = normalise_email(raw_email)
    except SubscriberError as e:
        raise SubscriberError(f"{where}: email: {e.message}") from None
    name = entry.get("name", "")
    if not isinstance(name, str):
        raise SubscriberError(f"{where}: name: must be a string")
    tz = entry.get("timezone") or None
    if tz is not None:
        try:
            check_timezone(str(tz))
        except SubscriberError as e:
            raise SubscriberError(f"{where}: timezone: {e.message}") from None
    fmt = entry.get("format", "html")
    if fmt not in get_args(MailFormat):
        raise SubscriberError(f"{where}: format: {fmt!r} is not html or text")
    status = entry.get("status", "active")
    if status not in get_args(SubscriberStatus):
        raise SubscriberError(f"{where}: status: {status!r} is not active, paused or unsubscribed")
    sub_topics = _topics(entry.get("topics", []), where, topics)
    added = _added(entry.get("added"), where)
    return Subscriber(email=email, name=name, topics=sub_topics, timezone=tz, format=fmt,
                      status=status, source=where), added


def _topics(value: Any, where: str, known: set[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise SubscriberError(f"{where}: topics: must be a list of strings")
    bad = [t for t in value if known and t not in known]
    if bad:
        raise SubscriberError(f"{where}: topics: unknown topic {bad[0]!r}; "
                              f"known: {', '.join(sorted(known))}")
    return tuple(value)


def _added(value: Any, where: str) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SubscriberError(f"{where}: added: {value!r} is not a date; write 2026-01-31")


# -- editing (kept here so `subscribers.add` and friends stay where callers found them) --

def add(folder: Path, email: str, *, name: str = "", topics: Sequence[str] = (),
        timezone: str | None = None, list_name: str | None = None,
        today: date | None = None, format: MailFormat = "html") -> Path:
    """Append a subscriber to a list file (created if needed); refuse duplicates."""
    from digest.subscribers_edit import add as add_entry

    return add_entry(folder, email, name=name, topics=topics, timezone=timezone,
                                list_name=list_name, today=today, format=format)


def set_status(folder: Path, email: str, status: SubscriberStatus | None) -> Path:
    """Change a subscriber's status in every file; ``None`` removes the entries.

    Returns the first file changed; raises SubscriberError if the address is in none.
    """
    from digest.subscribers_edit import set_status as set_all

    return set_all(folder, email, status)[0]
