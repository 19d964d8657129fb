"""The last good version of each subscriber file, kept beside the database.

A subscriber file with a TOML syntax error (a stray quote saved at 06:59) must not
silently take its readers out of the morning's digest. Every time a file parses,
its bytes are kept here (``var/subscribers-last-good/<name>``, with a small JSON
note of when and how many subscribers); a send that finds the file broken reads
this copy instead and says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from digest.errors import DigestError
from digest.files import write_atomic

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LastGood:
    raw: bytes
    saved: datetime  # when digest last read the file cleanly with these bytes
    count: int  # valid subscriber entries in it


class LastGoodCopies:
    """One copy per subscriber file, keyed by its absolute path."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _paths(self, path: Path) -> tuple[Path, Path]:
        # The file name keeps the copy readable; the hash keeps two folders of the
        # same name (another config beside this one) from sharing a copy.
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        base = self.folder / f"{path.stem}-{key}"
        return base.with_suffix(".toml"), base.with_suffix(".json")

    def get(self, path: Path) -> LastGood | None:
        copy, note = self._paths(path)
        try:
            meta = json.loads(note.read_text("utf-8"))
            raw = copy.read_bytes()
            if hashlib.sha256(raw).hexdigest() != meta["sha256"]:
                return None  # a copy torn between its two files: not good
            return LastGood(raw, datetime.fromisoformat(meta["saved"]), int(meta["count"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, path: Path, raw: bytes, count: int, now: datetime | None = None) -> None:
        """Remember ``raw`` as the file's last good version (written only when it changed)."""
        copy, note = self._paths(path)
        digest = hashlib.sha256(raw).hexdigest()
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if json.loads(note.read_text("utf-8"))["sha256"] == digest:
                return
        meta = {"path": str(path.resolve()), "saved": (now or datetime.now(UTC)).isoformat(
            timespec="seconds"), "count": count, "sha256": digest}
        try:
            # Copy first, note second: a crash between them leaves a note whose hash does
            # not match the copy, which get() refuses.
            write_atomic(copy, raw)
            write_atomic(note, json.dumps(meta, indent=1).encode())
        except (DigestError, OSError) as e:  # keeping a copy must never stop a read
            log.warning("could not keep the last good version of %s: %s", path, e)


def copies_for(db_path: Path) -> LastGoodCopies:
    return LastGoodCopies(db_path.parent / "subscribers-last-good")
