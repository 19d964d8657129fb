"""Edit subscriber files without disturbing what people wrote in them.

An edit touches only the lines of the entry it changes (how: see
``digest.subscribers.entries``); a BOM and CRLF line ends stay too.

Writes are atomic (temp file in the same folder, fsync, rename, file mode kept) and
refuse to overwrite a file that changed since it was read: an editor's save in
between is never lost. Digest processes (`digest serve` recording an unsubscribe
while someone runs `digest subscribers add`) edit one after another: every
read-check-write, from reading the file to renaming the new one into place, runs
inside the folder's lock (digest.subscribers.lock.folder_lock), and a writer waits for it up to
LOCK_WAIT_SECONDS.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Collection, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from digest.errors import SubscriberError
from digest.files import Snapshot, read_snapshot, write_atomic
from digest.models import MailFormat, SubscriberStatus
from digest.subscribers.entries import append_entry, matches, remove_entries, set_key
from digest.subscribers.lock import LOCK_WAIT_SECONDS, folder_lock
from digest.subscribers.roster import (
    DEFAULT_FILE,
    check_timezone,
    load,
    normalise_email,
    refuse_broken,
)

_LIST_NAME = re.compile(r"[\w][\w.-]*")


class FileChanged(SubscriberError):
    """The file changed between reading it and writing the edit; nothing was written."""


# -- files ------------------------------------------------------------------------

def snapshot(path: Path) -> Snapshot:
    try:
        return read_snapshot(path)
    except UnicodeDecodeError:
        raise SubscriberError(f"{path}: not UTF-8; save it as UTF-8 first") from None


def commit(snap: Snapshot, text: str) -> None:
    """Write ``text`` over the file ``snap`` was taken of, unless it changed since.

    Other digest processes wait on the folder lock (taken here, or already by the
    caller); the content check catches what the lock cannot: a text editor's save.
    """
    path = snap.path
    data = snap.encode(text)
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
        if isinstance(entries, list) and any(isinstance(e, dict) and matches(e, address)
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
