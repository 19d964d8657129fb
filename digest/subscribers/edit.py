"""Edit subscriber files without disturbing what people wrote in them.

An edit touches only the lines of the entry it changes: comments, blank lines,
key order, quoting and spacing everywhere else stay byte for byte (a BOM and CRLF
line ends too). tomlkit alone does not manage that for arrays of tables: a key
added to one [[subscriber]] lands below the next entry's leading comment, and
deleting an entry takes the following entry's comment with it. So edits are made
on the lines, values are written by tomlkit (its quoting and escaping), and every
result is parsed again and compared with the intended data before it is written.

Writes are atomic (temp file in the same folder, fsync, rename, file mode kept) and
refuse to overwrite a file that changed since it was read: an editor's save in
between is never lost. Digest processes (`digest serve` recording an unsubscribe
while someone runs `digest subscribers add`) edit one after another: every
read-check-write, from reading the file to renaming the new one into place, runs
inside the folder's lock (digest.subscribers.lock.folder_lock), and a writer waits for it up to
LOCK_WAIT_SECONDS.
"""

from __future__ import annotations

import copy
import functools
import re
import tomllib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import tomlkit

from digest.errors import SubscriberError
from digest.files import write_atomic
from digest.models import MailFormat, SubscriberStatus
from digest.subscribers.lock import LOCK_WAIT_SECONDS, folder_lock
from digest.subscribers.roster import (
    DEFAULT_FILE,
    check_timezone,
    header_lines,
    load,
    normalise_email,
    refuse_broken,
)

BOM = b"\xef\xbb\xbf"
_ANY_HEADER = re.compile(r"""\s*\[\[?\s*[\w."' -]+\s*\]\]?\s*(#.*)?$""")
_COMMENT = re.compile(r"\s*#")
_LIST_NAME = re.compile(r"[\w][\w.-]*")


class FileChanged(SubscriberError):
    """The file changed between reading it and writing the edit; nothing was written."""


# -- files ------------------------------------------------------------------------

@dataclass(frozen=True)
class Snapshot:
    """A file as read: the exact bytes, to compare with just before writing."""

    path: Path
    raw: bytes | None  # None: the file does not exist yet
    text: str  # decoded, BOM removed, line ends as in the file
    bom: bool

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"


def snapshot(path: Path) -> Snapshot:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Snapshot(path, None, "", False)
    bom = raw.startswith(BOM)
    try:
        text = raw[3 if bom else 0:].decode("utf-8")
    except UnicodeDecodeError:
        raise SubscriberError(f"{path}: not UTF-8; save it as UTF-8 first") from None
    return Snapshot(path, raw, text, bom)


def commit(snap: Snapshot, text: str) -> None:
    """Write ``text`` over the file ``snap`` was taken of, unless it changed since.

    Other digest processes wait on the folder lock (taken here, or already by the
    caller); the content check catches what the lock cannot: a text editor's save.
    """
    path = snap.path
    data = (BOM if snap.bom else b"") + text.encode("utf-8")
    with folder_lock(path.parent):
        try:
            current: bytes | None = path.read_bytes()
        except FileNotFoundError:
            current = None
        if current != snap.raw:
            raise FileChanged(f"{path} changed while it was being edited; nothing written",
                              hint="run the command again")
        _write_atomic(path, data, create=snap.raw is None)


def _write_atomic(path: Path, data: bytes, *, create: bool) -> None:
    try:
        write_atomic(path, data, exclusive=create)
    except FileExistsError:
        raise FileChanged(f"{path} appeared while it was being written; nothing written",
                          hint="run the command again") from None


def edit(path: Path, change: Callable[[str], str], *, attempts: int = 3,
         timeout: float = LOCK_WAIT_SECONDS) -> bool:
    """Apply ``change`` to the file's text and write it; False if nothing changed.

    Read, change and write all happen inside the folder lock, so two digest
    processes never edit the same old content. If the file changes underneath anyway
    (a text editor), the edit is made again on the new content (``attempts`` times
    in all): what the other writer saved is never overwritten.
    """
    with folder_lock(path.parent, timeout):
        for attempt in range(1, attempts + 1):
            snap = snapshot(path)
            new = change(snap.text)
            if new == snap.text:
                return False
            try:
                commit(snap, new)
                return True
            except FileChanged:
                if attempt == attempts:
                    raise
    return False  # pragma: no cover - the loop returns or raises


# -- the text of one file ----------------------------------------------------------

@dataclass(frozen=True)
class Block:
    """The lines of one [[subscriber]] entry (0-based, end exclusive)."""

    lead: int  # first line of the comment block directly above the header
    header: int
    body_end: int  # after the last key line (and comments stuck to it)
    end: int  # body_end plus the blank lines after it: what deleting removes


def _is_blank(line: str) -> bool:
    return not line.strip()


def _is_comment(line: str) -> bool:
    return bool(_COMMENT.match(line))


