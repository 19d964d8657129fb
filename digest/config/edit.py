"""Add and remove [[feeds]] entries in config.toml without disturbing anything else.

config.toml is written by people: its comments explain the options, and its layout
is theirs. tomlkit alone does not keep that for an array of tables in the middle of
a file: it appends a new [[feeds]] after the comment that introduces the next
section ("# Topics: ...") and deletes that comment with the entry above it. So the
edit is made on the lines, as in ``digest.subscribers.entries``: a new entry goes
right after the last key of the last [[feeds]] entry, a removed one takes only its
own header, keys and the blank lines that separated it; tomlkit writes each value
(its quoting and escaping). The result is parsed again and must equal the old data
with exactly that change, or nothing is written.

Writes are atomic (digest.files.write_atomic) and refuse to replace a file that
changed since it was read; two digest processes editing one config take turns on
an advisory lock of its folder.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import os
import re
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError

from digest.config.sections import ConfigModel
from digest.errors import BusyError, ConfigError
from digest.files import Snapshot, read_snapshot, toml_edit_is_exact, write_atomic

LOCK_WAIT_SECONDS = 10.0
# The order keys are written in, as the shipped config.toml lists them.
KEY_ORDER = ("url", "name", "site", "weight", "topics")

_FEEDS_HEADER = re.compile(r"""\s*\[\[\s*(?:feeds|"feeds"|'feeds')\s*\]\]\s*(?:#.*)?$""")
_ANY_HEADER = re.compile(r"""\s*\[\[?\s*[^\[\]#=]+?\s*\]\]?\s*(?:#.*)?$""")
_COMMENT = re.compile(r"\s*#")
_LINE = re.compile(r"[^\n]*\n|[^\n]+$")
_KEY_INDENT = re.compile(r"(\s*)[\w\"'-]")


@dataclass(frozen=True)
class Block:
    """The lines of one [[feeds]] entry (0-based, end exclusive)."""

    header: int
    body_end: int  # after its last key (and comments among or after its keys)
    end: int  # body_end plus the blank lines after it


def snapshot(path: Path) -> Snapshot:
    try:
        snap = read_snapshot(path)
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8", hint="save it as UTF-8 first") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if snap.raw is None:
        raise ConfigError(f"{path}: config file not found",
                          hint="pass --config PATH, or run digest from the folder holding "
                               "config.toml")
    return snap


# -- the edits, on text ------------------------------------------------------------

def with_feeds_added(text: str, path: Path, entries: Sequence[Mapping[str, Any]]) -> str:
    """``text`` with new [[feeds]] entries after the last one (or at the end)."""
    data, found, lines = _feeds(text, path)
    if not entries:
        return text
    newline = "\r\n" if "\r\n" in text else "\n"
    for entry in entries:
        _validate(entry, path)
    if found:
        last = found[-1]
        at = last.body_end
        indent = _indent(lines[last.header + 1:last.body_end])
        if at and not lines[at - 1].endswith(("\n", "\r")):
            lines[at - 1] += newline
    else:
        at, indent = len(lines), ""
        if lines and not lines[-1].endswith(("\n", "\r")):
            lines[-1] += newline
    new: list[str] = []
    for entry in entries:
        if at or new:  # a blank line between entries, as people write them
            new.append(newline)
        new += _entry_lines(entry, newline, indent)
    lines[at:at] = new

    def expect(d: dict[str, Any]) -> None:
        d.setdefault("feeds", []).extend(copy.deepcopy(dict(e)) for e in entries)

    return _checked(path, data, "".join(lines), expect)


def with_feed_removed(text: str, path: Path, index: int) -> str:
    """``text`` without the index-th [[feeds]] entry; every comment stays."""
    data, found, lines = _feeds(text, path)
    b = found[index]
    if b.header > 0 and not lines[b.header - 1].strip():
        # The blank lines above it go with it (the ones below stay): removing what
        # `add` appended gives back the file as it was, byte for byte.
        start = b.header
        while start > 0 and not lines[start - 1].strip():
            start -= 1
        del lines[start:b.body_end]
    else:
        # Comments right above stay, and so does the blank line under the entry: a
        # comment left behind is never glued to the section that follows.
        del lines[b.header:b.body_end]

    def expect(d: dict[str, Any]) -> None:
        del d["feeds"][index]
        if not d["feeds"]:
            del d["feeds"]

    return _checked(path, data, "".join(lines), expect)


def feed_entries(text: str, path: Path) -> list[dict[str, Any]]:
    """The [[feeds]] tables as written (before defaults), in file order."""
    return _feeds(text, path)[0].get("feeds", [])


def header_lines(text: str) -> list[int]:
    """1-based line numbers of the [[feeds]] headers, in order (for messages)."""
    return [b.header + 1 for b in _blocks(_lines(text))]


def _feeds(text: str, path: Path) -> tuple[dict[str, Any], list[Block], list[str]]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}", hint="fix it, then retry") from None
    feeds = data.get("feeds", [])
    lines = _lines(text)
    found = _blocks(lines)
    if not isinstance(feeds, list) or len(found) != len(feeds):
        raise ConfigError(f"{path}: cannot edit the feeds safely",
                          hint="write each feed as its own [[feeds]] table, as config.toml "
                               "ships them, or edit the file by hand")
    return data, found, lines


