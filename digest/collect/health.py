"""`digest feeds`: every configured feed's health, from the store.

Last success, last error, consecutive failures, and the states the collector acts
on: moved (a permanent redirect; the new URL is fetched, config.toml should say
so), gone (410: not fetched again until revived), waiting (Retry-After).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.text import Text

from digest.config import Config
from digest.errors import DigestError
from digest.store.facade import FeedState, Store


@dataclass(frozen=True)
class FeedHealth:
    name: str
    url: str
    state: str  # ok | not_modified | failing | gone | waiting | never
    last_success: datetime | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    items: int | None
    moved_to: str | None
    retry_after: datetime | None
    last_checked: datetime | None

    def as_json(self) -> dict[str, Any]:
        def iso(d: datetime | None) -> str | None:
            return d.isoformat() if d else None

        return {"feed": self.name, "url": self.url, "state": self.state,
                "last_success": iso(self.last_success), "last_error": self.last_error,
                "last_error_at": iso(self.last_error_at), "failures": self.failures,
                "items": self.items, "moved_to": self.moved_to,
                "retry_after": iso(self.retry_after), "last_checked": iso(self.last_checked)}


def feed_health(config: Config, store: Store, *, now: datetime) -> list[FeedHealth]:
    """One row per configured feed, in config order."""
    states = {s.url: s for s in store.feed_states()}
    return [_row(f.name, f.url, states.get(f.url), now) for f in config.feeds]


def _row(name: str, url: str, s: FeedState | None, now: datetime) -> FeedHealth:
    if s is None:
        return FeedHealth(name, url, "never", None, None, None, 0, None, None, None, None)
    if s.dead_since is not None:
        state = "gone"
    elif s.retry_after is not None and s.retry_after > now:
        state = "waiting"
    elif s.last_status == "error":
        state = "failing"
    else:
        state = s.last_status or "never"
    return FeedHealth(name, url, state, s.last_success, s.last_error if s.failures else None,
                      s.last_error_at, s.failures, s.last_items, s.moved_to, s.retry_after,
                      s.last_checked)


def revive(config: Config, store: Store, url: str) -> str:
    """Clear a feed's gone/moved/waiting state so the next collect tries it afresh."""
    known = {f.url for f in config.feeds} | {f.name for f in config.feeds}
    if url not in known:
        raise DigestError(f"no feed {url!r} in {config.path}",
                          hint="give the url or name as listed by `digest feeds`")
    target = next((f.url for f in config.feeds if url in (f.url, f.name)), url)
    if not store.forget_feed_state(target):
        return f"{target}: nothing to revive (never collected)"
    return f"{target}: revived; the next collect fetches it afresh"


_STYLE = {"ok": "green", "not_modified": "cyan", "failing": "red", "gone": "red bold",
          "waiting": "yellow", "never": "dim"}


def print_table(rows: Sequence[FeedHealth], console: Console | None = None) -> None:
    from digest.console import Column, table

    console = console or Console()
    if not rows:
        console.print("no feeds configured: add a [[feeds]] table with a url to config.toml",
                      markup=False)
        return
    if all(r.state == "never" for r in rows):
        console.print("no feeds checked yet: run `digest collect`")
        return
    out = []
    for r in rows:
        error = r.last_error or ""
        if r.moved_to:
            error = f"moved permanently to {r.moved_to} (update config.toml)" + (
                f"; {error}" if error else "")
        if r.state == "waiting" and r.retry_after:
            error = f"asked to wait until {r.retry_after:%Y-%m-%d %H:%M} UTC; {error}"
        out.append((r.name, Text(r.state, style=_STYLE.get(r.state, "")),
                    "" if r.items is None else str(r.items),
                    f"{r.last_success:%Y-%m-%d %H:%M}" if r.last_success else "never",
                    str(r.failures) if r.failures else "", error))
    columns = [Column("feed"), Column("state"), Column("items", right=True, drop=2),
               Column("last success", drop=1), Column("failures", right=True, drop=3),
               Column("last error")]
    console.print(table("Feeds", columns, out, width=console.width))
    bad = sum(r.state in ("failing", "gone") for r in rows)
    moved = sum(r.moved_to is not None for r in rows)
    console.print(f"{len(rows)} feeds: {len(rows) - bad} healthy, {bad} failing or gone"
                  + (f", {moved} moved" if moved else ""))
