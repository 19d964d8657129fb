"""The time a send runs on: wall time for the journal (leases, backoff), a monotonic
reading and a sleep for the rate limiter, the lease keeper, retries, reconnects and
the group commit's wait. Passed in, so a test can hold a sender past its lease, or
an outcome short of its commit, without waiting for it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


def utc_now() -> datetime:
    return datetime.now(UTC)


class Clock(Protocol):
    def now(self) -> datetime:
        """Aware wall time (what the journal stores)."""
        ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clocks; ``now`` may be replaced (the pipeline pins a run's day)."""

    def __init__(self, now: Callable[[], datetime] = utc_now) -> None:
        self._now = now

    def now(self) -> datetime:
        return self._now()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
