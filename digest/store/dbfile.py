"""The database file itself: created private, kept private, and a damaged, locked or
unopenable one told as one line naming the file instead of a SQLAlchemy traceback.

The file holds subscriber addresses, the delivery journal and (without DIGEST_SECRET)
the secret that signs unsubscribe links, so it is 0600 whatever the umask. SQLite
creates its -wal, -shm and -journal files with the database file's own mode, so a
private database file keeps those private too.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from pathlib import Path

from digest.errors import StoreBusy, StoreError

log = logging.getLogger(__name__)

PRIVATE = 0o600
SIDE_FILES = ("-wal", "-shm", "-journal")

# SQLite's primary result codes (extended codes carry them in the low byte).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 26
_RESTORE = "restore it from a backup, or move it aside and digest starts a new one"


def prepare(path: Path) -> None:
    """Before SQLite opens ``path``: refuse a folder, create a new file 0600, and
    tighten an existing file (and side files a crash left) that others can read."""
    if path.is_dir():
        raise StoreError(f"{path}: is a folder, not a database file",
                         hint="point storage.path at a file, or move the folder aside")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except FileExistsError:
        pass
    except OSError as e:
        raise StoreError(f"{path}: cannot create the database: {e.strerror}",
                         hint="check the folder's owner and permissions") from None
    else:
        # An empty file is a new database to SQLite. fchmod: the umask may have
        # taken bits off the mode os.open was given.
        try:
            os.fchmod(fd, PRIVATE)
        finally:
            os.close(fd)
    for p in (path, *(path.with_name(path.name + s) for s in SIDE_FILES)):
        _tighten(p)


def _tighten(path: Path) -> None:
    """Tighten rather than only warn: nothing but digest's own processes, which run as
    the file's owner, has a reason to read the file, and a warning on every command
    would be ignored while the addresses and the signing secret stay readable."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # not there (or not ours to look at): SQLite will say what is wrong
    if not mode & 0o077:
        return
    tight = mode & 0o700
    try:
        os.chmod(path, tight)
    except OSError as e:
        log.warning("%s: others can read it (mode %04o) and it cannot be tightened: %s; "
                    "chmod 600 it, it holds subscriber data", path, mode, e.strerror)
        return
    log.info("%s: mode %04o tightened to %04o (it holds subscriber data and the "
             "signing secret)", path, mode, tight)


def unusable(path: Path, error: BaseException) -> StoreError | None:
    """The one-line StoreError for a database SQLite cannot use, or None when ``error``
    is something else (a constraint, a bug) and should stay what it is."""
    orig = getattr(error, "orig", None) or error  # SQLAlchemy wraps the sqlite3 error
    if not isinstance(orig, sqlite3.Error):
        return None
    code = getattr(orig, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary in (_NOTADB, _CORRUPT):
        return StoreError(f"{path}: the database is damaged: {orig}", hint=_RESTORE)
    if primary == _CANTOPEN:
        return StoreError(f"{path}: cannot open the database: {orig}",
                          hint=f"check its owner and permissions; or {_RESTORE}")
    if primary in (_BUSY, _LOCKED):
        # Not damage: another digest command holds a write lock past the busy timeout.
        return StoreBusy(f"{path}: the database is locked by another process: {orig}",
                         hint="try again when the other digest command has finished")
    if primary == _READONLY:
        return StoreError(f"{path}: the database cannot be written: {orig}",
                          hint="check the owner and permissions of the file and its folder")
    if primary == _FULL:
        return StoreError(f"{path}: the disk is full: {orig}", hint="free some space")
    if primary == _IOERR:
        return StoreError(f"{path}: the database cannot be read: {orig}",
                          hint=f"check the disk; or {_RESTORE}")
    return None


__all__ = ["PRIVATE", "SIDE_FILES", "prepare", "unusable"]
