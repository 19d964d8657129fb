"""Subscribers in and out of spreadsheets: CSV import, CSV and JSON export.

Import takes what spreadsheets and other mailing tools really write: a UTF-8 BOM
(Excel) or UTF-16, comma, semicolon (European Excel), tab or pipe separators,
quoted cells with separators and newlines inside, and headers in many spellings
("E-Mail Address", "First Name" + "Last Name", "Tags"). Each row is checked like
an entry of a subscriber file; a bad row is reported with its line and skipped.
Nobody who unsubscribed is brought back by an import.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.models import Subscriber
from digest.subscribers.edit import append_entry, edit
from digest.subscribers.lock import folder_lock
from digest.subscribers.roster import Roster, load, refuse_broken, validate_entry

# Column name (lower case, '_' and '-' read as spaces) -> field.
ALIASES: dict[str, str] = {
    **dict.fromkeys(("email", "e mail", "email address", "e mail address", "mail", "address",
                     "emailaddress", "email addr"), "email"),
    **dict.fromkeys(("name", "full name", "fullname", "display name", "contact name"), "name"),
    **dict.fromkeys(("first name", "firstname", "given name", "fname", "vorname"), "first"),
    **dict.fromkeys(("last name", "lastname", "surname", "family name", "lname", "nachname"),
                    "last"),
    **dict.fromkeys(("topics", "topic", "tags", "interests", "sections", "groups"), "topics"),
    **dict.fromkeys(("timezone", "time zone", "tz", "zone"), "timezone"),
    **dict.fromkeys(("format", "email format", "mail format", "email type"), "format"),
    **dict.fromkeys(("status", "state", "subscription status", "member status"), "status"),
    **dict.fromkeys(("added", "date added", "subscribed", "subscribed at", "created",
                     "created at", "signup date", "optin time", "confirm time"), "added"),
}  # fmt: skip
_STATUS = {
    **dict.fromkeys(("", "active", "subscribed", "yes", "true", "1", "confirmed"), "active"),
    **dict.fromkeys(("paused", "inactive", "on hold"), "paused"),
    **dict.fromkeys(("unsubscribed", "cleaned", "bounced", "no", "false", "0", "opted out",
                     "complained"), "unsubscribed"),
}  # fmt: skip
_FORMAT = {"": "html", "html": "html", "text": "text", "plain": "text", "txt": "text",
           "plain text": "text"}
_SEPARATORS = (",", ";", "\t", "|")


@dataclass(frozen=True)
class Row:
    line: int  # where the record starts in the CSV file
    email: str
    table: dict[str, Any]  # what goes into the subscriber file


@dataclass(frozen=True)
class ImportPlan:
    """What an import would do; ``apply`` does it."""

    source: Path
    target: Path
    rows: int
    new: tuple[Row, ...] = ()
    skipped: tuple[str, ...] = ()  # already subscribed, or unsubscribed: not an error
    problems: tuple[str, ...] = ()  # invalid rows
    ignored_columns: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # CSV header -> field

    def summary(self, *, dry_run: bool) -> str:
        verb = "would import" if dry_run else "imported"
        line = (f"{verb} {len(self.new)} of {self.rows} rows into {self.target}: "
                f"{len(self.skipped)} skipped, {len(self.problems)} invalid")
        return line + ("; nothing written (dry run)" if dry_run else "")


def read_text(path: Path) -> str:
    """Decode a spreadsheet export: BOMs first, then UTF-8, then Windows-1252."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SubscriberError(f"{path}: cannot read: {e.strerror}") from None
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Excel on Windows saves "CSV" in the ANSI code page; 1252 decodes any byte.
        return raw.decode("cp1252", errors="replace")


def sniff_separator(text: str) -> str:
    """The separator the header line uses most, counted outside quotes."""
    header = re.sub(r'"[^"]*"', "", text.split("\n", 1)[0])
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(_SEPARATORS, key=lambda s: counts[s])
    return best if counts[best] else ","


def _field(header: str) -> str | None:
    key = " ".join(re.sub(r"[_\-.]", " ", header.strip().lower()).split())
    return ALIASES.get(key)


