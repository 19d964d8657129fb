"""Read and validate the subscriber files under subscribers/.

Files are ``subscribers/*.toml``, each a list of ``[[subscriber]]`` tables that
people edit by hand and keep in git. Reading is strict about each entry (one clear
line per problem, naming file and line) but never lets one bad entry stop the
others. Editing lives in :mod:`digest.subscribers.edit`, CSV and JSON in
:mod:`digest.subscribers.csv`.
"""

from __future__ import annotations

import difflib
import logging
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.models import MailFormat, Subscriber, SubscriberStatus
from digest.subscribers.last_good import LastGood, LastGoodCopies

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
    fallback: bool = False  # read from the last good copy of a broken file


@dataclass(frozen=True)
class Broken:
    """A subscriber file that cannot be read at all (TOML syntax, encoding).

    ``fallback`` is the last good copy digest kept of it, if there is one: sending
    uses that instead of leaving the file's readers out without a word.
    """

    path: Path
    line: int  # 0: not known
    reason: str
    fallback: LastGood | None = None

    @property
    def where(self) -> str:
        return f"{display(self.path)}:{self.line}" if self.line else display(self.path)

    def message(self) -> str:
        """One line: what is wrong, where, and what sending does about it."""
        head = f"{self.where}: {self.reason}"
        if self.fallback is None:
            return f"{head}; no good version of this file was ever read — fix the file"
        return (f"{head}; using the last good version from "
                f"{self.fallback.saved.astimezone(UTC):%Y-%m-%d %H:%M} UTC "
                f"({self.fallback.count} subscriber{'' if self.fallback.count == 1 else 's'}) "
                "— fix the file")


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
    broken: tuple[Broken, ...] = field(default_factory=tuple)

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


