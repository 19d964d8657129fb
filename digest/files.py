"""Writing output files: atomically, so a crash never leaves half a file."""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from digest.errors import DigestError


def write_atomic(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Temp file in the same folder + fsync + rename: a crash never leaves half a file.

    The file keeps the mode it had (a new one gets the umask's). ``exclusive``:
    the file must not exist yet; FileExistsError if another writer created it
    meanwhile (nothing is written then).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise DigestError(f"{path.parent}: cannot write here: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes 0600 files; keep the mode the file had (or a normal one).
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        if exclusive:
            try:
                os.link(tmp, path)  # fails if someone created the file meanwhile
            except FileExistsError:
                raise
            except OSError:
                os.replace(tmp, path)  # a filesystem without hard links
        else:
            os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Snapshot:
    """A text file as read: the exact bytes, to compare with just before writing, so an
    edit never overwrites what a text editor saved meanwhile."""

    path: Path
    raw: bytes | None  # None: the file does not exist yet
    text: str  # decoded, BOM removed, line ends as in the file
    bom: bool

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"

    def encode(self, text: str) -> bytes:
        """``text`` as the file would hold it: UTF-8, with the BOM it had."""
        return (BOM if self.bom else b"") + text.encode("utf-8")


def read_snapshot(path: Path) -> Snapshot:
    """The file as it is now; a missing file is an empty snapshot (raw None).

    Raises UnicodeDecodeError (not UTF-8) and OSError (unreadable): each caller says
    so in its own words."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Snapshot(path, None, "", False)
    bom = raw.startswith(BOM)
    return Snapshot(path, raw, raw[3 if bom else 0:].decode("utf-8"), bom)


def toml_edit_is_exact(old: dict[str, Any], new: str,
                       expect: Callable[[dict[str, Any]], None]) -> bool:
    """Whether ``new`` (TOML text) reads as exactly ``old`` with ``expect`` applied: an
    edit made on the text, to keep its comments, changed what it meant to and nothing
    else."""
    wanted = copy.deepcopy(old)
    expect(wanted)
    try:
        return tomllib.loads(new) == wanted
    except tomllib.TOMLDecodeError:
        return False
