"""Subscriber operations that touch both the files and the database.

The suppression list in the database is the authority on who must not be mailed:
an unsubscribe is recorded there first (at once, one row), then written into the
subscriber's file so the files people read say the same. If the file cannot be
written (someone is editing it, it is read-only), the suppression still holds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from digest import subscribers as subs
from digest import subscribers_edit as edits
from digest.config import Config
from digest.errors import SubscriberError
from digest.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unsubscribed:
    email: str
    already: bool  # it was suppressed before this call: a replay
    files: tuple[Path, ...] = ()  # files whose status now says unsubscribed
    file_error: str | None = None  # why the files could not be updated, if they could not


def unsubscribe(config: Config, store: Store, email: str, *, reason: str,
                now: datetime | None = None, lock_timeout: float | None = None) -> Unsubscribed:
    """Suppress ``email`` now and mark it unsubscribed in every file. Idempotent.

    ``lock_timeout``: the longest wait for a file another process holds locked; then
    BusyError (the suppression is recorded by then; repeating the call finishes it)."""
    address = subs.normalise_email(email)
    already = store.suppression(address) is not None
    store.suppress(address, reason, now=now)
    try:
        paths = _set_if_needed(config.subscribers_dir, address, "unsubscribed",
                               timeout=lock_timeout)
    except SubscriberError as e:
        log.warning("%s is suppressed, but its file was not updated: %s", address, e)
        return Unsubscribed(address, already, file_error=str(e))
    return Unsubscribed(address, already, tuple(paths))


def _set_if_needed(folder: Path, address: str, status: subs.SubscriberStatus, *,
                   timeout: float | None = None) -> list[Path]:
    if not edits.files_with(folder, address):
        return []  # e.g. mailed with --to, or removed from the files since
    return edits.set_status(folder, address, status, timeout=timeout)


def resubscribe(config: Config, store: Store, email: str) -> tuple[bool, list[Path]]:
    """Lift a suppression and set the files' status back to active (an explicit opt-in)."""
    address = subs.normalise_email(email)
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
    person = subs.load(config.subscribers_dir).find(address)
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


def check(config: Config, store: Store) -> CheckReport:
    """Every problem in the subscriber files, plus notes (lists overlap, suppressions)."""
    roster = subs.load(config.subscribers_dir, tuple(config.topics))
    blocked = store.suppressed()
    notes = list(roster.notes)
    for p in roster.subscribers:
        if p.email in blocked and p.status != "unsubscribed":
            notes.append(f"{p.source}: {p.email} is {p.status} here but unsubscribed (suppressed) "
                         "in the database; gets nothing until 'digest subscribers resubscribe'")
    return CheckReport(roster, roster.problems, tuple(notes))
