"""The text of one subscriber file, edited line by line: find each [[subscriber]]
entry's lines, set a key in it, remove an entry or append one.

An edit touches only the lines of the entry it changes: comments, blank lines,
key order, quoting and spacing everywhere else stay byte for byte. tomlkit alone
does not manage that for arrays of tables: a key added to one [[subscriber]]
lands below the next entry's leading comment, and deleting an entry takes the
following entry's comment with it. So edits are made on the lines, values are
written by tomlkit (its quoting and escaping), and every result is parsed again
and compared with the intended data before it is returned.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomlkit

from digest.errors import SubscriberError
from digest.files import toml_edit_is_exact
from digest.subscribers.roster import header_lines, normalise_email

_ANY_HEADER = re.compile(r"""\s*\[\[?\s*[\w."' -]+\s*\]\]?\s*(#.*)?$""")
_COMMENT = re.compile(r"\s*#")


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


def matches(entry: dict[str, Any], address: str) -> bool:
    """Whether the entry is for ``address`` (normalised); a malformed one matches nothing."""
    return _matches_any(entry, {address})


def _matches_any(entry: dict[str, Any], addresses: Collection[str]) -> bool:
    try:
        return normalise_email(str(entry.get("email", ""))) in addresses
    except SubscriberError:
        return False


def _checked(path: Path, old: str, new: str, expect: Callable[[dict[str, Any]], None]) -> str:
    """``new`` if it parses to exactly the old data with ``expect`` applied."""
    if not toml_edit_is_exact(tomllib.loads(old), new, expect):
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
    hits = [i for i, e in enumerate(entries) if matches(e, address)]
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
        if not hits:  # nothing removed; a file without any entry has no "subscriber" key
            return
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
