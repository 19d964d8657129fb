"""Send-rate limits that deliver the rate asked for, not less.

Per second: a token bucket (GCRA form) whose burst is a tenth of a second's worth,
so scheduling jitter is made up for rather than lost, and no one-second window
carries much more than the rate. Per hour: an exact sliding window of the last
hour's sends, seeded from the journal so a restart within the hour keeps counting.
Rate-limit bugs in other tools mostly under-deliver (a sleep after every message
on top of the send time); here waiting only ever fills the gap to the next slot.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable

HOUR = 3600.0


class RateLimiter:
    """``await acquire()`` before each message; 0 means unlimited for either rate."""

    def __init__(self, per_second: float = 0, per_hour: float = 0, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
                 recent: Iterable[float] = ()) -> None:
        self.per_second = per_second
        self.per_hour = per_hour
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        # GCRA: the earliest time the next message may go ("theoretical arrival time").
        self._interval = 1.0 / per_second if per_second > 0 else 0.0
        self._tolerance = 0.1  # a tenth of a second's worth may go at once
        self._tat = clock()
        # Clock readings of sends within the last hour (``recent`` from earlier runs).
        self._window: deque[float] = deque(sorted(recent))

    @property
    def unlimited(self) -> bool:
        return self.per_second <= 0 and self.per_hour <= 0

    def capacity(self, within: float) -> int:
        """How many messages acquire() would let go in the next ``within`` seconds
        (a sender claims no more rows than that; 2**30 when unlimited)."""
        n = 1 << 30
        now = self._clock()
        if self._interval:
            start = max(now, self._tat - self._tolerance)
            n = min(n, int((now + within - start) / self._interval) + 1)
        if self.per_hour > 0:
            still = sum(1 for t in self._window if t > now + within - HOUR)
            n = min(n, int(self.per_hour) - still)
        return max(n, 0)

    async def acquire(self) -> None:
        if self.unlimited:
            return
        async with self._lock:  # waiters are served in arrival order
            await self._hourly()
            if self._interval:
                now = self._clock()
                at = max(now, self._tat - self._tolerance)
                if at > now:
                    await self._sleep(at - now)
                self._tat = max(self._tat, at) + self._interval
            if self.per_hour > 0:
                self._window.append(self._clock())

    async def _hourly(self) -> None:
        if self.per_hour <= 0:
            return
        while True:
            now = self._clock()
            while self._window and self._window[0] <= now - HOUR:
                self._window.popleft()
            if len(self._window) < self.per_hour:
                return
            await self._sleep(self._window[0] + HOUR - now)
