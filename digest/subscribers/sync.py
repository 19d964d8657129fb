"""Bring the subscriber files in line with the suppression list in the database.

An unsubscribe is recorded in the database first (that is what stops the mail) and
then written into the subscriber's file. The file write can fail or wait: the lock
is busy, the file is broken, someone's editor saved over it. Nothing is queued
separately: the database row itself is the queue. Any address that is suppressed
but still active or paused in a file is *drift*, found by comparing the two, and
``catch_up`` writes it into the file. It runs after every unsubscribe, at the start
of `digest send` and `digest run` (and so each run of the daemon), and on
`digest subscribers check --fix`; `digest subscribers check` reports what is left.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import Config
from digest.errors import DigestError
from digest.store.facade import Store
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs
from digest.subscribers.last_good import copies_for
from digest.subscribers.lock import LOCK_WAIT_SECONDS, folder_lock

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Drift:
    """A suppressed address that a file still lists as active or paused."""

    email: str
    reason: str
    when: datetime
    path: Path
    line: int
    status: str

    def message(self) -> str:
        return (f"{self.email}: unsubscribed on {self.when:%Y-%m-%d} ({self.reason}, database) "
                f"but {self.status} in {subs.display(self.path)}:{self.line or '?'} "
                "— run `digest subscribers check --fix`")

    def fixed(self) -> str:
        return (f"{self.email}: status set to unsubscribed in "
                f"{subs.display(self.path)}:{self.line or '?'}")


@dataclass(frozen=True)
class CatchUp:
    fixed: tuple[Drift, ...] = ()
    failed: tuple[str, ...] = ()  # one line per file that could not be written
    roster: subs.Roster | None = None  # the files as read under the lock, before fixing


def load(config: Config) -> subs.Roster:
    # No topic check here: an entry with a topic removed from config.toml is still
    # someone whose unsubscribe must reach the file.
    return subs.load(config.subscribers_dir, keep=copies_for(config.db_path))


def drift(roster: subs.Roster, store: Store) -> list[Drift]:
    blocked = store.suppressed()
    out = []
    for e in roster.entries:
        s = e.subscriber
        if e.fallback or s.email not in blocked or s.status == "unsubscribed":
            continue
        found = store.suppression(s.email)
        if found is not None:
            out.append(Drift(s.email, found[0], found[1], e.path, e.line, s.status))
    return out


def catch_up(config: Config, store: Store, *, timeout: float = LOCK_WAIT_SECONDS) -> CatchUp:
    """Write every suppression that has not reached its file yet (under the folder lock).

    Raises LockBusy if the lock stays taken for ``timeout`` seconds; a file that cannot
    be edited is reported in ``failed`` and the others are still fixed.
    """
    folder = config.subscribers_dir
    if not folder.is_dir():
        return CatchUp()
    with folder_lock(folder, timeout):
        roster = load(config)
        found = drift(roster, store)
        by_file: dict[Path, list[Drift]] = defaultdict(list)
        for d in found:
            by_file[d.path].append(d)
        fixed: list[Drift] = []
        failed: list[str] = []
        for path, items in by_file.items():
            try:
                edits.set_statuses(path, {d.email for d in items}, "unsubscribed",
                                   timeout=timeout)
            except DigestError as e:
                failed.append(f"{subs.display(path)}: {e}")
                continue
            fixed.extend(items)
    for d in fixed:
        log.info("unsubscribe written to the file: %s", d.fixed())
    for line in failed:
        log.warning("suppressions not yet written to the file: %s", line)
    return CatchUp(tuple(fixed), tuple(failed), roster)


def catch_up_before_sending(config: Config, store: Store, *, timeout: float = 2.0) -> None:
    """catch_up for `send` and `run`: never stops the send (the database already does
    the suppressing); a busy lock or a broken file only postpones the file write."""
    try:
        catch_up(config, store, timeout=timeout)
    except DigestError as e:
        log.warning("unsubscribes not yet written to the subscriber files: %s", e)