def display(path: Path) -> str:
    """A path as the user would type it: relative to the working folder when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def refuse_broken(roster: Roster) -> None:
    """Raise (one line, file:line) if a subscriber file cannot be read.

    Commands that edit or report on the files stop here: an add could duplicate
    someone in the unreadable file, an export would leave its readers out.
    """
    if roster.broken:
        b = roster.broken[0]
        more = f" (and {len(roster.broken) - 1} more files)" if len(roster.broken) > 1 else ""
        raise SubscriberError(f"{b.where}: {b.reason}{more}; nothing done",
                              hint="fix the file, then run the command again")


# -- loading ------------------------------------------------------------------

def load(folder: Path, topics: Sequence[str] = (), *,
         keep: LastGoodCopies | None = None) -> Roster:
    """Read every subscribers/*.toml; bad entries become problems, not exceptions.

    With ``keep``, every file that parses is remembered as its last good version,
    and a file that does not parse is read from that copy instead (``Roster.broken``
    says which, for the warning). Without a copy its readers are missing: callers
    that send must refuse then (see ``Roster.broken``).
    """
    if not folder.is_dir():
        raise SubscriberError(f"{folder}: subscribers folder not found",
                              hint="create it or set paths.subscribers in config.toml")
    files = tuple(sorted(folder.glob("*.toml")))
    merged: dict[str, Subscriber] = {}
    first_seen: dict[str, Entry] = {}
    entries: list[Entry] = []
    problems: list[str] = []
    notes: list[str] = []
    broken: list[Broken] = []
    for path in files:
        for item in _read_with_fallback(path, set(topics), keep, broken):
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
    return Roster(tuple(merged.values()), tuple(problems), tuple(notes), tuple(entries), files,
                  tuple(broken))


def _read_with_fallback(path: Path, topics: set[str], keep: LastGoodCopies | None,
                        broken: list[Broken]) -> list[Entry | str]:
    raw, text, failure = _parse(path)
    if failure is None:
        items = _entries_of(path, text, topics)
        if keep is not None and raw is not None and _structured(text):
            keep.save(path, raw, sum(isinstance(i, Entry) for i in items))
        return items
    line, reason = failure
    good = keep.get(path) if keep is not None else None
    broken.append(Broken(path, line, reason, good))
    if good is None:
        return [f"{display(path)}{f':{line}' if line else ''}: {reason}"]
    _raw, old_text, old_failure = _decode(good.raw)
    if old_failure is not None:  # pragma: no cover - only parsed copies are kept
        return [f"{display(path)}: {reason}"]
    return [replace(i, fallback=True,
                    subscriber=replace(i.subscriber,
                                       source=f"{i.subscriber.source} (last good version)"))
            if isinstance(i, Entry) else i
            for i in _entries_of(path, old_text, topics)]


_TOML_AT = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def _parse(path: Path) -> tuple[bytes | None, str, tuple[int, str] | None]:
    """(raw bytes, text, None) or (.., .., (line, reason)) for a file that cannot be read."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        return None, "", (0, f"cannot read: {e.strerror}")
    return _decode(raw)


def _decode(raw: bytes) -> tuple[bytes, str, tuple[int, str] | None]:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return raw, "", (line, f"not UTF-8 (byte {e.start}); save it as UTF-8")
    try:
        tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = _TOML_AT.search(str(e))
        if m is None:
            return raw, text, (0, f"invalid TOML ({e})")
        detail = _TOML_AT.sub("", str(e))
        return raw, text, (int(m.group(1)), f"invalid TOML ({detail}, column {m.group(2)})")
    return raw, text, None


def _structured(text: str) -> bool:
    entries = tomllib.loads(text).get("subscriber", [])
    return isinstance(entries, list) and all(isinstance(e, dict) for e in entries)


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


def _entries_of(path: Path, text: str, topics: set[str]) -> list[Entry | str]:
    data = tomllib.loads(text)
    out: list[Entry | str] = [f"{path}: {key}: unknown top-level key (only [[subscriber]] "
                              "tables belong here)" for key in data if key != "subscriber"]
    entries = data.get("subscriber", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        return [*out, f"{path}: 'subscriber' must be a list of [[subscriber]] tables"]
    lines = header_lines(text)
    for i, entry in enumerate(entries):
        line = lines[i] if i < len(lines) and len(lines) == len(entries) else 0
        where = f"{path}:{line or '?'}"
        sub, added, problems = check_entry(entry, where, topics)
        out.extend(problems)
        if sub is not None:
            out.append(Entry(sub, path, line, added))
    return out


def header_lines(text: str) -> list[int]:
    """1-based line numbers of the [[subscriber]] headers, in order."""
    return [n for n, line in enumerate(text.splitlines(), 1) if _HEADER.match(line)]


def validate_entry(entry: Mapping[str, Any], where: str,
                   topics: set[str]) -> tuple[Subscriber, date | None]:
    """One table (or CSV row) -> Subscriber; raise SubscriberError naming the first problem."""
    sub, added, problems = check_entry(entry, where, topics)
    if sub is None:
        raise SubscriberError(problems[0])
    return sub, added


def check_entry(entry: Mapping[str, Any], where: str,
                topics: set[str]) -> tuple[Subscriber | None, date | None, list[str]]:
    """One table -> (Subscriber or None, added, every problem of it, one line each)."""
    problems: list[str] = []

    def checked(key: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except SubscriberError as e:
            problems.append(f"{where}: {key}: {e.message}")
            return None

    for key in entry:
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(KEYS)}"
            problems.append(f"{where}: {key}: unknown key; {hint}")
    email = checked("email", _email, entry)
    name = entry.get("name", "")
    if not isinstance(name, str):
        problems.append(f"{where}: name: must be a string")
    tz = entry.get("timezone") or None
    if tz is not None:
        checked("timezone", check_timezone, str(tz))
    fmt = entry.get("format", "html")
    if fmt not in get_args(MailFormat):
        problems.append(f"{where}: format: {fmt!r} is not html or text")
    status = entry.get("status", "active")
    if status not in get_args(SubscriberStatus):
        problems.append(f"{where}: status: {status!r} is not active, paused or unsubscribed")
    sub_topics = checked("topics", _topics, entry.get("topics", []), topics)
    added = checked("added", _added, entry.get("added"))
    if problems:
        return None, None, problems
    return Subscriber(email=email, name=name, topics=sub_topics, timezone=tz, format=fmt,
                      status=status, source=where), added, []


def _email(entry: Mapping[str, Any]) -> str:
    if "email" not in entry:
        raise SubscriberError("required key is missing")
    raw = entry["email"]
    if not isinstance(raw, str):
        raise SubscriberError("must be a string")
    return normalise_email(raw)


def _topics(value: Any, known: set[str]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise SubscriberError("must be a list of strings")
    bad = [t for t in value if known and t not in known]
    if bad:
        raise SubscriberError(f"unknown topic {bad[0]!r}; known: {', '.join(sorted(known))}")
    return tuple(value)


def _added(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SubscriberError(f"{value!r} is not a date; write 2026-01-31")