def records(text: str, source: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """(start line, {field: cell}) per record; raises if there is no email column."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_separator(text))
    try:
        header = next(reader)
    except StopIteration:
        raise SubscriberError(f"{source}: empty file") from None
    fields = [_field(h) for h in header]
    if "email" not in fields:
        raise SubscriberError(f"{source}:1: no email column (header: {', '.join(header)})",
                              hint="name one column 'email'")
    line = reader.line_num + 1
    for cells in reader:
        start, line = line, reader.line_num + 1
        if not any(c.strip() for c in cells):
            continue  # blank lines at the end of a spreadsheet export
        row: dict[str, str] = {}
        for name, cell in zip(fields, cells, strict=False):
            if name and name not in row:
                row[name] = cell
        yield start, row


def mapping(text: str) -> tuple[dict[str, str], tuple[str, ...]]:
    """CSV header -> field, and the columns that are ignored."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_separator(text))
    header = next(reader, [])
    used = {h: f for h in header if (f := _field(h))}
    return used, tuple(h for h in header if h not in used and h.strip())


def _one_line(s: str) -> str:
    return " ".join(s.split())


def to_table(row: dict[str, str], where: str, topics: Sequence[str],
             today: date) -> tuple[Subscriber, dict[str, Any]]:
    """A CSV record -> (validated Subscriber, the table to write). Raises SubscriberError."""
    raw_name, raw_email = parseaddr(row.get("email", "").strip())
    email = raw_email or row.get("email", "").strip()
    name = _one_line(row.get("name", "")) or _one_line(
        f"{row.get('first', '')} {row.get('last', '')}") or _one_line(raw_name)
    status = _STATUS.get(row.get("status", "").strip().lower())
    if status is None:
        raise SubscriberError(f"{where}: status: {row['status']!r} is not active, paused "
                              "or unsubscribed")
    fmt = _FORMAT.get(row.get("format", "").strip().lower())
    if fmt is None:
        raise SubscriberError(f"{where}: format: {row['format']!r} is not html or text")
    known = {t.lower(): t for t in topics}
    wanted = [t.strip() for t in re.split(r"[,;|]", row.get("topics", "")) if t.strip()]
    table: dict[str, Any] = {"email": email}
    if name:
        table["name"] = name
    table["topics"] = [known.get(t.lower(), t) for t in wanted]
    if row.get("timezone", "").strip():
        table["timezone"] = row["timezone"].strip()
    if fmt != "html":
        table["format"] = fmt
    table["status"] = status
    added = row.get("added", "").strip()
    table["added"] = added[:10] if added else today.isoformat()
    sub, day = validate_entry(table, where, set(topics))
    table["email"] = sub.email
    table["added"] = day or today
    return sub, table


def plan_import(source: Path, target: Path, roster: Roster, suppressed: set[str],
                topics: Sequence[str] = (), today: date | None = None) -> ImportPlan:
    """Read and check a CSV file against the current subscribers; write nothing."""
    text = read_text(source)
    columns, ignored = mapping(text)
    today = today or date.today()
    new: list[Row] = []
    skipped: list[str] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    rows = 0
    for line, row in records(text, source):
        rows += 1
        where = f"{source}:{line}"
        try:
            sub, table = to_table(row, where, topics, today)
        except SubscriberError as e:
            problems.append(e.message)
            continue
        if sub.email in seen:
            problems.append(f"{where}: email: duplicate of line {seen[sub.email]} ({sub.email})")
            continue
        seen[sub.email] = line
        existing = roster.find(sub.email)
        if sub.email in suppressed:
            skipped.append(f"{where}: {sub.email} unsubscribed earlier; not imported "
                           f"(only 'digest subscribers resubscribe' brings them back)")
        elif existing is not None:
            skipped.append(f"{where}: {sub.email} is already subscribed ({existing.source})")
        else:
            new.append(Row(line, sub.email, table))
    return ImportPlan(source=source, target=target, rows=rows, new=tuple(new),
                      skipped=tuple(skipped), problems=tuple(problems), ignored_columns=ignored,
                      columns=columns)


def apply(plan: ImportPlan, folder: Path | None = None) -> ImportPlan:
    """Append every new row to the target file in one atomic write.

    With ``folder``, the rows are checked again under the folder lock, so an address
    someone added since the plan was made is skipped, not written twice. Returns the
    plan as carried out.
    """
    if not plan.new:
        return plan
    with folder_lock(folder or plan.target.parent):
        if folder is not None:
            now = load(folder)
            refuse_broken(now)
            late = [r for r in plan.new if now.find(r.email) is not None]
            plan = replace(plan, new=tuple(r for r in plan.new if r not in late),
                           skipped=plan.skipped + tuple(
                               f"{plan.source}:{r.line}: {r.email} was added meanwhile "
                               f"({_source(now, r.email)})" for r in late))
        if plan.new:
            new = plan.new

            def change(text: str) -> str:
                for row in new:
                    text = append_entry(text, plan.target, row.table)
                return text

            edit(plan.target, change)
    return plan


def _source(roster: Roster, email: str) -> str:
    found = roster.find(email)
    return found.source if found else "?"


# -- export -------------------------------------------------------------------------

EXPORT_FIELDS = ("email", "name", "topics", "timezone", "format", "status", "added", "lists",
                 "suppressed", "source")


def export_rows(roster: Roster, suppressed: set[str]) -> list[dict[str, Any]]:
    """One row per address (lists merged); a suppressed address shows as unsubscribed.

    ``source`` says where the row comes from: "files", or "database" for an address
    suppressed (CLI, one-click, --to) that is in no file: an export is the whole
    list of who must not be mailed too, so moving to another tool keeps them out.
    """
    out = []
    for s in roster.subscribers:
        entries = roster.entries_of(s.email)
        added = min((e.added for e in entries if e.added), default=None)
        blocked = s.email in suppressed
        out.append({
            "email": s.email, "name": s.name, "topics": list(s.topics),
            "timezone": s.timezone, "format": s.format,
            "status": "unsubscribed" if blocked else s.status,
            "added": added.isoformat() if added else None,
            "lists": sorted({e.path.stem for e in entries}), "suppressed": blocked,
            "source": "files",
        })
    listed = {s.email for s in roster.subscribers}
    for email in sorted(suppressed - listed):
        out.append({"email": email, "name": "", "topics": [], "timezone": None,
                    "format": "html", "status": "unsubscribed", "added": None, "lists": [],
                    "suppressed": True, "source": "database"})
    return out


def to_csv(rows: Sequence[dict[str, Any]]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)  # RFC 4180: CRLF, quotes only where needed
    writer.writerow(EXPORT_FIELDS)
    for r in rows:
        writer.writerow([";".join(v) if isinstance(v := r[k], list)
                         else ("true" if v else "false") if isinstance(v, bool)
                         else "" if v is None else v for k in EXPORT_FIELDS])
    return buf.getvalue()


def to_json(rows: Sequence[dict[str, Any]]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False) + "\n"
