"""Read, validate and edit the subscriber files under subscribers/.

Files are ``subscribers/*.toml``, each a list of ``[[subscriber]]`` tables that
people edit by hand and keep in git. Reading is strict about each entry but
never lets one bad entry stop the others; editing goes through tomlkit so
comments and order survive, and writes are atomic.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tomlkit
from email_validator import EmailNotValidError, validate_email

from digest.errors import SubscriberError
from digest.models import MailFormat, Subscriber, SubscriberStatus

log = logging.getLogger(__name__)

KEYS = {"email", "name", "topics", "timezone", "format", "status", "added"}
DEFAULT_FILE = "subscribers.toml"


@dataclass(frozen=True)
class Roster:
    """Everyone in the subscriber files, de-duplicated, plus every problem found."""

    subscribers: tuple[Subscriber, ...]
    problems: tuple[str, ...] = field(default_factory=tuple)

    def active(self, suppressed: set[str] | None = None) -> tuple[Subscriber, ...]:
        blocked = suppressed or set()
        return tuple(s for s in self.subscribers
                     if s.status == "active" and s.email.lower() not in blocked)

    def find(self, email: str) -> Subscriber | None:
        key = normalise_email(email)
        return next((s for s in self.subscribers if s.email == key), None)


def normalise_email(address: str) -> str:
    """Syntax check (no DNS) and normalise to lower case, IDN domains in Unicode form.

    Local parts are case-sensitive in theory and never in practice; lower-casing
    them is what keeps "Ada@x" and "ada@x" from getting two digests.
    """
    try:
        info = validate_email(address.strip(), check_deliverability=False)
    except EmailNotValidError as e:
        raise SubscriberError(f"{address!r} is not a valid email address: {e}") from None
    return f"{info.local_part}@{info.domain}".lower()


def load(folder: Path, topics: Sequence[str] = ()) -> Roster:
    """Read every subscribers/*.toml; bad entries become problems, not exceptions."""
    if not folder.is_dir():
        raise SubscriberError(f"{folder}: subscribers folder not found",
                              hint="create it or set paths.subscribers in config.toml")
    seen: dict[str, Subscriber] = {}
    problems: list[str] = []
    for path in sorted(folder.glob("*.toml")):
        for sub_or_problem in _read_file(path, set(topics)):
            if isinstance(sub_or_problem, str):
                problems.append(sub_or_problem)
                continue
            first = seen.get(sub_or_problem.email)
            if first is None:
                seen[sub_or_problem.email] = sub_or_problem
            elif first.source.split(":")[0] == sub_or_problem.source.split(":")[0]:
                problems.append(f"{sub_or_problem.source}: duplicate of {first.source} "
                                f"({sub_or_problem.email}); remove one")
            # On two different lists: one digest, the first entry wins. Not a problem.
    return Roster(tuple(seen.values()), tuple(problems))


def _read_file(path: Path, topics: set[str]) -> list[Subscriber | str]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        return [f"{path}: not valid TOML: {e}"]
    entries = data.get("subscriber", [])
    if not isinstance(entries, list):
        return [f"{path}: 'subscriber' must be a list of [[subscriber]] tables"]
    lines = _table_lines(text)
    out: list[Subscriber | str] = []
    for i, entry in enumerate(entries):
        where = f"{path}:{lines[i] if i < len(lines) else '?'}"
        try:
            out.append(_subscriber(entry, where, topics))
        except SubscriberError as e:
            out.append(str(e))
    return out


def _table_lines(text: str) -> list[int]:
    return [n for n, line in enumerate(text.splitlines(), 1)
            if re.match(r"\s*\[\[\s*subscriber\s*\]\]", line)]


def _subscriber(entry: dict[str, Any], where: str, topics: set[str]) -> Subscriber:
    unknown = set(entry) - KEYS
    if unknown:
        log.warning("%s: unknown key %s (ignored; check the spelling)", where, sorted(unknown)[0])
    if "email" not in entry:
        raise SubscriberError(f"{where}: email: required key is missing")
    try:
        email = normalise_email(str(entry["email"]))
    except SubscriberError as e:
        raise SubscriberError(f"{where}: email: {e.message}") from None
    tz = entry.get("timezone") or None
    if tz is not None:
        try:
            ZoneInfo(str(tz))
        except (ZoneInfoNotFoundError, ValueError):
            raise SubscriberError(f"{where}: timezone: unknown time zone {tz!r}; "
                                  "use an IANA name such as 'Europe/Berlin'") from None
    fmt = entry.get("format", "html")
    if fmt not in get_args(MailFormat):
        raise SubscriberError(f"{where}: format: {fmt!r} is not html or text")
    status = entry.get("status", "active")
    if status not in get_args(SubscriberStatus):
        raise SubscriberError(f"{where}: status: {status!r} is not active, paused or unsubscribed")
    sub_topics = entry.get("topics", [])
    if not isinstance(sub_topics, list) or not all(isinstance(t, str) for t in sub_topics):
        raise SubscriberError(f"{where}: topics: must be a list of strings")
    bad = [t for t in sub_topics if topics and t not in topics]
    if bad:
        raise SubscriberError(f"{where}: topics: unknown topic {bad[0]!r}; "
                              f"known: {', '.join(sorted(topics))}")
    return Subscriber(email=email, name=str(entry.get("name", "")), topics=tuple(sub_topics),
                      timezone=tz, format=fmt, status=status, source=where)


# -- editing -----------------------------------------------------------------

def add(folder: Path, email: str, *, name: str = "", topics: Sequence[str] = (),
        timezone: str | None = None, list_name: str | None = None,
        today: date | None = None) -> Path:
    """Append a subscriber to a list file (created if needed); refuse duplicates."""
    address = normalise_email(email)
    roster = load(folder) if folder.is_dir() else Roster(())
    existing = roster.find(address)
    if existing is not None:
        raise SubscriberError(f"{address} is already subscribed ({existing.source})",
                              hint="use 'digest subscribers resume' to reactivate")
    if timezone:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SubscriberError(f"unknown time zone {timezone!r}") from None
    path = folder / (f"{list_name}.toml" if list_name else DEFAULT_FILE)
    doc = _read_doc(path)
    table = tomlkit.table()
    table["email"] = address
    if name:
        table["name"] = name
    table["topics"] = list(topics)
    if timezone:
        table["timezone"] = timezone
    table["status"] = "active"
    table["added"] = (today or date.today()).isoformat()
    aot = doc.get("subscriber")
    if aot is None:
        aot = tomlkit.aot()
        doc["subscriber"] = aot
    aot.append(table)
    _write_atomic(path, doc)
    return path


def set_status(folder: Path, email: str, status: SubscriberStatus | None) -> Path:
    """Change a subscriber's status in place; ``None`` removes the entry."""
    address = normalise_email(email)
    for path in sorted(folder.glob("*.toml")):
        doc = _read_doc(path)
        aot = doc.get("subscriber") or []
        for i, table in enumerate(aot):
            try:
                match = normalise_email(str(table.get("email", ""))) == address
            except SubscriberError:
                continue
            if not match:
                continue
            if status is None:
                del aot[i]
            else:
                table["status"] = status
            _write_atomic(path, doc)
            return path
    raise SubscriberError(f"{address} is not in any file under {folder}")


def _read_doc(path: Path) -> tomlkit.TOMLDocument:
    if not path.exists():
        return tomlkit.document()
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8-sig"))
    except tomlkit.exceptions.ParseError as e:
        raise SubscriberError(f"{path}: not valid TOML: {e}") from None


def _write_atomic(path: Path, doc: tomlkit.TOMLDocument) -> None:
    """Temp file in the same folder + rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(tomlkit.dumps(doc))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
