"""The rate limiter on a virtual clock: it delivers the rate asked for, not less,
and never more than the hourly cap in any hour. (Virtual time: nothing here waits.)"""

from __future__ import annotations

from digest.send.ratelimit import HOUR, RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


async def test_per_second_rate_is_delivered_exactly() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=50, clock=clock, sleep=clock.sleep)
    times = []
    for _ in range(1000):
        await limiter.acquire()
        times.append(clock.now)
    elapsed = times[-1] - times[0]
    # 1000 messages at 50/s: 20 s less the small initial burst, never slower.
    assert 19.8 <= elapsed <= 20.0
    # No one-second window carries more than the rate plus the 0.1 s burst.
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - 1.0:
            j += 1
        assert i - j + 1 <= 50 + 6


async def test_slow_sending_is_not_penalised_twice() -> None:
    # Time spent sending counts toward the next slot: a send taking 15 ms at a 50/s
    # limit waits only 5 ms more (rate tools that sleep 1/rate after each send give 28/s).
    clock = Clock()
    limiter = RateLimiter(per_second=50, clock=clock, sleep=clock.sleep)
    start = clock.now
    for _ in range(500):
        await limiter.acquire()
        clock.now += 0.015  # the send itself
    assert 500 / (clock.now - start) >= 49.5


async def test_per_hour_cap_is_a_sliding_window_and_full_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=100, clock=clock, sleep=clock.sleep,
                          recent=[clock.now - 1800] * 40)  # 40 sent half an hour ago
    times = []
    for _ in range(260):
        await limiter.acquire()
        times.append(clock.now)
    assert times[59] == times[0]  # the 60 left of this hour go at once
    assert times[60] == 1000.0 + 1800  # then the 40 from the earlier run expire
    j = 0
    for i, t in enumerate(times):
        while times[j] <= t - HOUR:
            j += 1
        assert i - j + 1 <= 100  # never more than 100 in any hour
    assert times[-1] - times[0] <= 2 * HOUR  # and not slower than 100 an hour


async def test_zero_means_unlimited() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, sleep=clock.sleep)
    for _ in range(10_000):
        await limiter.acquire()
    assert clock.slept == 0
