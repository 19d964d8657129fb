"""Acting on bounces and complaints: read a Maildir of reports, record what they say,
suppress the addresses that must not be mailed again (`digest bounces fetch`), and
list what arrived (`digest bounces`).

Trust: a report is an email, and anyone can send one naming any subscriber. digest
acts only on a report about an address its delivery journal shows it mailed within
``[bounces] window_days``; the others are counted as ignored and change nothing. (A
VERP envelope sender, signed per message, will narrow it further: issue 20.)
"""

from __future__ import annotations

import contextlib
import logging
import mailbox
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from digest import pipeline
from digest.config import Config
from digest.errors import DigestError
from digest.mail.bounces import MAX_BYTES, parse
from digest.models import Bounce
from digest.store.facade import Store
from digest.subscribers import sync

log = logging.getLogger(__name__)


@dataclass
class FetchReport:
    """What one `digest bounces fetch` did."""

    messages: int = 0  # messages read (those already marked seen are skipped)
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    not_reports: int = 0  # messages that were no bounce or complaint
    ignored: int = 0  # reports about addresses digest did not mail recently
    suppressed: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"read {self.messages} messages: {self.hard} hard, {self.soft} soft, "
                f"{self.complaints} complaints, {self.ignored} ignored (not mailed "
                f"recently), {self.not_reports} not reports; suppressed "
                f"{len(self.suppressed)}")

    def as_json(self) -> dict[str, Any]:
        return {"messages": self.messages, "hard": self.hard, "soft": self.soft,
                "complaints": self.complaints, "not_reports": self.not_reports,
                "ignored": self.ignored, "suppressed": self.suppressed}


def fetch_maildir(config: Config, folder: Path, *, now: datetime | None = None) -> FetchReport:
    """Read every unseen message of the Maildir ``folder`` (new/ and cur/), act on
    what it reports, and move each to cur/ with the S (seen) flag."""
    now = now or datetime.now(UTC)
    if not all((folder / sub).is_dir() for sub in ("new", "cur", "tmp")):
        raise DigestError(f"{folder}: not a Maildir (it needs new/, cur/ and tmp/)",
                          hint="pass the Maildir the bounce address delivers to")
    box = mailbox.Maildir(folder, factory=None, create=False)
    report = FetchReport()
    store = pipeline.open_store(config)
    try:
        files = _files(folder)
        for key in sorted(box.iterkeys()):
            path = files.get(key)
            if path is None or _seen(path):
                continue  # done by an earlier fetch (or gone meanwhile)
            with box.get_file(key) as f:
                data = f.read(MAX_BYTES)
            report.messages += 1
            found = parse(data, now=now)
            if not found:
                report.not_reports += 1
            act(config, store, found, source=path.name, now=now, report=report)
            _mark_seen(folder, path)
        if report.suppressed:
            # The database suppression already holds at send time; the files catch up.
            sync.catch_up_before_sending(config, store)
    finally:
        store.close()
    log.info("%s", report.line())
    return report


def act(config: Config, store: Store, found: tuple[Bounce, ...], *, source: str,
        now: datetime, report: FetchReport) -> None:
    """Record and act on the bounces one message reported."""
    rules = config.model.bounces
    since = now - timedelta(days=rules.window_days)
    mailed = store.mailed_since((b.address for b in found), since.date())
    for b in found:
        if b.address not in mailed:
            report.ignored += 1
            log.info("ignored a %s report for %s: not mailed in %d days", b.kind, b.address,
                     rules.window_days)
            continue
        store.record_bounce(b.address, b.kind, b.status, b.diagnostic,
                            f"{b.reporter} {source}".strip(), now)
        if b.kind == "hard":
            report.hard += 1
            reason = f"bounce {b.status or 'hard'}: {b.diagnostic}"
        elif b.kind == "complaint":
            report.complaints += 1
            reason = f"complaint ({b.diagnostic}) via {b.reporter}"
        else:
            report.soft += 1
            count = store.soft_bounces_since(b.address, since)
            if count < rules.soft_limit:
                continue
            reason = (f"{count} soft bounces in {rules.window_days} days "
                      f"(last {b.status or '4.x.x'}: {b.diagnostic})")
        if store.suppression(b.address) is None:
            store.suppress(b.address, reason[:500], now=now)
            report.suppressed.append(b.address)


def recent(config: Config, days: int, *, today: date | None = None) -> list[dict[str, Any]]:
    """Bounces and complaints recorded in the last ``days`` days, newest first."""
    today = today or datetime.now(UTC).date()
    store = pipeline.open_store(config)
    try:
        rows = store.recent_bounces(today - timedelta(days=max(days - 1, 0)))
        suppressed = store.suppressed()
    finally:
        store.close()
    return [{"address": r["address"], "kind": r["kind"], "status": r["status"],
             "diagnostic": r["diagnostic"], "day": r["day"],
             "received_at": r["received_at"].isoformat(), "source": r["source"],
             "suppressed": r["address"] in suppressed} for r in rows]


def _files(folder: Path) -> dict[str, Path]:
    """Each message's file by key: new/KEY or cur/KEY:2,FLAGS (the Maildir naming
    every delivery agent uses, and mailbox's keys)."""
    out: dict[str, Path] = {}
    for sub in ("cur", "new"):  # new/ last: a key in both is the undelivered copy
        for p in (folder / sub).iterdir():
            if not p.name.startswith("."):
                out[p.name.split(":", 1)[0]] = p
    return out


def _seen(path: Path) -> bool:
    if path.parent.name != "cur" or ":2," not in path.name:
        return False
    return "S" in path.name.rsplit(":2,", 1)[1]


def _mark_seen(folder: Path, path: Path) -> None:
    key, _, info = path.name.partition(":")
    flags = info[2:] if info.startswith("2,") else ""
    target = folder / "cur" / f"{key}:2,{''.join(sorted(set(flags + 'S')))}"
    with contextlib.suppress(FileNotFoundError):  # another fetch took it meanwhile
        path.rename(target)
