"""Subscriber operations that touch both the files and the database.

The suppression list in the database is the authority on who must not be mailed:
an unsubscribe is recorded there first (at once, one row), then written into the
subscriber's file so the files people read say the same. If the file cannot be
written (the lock stays busy, the file is broken or read-only), the suppression
still holds and the write is made later (digest.subscribers.sync).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest.config import Config
from digest.errors import DigestError, SubscriberError
from digest.store.facade import Store
from digest.subscribers import edit as edits
from digest.subscribers import roster as subs
from digest.subscribers import sync
from digest.subscribers.lock import LOCK_WAIT_SECONDS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unsubscribed:
    email: str
    already: bool  # it was suppressed before this call: a replay
    files: tuple[Path, ...] = ()  # files whose status now says unsubscribed
    file_error: str | None = None  # why the files could not be updated, if they could not


def unsubscribe(config: Config, store: Store, email: str, *, reason: str,
                now: datetime | None = None,
                timeout: float = LOCK_WAIT_SECONDS) -> Unsubscribed:
    """Suppress ``email`` now and mark it unsubscribed in every file. Idempotent.

    The file write is a catch-up of every suppression not yet in the files, so one
    that failed earlier (the lock was busy for ``timeout`` seconds) is made now.
    """
    address = subs.normalise_email(email)
    already = store.suppression(address) is not None
    store.suppress(address, reason, now=now)
    try:
        done = sync.catch_up(config, store, timeout=timeout)
    except DigestError as e:
        log.warning("%s is suppressed, but its file was not updated yet: %s", address, e)
        return Unsubscribed(address, already, file_error=str(e))
    problem = _file_problem(done, address)
    if problem:
        log.warning("%s is suppressed, but its file was not updated yet: %s", address, problem)
    written = tuple(dict.fromkeys(e.path for e in done.roster.entries_of(address)
                                  if not e.fallback)) if done.roster and not problem else ()
    return Unsubscribed(address, already, written, file_error=problem)


def _file_problem(done: sync.CatchUp, address: str) -> str | None:
    """Why ``address`` is not unsubscribed in its file yet, if it is not."""
    roster = done.roster
    if roster is None:
        return None
    mine = roster.entries_of(address)
    for line in done.failed:
        if any(line.startswith(subs.display(e.path) + ":") for e in mine):
            return line
    for b in roster.broken:
        if any(e.path == b.path for e in mine):
            return (f"{b.where}: {b.reason}; the file is updated once it is fixed "
                    "(digest subscribers check --fix)")
    return None


def _set_if_needed(folder: Path, address: str, status: subs.SubscriberStatus) -> list[Path]:
    if not edits.files_with(folder, address):
        return []  # e.g. mailed with --to, or removed from the files since
    return edits.set_status(folder, address, status)


def resubscribe(config: Config, store: Store, email: str) -> tuple[bool, list[Path]]:
    """Lift a suppression and set the files' status back to active (an explicit opt-in)."""
    address = subs.normalise_email(email)
    subs.refuse_broken(sync.load(config))  # before the database changes: all or nothing
    lifted = store.unsuppress(address)
    paths = _set_if_needed(config.subscribers_dir, address, "active")
    if not lifted and not paths:
        raise SubscriberError(f"{address} is neither suppressed nor in any subscriber file",
                              hint=f"add them with 'digest subscribers add {address}'")
    return lifted, paths


def pause(config: Config, email: str) -> list[Path]:
    return edits.set_status(config.subscribers_dir, email, "paused")


def resume(config: Config, store: Store, email: str) -> list[Path]:
    """paused -> active. Never for someone who unsubscribed: that takes resubscribe."""
    address = subs.normalise_email(email)
    roster = sync.load(config)
    subs.refuse_broken(roster)
    person = roster.find(address)
    if store.suppression(address) is not None or (person and person.status == "unsubscribed"):
        raise SubscriberError(f"{address} unsubscribed; resume is for paused subscribers",
                              hint=f"with their consent: 'digest subscribers resubscribe "
                                   f"{address}'")
    return edits.set_status(config.subscribers_dir, address, "active")


@dataclass(frozen=True)
class CheckReport:
    roster: subs.Roster
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    fixed: tuple[str, ...] = ()  # what --fix wrote

    @property
    def ok(self) -> bool:
        return not self.problems

    def summary(self) -> str:
        people = self.roster.subscribers
        counts = {s: sum(p.status == s for p in people) for s in ("active", "paused",
                                                                 "unsubscribed")}
        return (f"{len(people)} subscribers in {len(self.roster.files)} files "
                f"({counts['active']} active, {counts['paused']} paused, "
                f"{counts['unsubscribed']} unsubscribed): {_n(len(self.problems), 'problem')}"
                + (" (those entries are skipped when sending)" if self.problems else "")
                + f", {_n(len(self.notes), 'note')}")


def _n(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def check(config: Config, store: Store, *, fix: bool = False) -> CheckReport:
    """Every problem in the subscriber files, plus notes (lists overlap), plus drift:
    unsubscribes in the database that a file does not show yet. ``fix`` writes those
    into the files first (under the lock, comments kept)."""
    fixed: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    if fix:
        done = sync.catch_up(config, store)
        fixed, failed = tuple(d.fixed() for d in done.fixed), done.failed
    roster = subs.load(config.subscribers_dir, tuple(config.topics),
                       keep=sync.copies_for(config.db_path))
    broken = tuple(b.message() for b in roster.broken if b.fallback is not None)
    drifted = tuple(d.message() for d in sync.drift(roster, store))
    return CheckReport(roster, broken + roster.problems + drifted + failed, roster.notes, fixed)