def _lines(text: str) -> list[str]:
    """The lines of a TOML text, each with its end. Only LF (or CRLF) ends a TOML line:
    str.splitlines would also split at U+0085 or U+2028 inside a string."""
    return _LINE.findall(text)


def _blocks(lines: Sequence[str]) -> list[Block]:
    headers = [i for i, ln in enumerate(lines) if _ANY_HEADER.match(ln)]
    out = []
    for k, h in enumerate(headers):
        if not _FEEDS_HEADER.match(lines[h]):
            continue
        nxt = headers[k + 1] if k + 1 < len(headers) else None
        lead = _lead(lines, h, nxt)
        body_end = h + 1
        for i in range(h + 1, lead):
            if lines[i].strip():
                body_end = i + 1
        end = body_end
        while end < lead and not lines[end].strip():
            end += 1
        out.append(Block(h, body_end, end))
    return out


def _lead(lines: Sequence[str], h: int, nxt: int | None) -> int:
    """Where what follows the entry at ``h`` begins: comments right above the next
    header introduce it; at the end of the file, a comment block after a blank line
    closes the file rather than the entry."""
    if nxt is not None:
        lead = nxt
        while lead > h + 1 and _COMMENT.match(lines[lead - 1]):
            lead -= 1
        return lead
    i = len(lines)
    while i > h + 1 and not lines[i - 1].strip():
        i -= 1
    c = i
    while c > h + 1 and _COMMENT.match(lines[c - 1]):
        c -= 1
    return c if c < i and not lines[c - 1].strip() else len(lines)


def _indent(body: Sequence[str]) -> str:
    for line in body:
        if line.strip() and not _COMMENT.match(line):
            m = _KEY_INDENT.match(line)
            return m.group(1) if m else ""
    return ""


def _entry_lines(entry: Mapping[str, Any], newline: str, indent: str) -> list[str]:
    keys = [k for k in KEY_ORDER if k in entry] + [k for k in entry if k not in KEY_ORDER]
    return [f"[[feeds]]{newline}"] + [
        f"{indent}{key} = {tomlkit.item(entry[key]).as_string()}{newline}" for key in keys]


def _validate(entry: Mapping[str, Any], path: Path) -> None:
    from digest.config.sections import FeedConfig

    try:
        FeedConfig.model_validate(dict(entry))
    except ValidationError as e:
        err = e.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "feeds"
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{path}: new feed {key}: {msg}") from None


def _checked(path: Path, old: dict[str, Any], new: str,
             expect: Callable[[dict[str, Any]], None]) -> str:
    """``new`` if it parses to exactly the old data with ``expect`` applied, and validates."""
    if not toml_edit_is_exact(old, new, expect):
        raise ConfigError(f"{path}: cannot edit the feeds safely",
                          hint="edit the [[feeds]] entries by hand")
    try:
        ConfigModel.model_validate(tomllib.loads(new))
    except ValidationError as e:
        raise ConfigError(f"{path}: the edit would not validate: {e.errors()[0]['msg']}") \
            from None
    return new


# -- the file ----------------------------------------------------------------------

def edit(path: Path, change: Callable[[str], str], *,
         timeout: float = LOCK_WAIT_SECONDS) -> bool:
    """Apply ``change`` to config.toml's text and write it atomically; False if unchanged.

    Read, change and write happen under the folder's lock; a file that changed anyway
    (a text editor's save) is never overwritten: nothing is written and the error
    says to run the command again.
    """
    with folder_lock(path.parent, timeout):
        snap = snapshot(path)
        new = change(snap.text)
        if new == snap.text:
            return False
        data = snap.encode(new)
        if path.read_bytes() != snap.raw:
            raise ConfigError(f"{path} changed while it was being edited; nothing written",
                              hint="run the command again")
        write_atomic(path, data)
    return True


@contextlib.contextmanager
def folder_lock(folder: Path, timeout: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """An exclusive flock on the folder (the file itself is replaced by rename, so a
    lock on it would be on an inode about to go away). Each call opens the folder
    anew, so threads of one process exclude each other as processes do."""
    deadline = time.monotonic() + timeout
    fd = os.open(folder, os.O_RDONLY)
    try:
        wait = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise BusyError(f"{folder}: another digest command is editing "
                                    "config.toml; nothing written",
                                    hint="try again shortly") from None
                time.sleep(wait)  # polling: flock has no timeout of its own
                wait = min(wait * 2, 0.05)
        yield
    finally:
        os.close(fd)
