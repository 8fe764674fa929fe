"""The token bucket: a steady rate with bursts, per key, bounded memory."""

from __future__ import annotations

import pytest

from tornado_queue.server.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_allowed_then_requests_wait_for_the_rate():
    clock = Clock()
    limiter = RateLimiter(rate=2, burst=3, clock=clock)

    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(0.5)  # one request per 1/2 s

    clock.now += 0.5
    assert limiter.take("a") == 0.0
    assert limiter.take("a") == pytest.approx(0.5)


def test_keys_have_their_own_allowance():
    limiter = RateLimiter(rate=1, burst=1, clock=Clock())

    assert limiter.take("a") == 0.0
    assert limiter.take("a") > 0
    assert limiter.take("b") == 0.0


def test_an_idle_key_refills_only_up_to_its_burst():
    clock = Clock()
    limiter = RateLimiter(rate=10, burst=2, clock=clock)
    limiter.take("a")
    clock.now += 3600

    assert [limiter.take("a") > 0 for _ in range(3)] == [False, False, True]


def test_memory_is_bounded_by_dropping_the_least_recently_seen_keys():
    limiter = RateLimiter(rate=1, burst=1, clock=Clock(), max_clients=100)
    for number in range(1000):
        limiter.take(f"client-{number}")

    assert len(limiter._buckets) == 100
    assert limiter.take("client-0") == 0.0  # forgotten: a fresh, full bucket
