"""`digest collect` and `digest feeds` as an operator meets them: the fetch with
its progress bar, what a collect's results mean for the exit code, and the feeds'
health from the store. The CLI parses the options and prints the results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from digest import console as report
from digest import pipeline, runlog
from digest.config import Config
from digest.errors import DigestError
from digest.models import FeedResult

if TYPE_CHECKING:
    from digest.collect.health import FeedHealth


def collect_now(config: Config, *, progress: bool) -> list[FeedResult]:
    """Fetch every feed and store the new articles, with a progress bar unless the
    caller prints JSON."""
    store = pipeline.open_store(config)
    # The table (or the JSON) shows each feed's error: the log line would repeat it.
    try:
        with runlog.without_feed_errors(), report.Progress(
                "collecting", len(config.feeds), enabled=progress) as bar:
            return pipeline.collect(config, store, now=pipeline.utcnow(), on_result=bar.advance)
    finally:
        store.close()


def failure_warning(results: Sequence[FeedResult]) -> str | None:
    """The warning line when some feeds failed; a DigestError (exit 1) when all did."""
    failed = report.failed_feeds_line(results)
    if results and all(r.status == "error" for r in results):
        raise DigestError(f"all {len(results)} feeds failed",
                          hint="errors above; each feed's history: digest feeds")
    return failed


def health(config: Config) -> list[FeedHealth]:
    """Every configured feed's health, from the store."""
    # Imported here: `digest collect` never needs it.
    from digest.collect import health as feedhealth

    store = pipeline.open_store(config)
    try:  # closed, even on a damaged page: an open connection leaves -wal and -shm behind
        return feedhealth.feed_health(config, store, now=pipeline.utcnow())
    finally:
        store.close()


def revive(config: Config, feed: str) -> str:
    """Fetch a gone or waiting feed again (by URL or name); the line saying so."""
    from digest.collect import health as feedhealth

    store = pipeline.open_store(config)
    try:
        return feedhealth.revive(config, store, feed)
    finally:
        store.close()