def blocks(lines: Sequence[str]) -> list[Block]:
    headers = [i for i, ln in enumerate(lines) if _ANY_HEADER.match(ln)]
    ours = set(n - 1 for n in header_lines("".join(lines)))
    out = []
    for h in headers:
        if h not in ours:
            continue
        nxt = next((j for j in headers if j > h), len(lines))
        next_lead = nxt
        while next_lead > h + 1 and _is_comment(lines[next_lead - 1]):
            next_lead -= 1
        body_end = h + 1
        for i in range(h + 1, next_lead):
            if not _is_blank(lines[i]):
                body_end = i + 1
        end = body_end
        while end < next_lead and _is_blank(lines[end]):
            end += 1
        lead = h
        while lead > 0 and _is_comment(lines[lead - 1]):
            lead -= 1
        out.append(Block(lead, h, body_end, end))
    return out


def _entries(text: str, path: Path) -> tuple[list[dict[str, Any]], list[Block], list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SubscriberError(f"{path}: not valid TOML: {e}", hint="fix it, then retry") from None
    entries = data.get("subscriber", [])
    lines = text.splitlines(keepends=True)
    found = blocks(lines)
    if not isinstance(entries, list) or len(found) != len(entries):
        raise SubscriberError(f"{path}: cannot edit safely: write each subscriber as a "
                              "[[subscriber]] table")
    return entries, found, lines


def _matches(entry: dict[str, Any], address: str) -> bool:
    return _matches_any(entry, {address})


def _matches_any(entry: dict[str, Any], addresses: Collection[str]) -> bool:
    try:
        return normalise_email(str(entry.get("email", ""))) in addresses
    except SubscriberError:
        return False


def _checked(path: Path, old: str, new: str, expect: Callable[[dict[str, Any]], None]) -> str:
    """``new`` if it parses to exactly the old data with ``expect`` applied."""
    wanted = copy.deepcopy(tomllib.loads(old))
    expect(wanted)
    try:
        got = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        got = None
    if got != wanted:
        raise SubscriberError(f"{path}: cannot edit this entry safely; please edit it by hand")
    return new


def _value_line(key: str, value: Any, newline: str, indent: str = "") -> str:
    return f"{indent}{key} = {tomlkit.item(value).as_string()}{newline}"


def _key_re(key: str) -> re.Pattern[str]:
    # key = "value"  # comment   (bare or quoted key; basic or literal string)
    return re.compile(rf"""^(\s*["']?{re.escape(key)}["']?\s*=\s*)"""
                      r"""("(?:[^"\\\r\n]|\\.)*"|'[^'\r\n]*')(.*)$""", re.DOTALL)


def set_key(text: str, path: Path, address: str | Collection[str], key: str,
            value: str) -> str:
    """Set a string key in every entry for ``address`` (one or several), touching only
    that line."""
    entries, found, lines = _entries(text, path)
    newline = "\r\n" if "\r\n" in text else "\n"
    wanted = {address} if isinstance(address, str) else set(address)
    hits = [i for i, e in enumerate(entries) if _matches_any(e, wanted) and e.get(key) != value]
    # Bottom up, so earlier line numbers stay valid while inserting.
    for i in reversed(hits):
        b = found[i]
        pattern = _key_re(key)
        at = next((n for n in range(b.header + 1, b.body_end) if pattern.match(lines[n])), None)
        if at is not None:
            m = pattern.match(lines[at])
            assert m is not None
            lines[at] = m.group(1) + tomlkit.item(value).as_string() + m.group(3)
        else:
            indent = re.match(r"\s*", lines[b.header + 1] if b.header + 1 < b.body_end else "")
            last = b.body_end - 1
            while last > b.header and _is_comment(lines[last]):
                last -= 1  # after the last key, before comments that close the entry
            if not lines[last].endswith(("\n", "\r")):
                lines[last] += newline
            lines.insert(last + 1, _value_line(key, value, newline,
                                               indent.group(0) if indent else ""))

    def expect(data: dict[str, Any]) -> None:
        for i in hits:
            data["subscriber"][i][key] = value

    return _checked(path, text, "".join(lines), expect)


def remove_entries(text: str, path: Path, address: str) -> str:
    """Delete every entry for ``address`` with its own comments; keep everything else."""
    entries, found, lines = _entries(text, path)
    hits = [i for i, e in enumerate(entries) if _matches(e, address)]
    for i in reversed(hits):
        b = found[i]
        start = b.lead
        if b.end == len(lines):  # the last entry: drop the blank line that led to it too
            while start > 0 and _is_blank(lines[start - 1]):
                start -= 1
        del lines[start:b.end]
    out = "".join(lines)
    if hits and not out.strip():
        # An empty file is valid TOML, but it reads as a mistake (a truncated save) to
        # people and to tools; say what it is and how to fill it again.
        newline = "\r\n" if "\r\n" in text else "\n"
        out = (f"# No subscribers left in this list. Add one with: digest subscribers add "
               f"EMAIL --list {path.stem}{newline}")

    def expect(data: dict[str, Any]) -> None:
        data["subscriber"] = [e for i, e in enumerate(data["subscriber"]) if i not in hits]
        if not data["subscriber"]:
            del data["subscriber"]

    return _checked(path, text, out, expect)


def append_entry(text: str, path: Path, table: dict[str, Any]) -> str:
    """Add one [[subscriber]] table at the end, after a blank line."""
    newline = "\r\n" if "\r\n" in text else "\n"
    out = text
    if out and not out.endswith("\n"):
        out += newline
    if out.strip() and not out.endswith(newline * 2):
        out += newline
    out += "[[subscriber]]" + newline
    out += "".join(_value_line(k, v, newline) for k, v in table.items())

    def expect(data: dict[str, Any]) -> None:
        data.setdefault("subscriber", []).append(table)

    return _checked(path, text, out, expect)


# -- what the CLI calls ------------------------------------------------------------

def list_path(folder: Path, list_name: str | None) -> Path:
    if not list_name:
        return folder / DEFAULT_FILE
    name = list_name.removesuffix(".toml")
    if not _LIST_NAME.fullmatch(name):
        raise SubscriberError(f"list name {list_name!r}: use letters, digits, '.', '-', '_'")
    return folder / f"{name}.toml"


def add(folder: Path, email: str, *, name: str = "", topics: Sequence[str] = (),
        timezone: str | None = None, list_name: str | None = None,
        today: date | None = None, format: MailFormat = "html") -> Path:
    """Append a subscriber to a list file (created if needed); refuse duplicates."""
    address = normalise_email(email)
    if timezone:
        check_timezone(timezone)
    # The duplicate check and the write are one step under the lock: ten concurrent
    # `add`s of one address make one entry.
    with folder_lock(folder):
        return _add_locked(folder, address, name=name, topics=topics, timezone=timezone,
                           list_name=list_name, today=today, format=format)


def _add_locked(folder: Path, address: str, *, name: str, topics: Sequence[str],
                timezone: str | None, list_name: str | None, today: date | None,
                format: MailFormat) -> Path:
    roster = load(folder) if folder.is_dir() else None
    if roster is not None:
        refuse_broken(roster)
    existing = roster.find(address) if roster else None
    if existing is not None:
        hint = (f"they unsubscribed: only 'digest subscribers resubscribe {address}' brings "
                "them back" if existing.status == "unsubscribed"
                else "use 'digest subscribers resume' to reactivate")
        raise SubscriberError(f"{address} is already subscribed ({existing.source})", hint=hint)
    table: dict[str, Any] = {"email": address}
    if name:
        table["name"] = name
    table["topics"] = list(topics)
    if timezone:
        table["timezone"] = timezone
    if format != "html":
        table["format"] = format
    table["status"] = "active"
    table["added"] = today or date.today()
    path = list_path(folder, list_name)
    edit(path, lambda text: append_entry(text, path, table))
    return path


def files_with(folder: Path, address: str) -> list[Path]:
    """The list files holding ``address`` (valid entries or not)."""
    out = []
    for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
        try:
            data = tomllib.loads(snapshot(path).text)
        except (tomllib.TOMLDecodeError, SubscriberError):
            continue
        entries = data.get("subscriber", [])
        if isinstance(entries, list) and any(isinstance(e, dict) and _matches(e, address)
                                             for e in entries):
            out.append(path)
    return out


def set_status(folder: Path, email: str, status: SubscriberStatus | None, *,
               timeout: float = LOCK_WAIT_SECONDS) -> list[Path]:
    """Set the status in every file listing ``email`` (``None`` removes the entries).

    Refuses (one line, nothing written) while any file of the folder is broken: the
    address may be in it, and half an edit is worse than none.
    """
    address = normalise_email(email)
    with folder_lock(folder, timeout):
        refuse_broken(load(folder))
        paths = files_with(folder, address)
        if not paths:
            raise SubscriberError(f"{address} is not in any file under {folder}")
        for path in paths:
            if status is None:
                edit(path, functools.partial(_remove, path=path, address=address))
            else:
                edit(path, functools.partial(_set, path=path, address=address, value=status))
    return paths


def set_statuses(path: Path, addresses: Collection[str], status: SubscriberStatus, *,
                 timeout: float = LOCK_WAIT_SECONDS) -> bool:
    """Set ``status`` for several addresses in one file, in one write."""
    return edit(path, lambda text: set_key(text, path, addresses, "status", status),
                timeout=timeout)


def _remove(text: str, *, path: Path, address: str) -> str:
    return remove_entries(text, path, address)


def _set(text: str, *, path: Path, address: str, value: str) -> str:
    return set_key(text, path, address, "status", value)
