"""Requests per second per client: a token bucket for each token (or address), in O(1)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable

MAX_CLIENTS = 100_000
"""Buckets kept at most; the least recently seen is dropped first (it would be full anyway
after `burst / rate` seconds idle), so a flood of new addresses cannot grow memory."""


class RateLimiter:
    """`rate` requests a second per key, with bursts of up to `burst`. Called on the IOLoop
    only (not thread-safe)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate, 1.0)
        self._clock = clock
        self._max_clients = max_clients
        # key -> (tokens left, when last filled)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> float:
        """Spend one request of `key`'s allowance: 0.0 when allowed, else the seconds until
        one is available again (nothing is spent then)."""
        now = self._clock()
        left, filled = self._buckets.pop(key, (self.burst, now))
        left = min(self.burst, left + (now - filled) * self.rate)
        if left >= 1.0:
            self._buckets[key] = (left - 1.0, now)
            wait = 0.0
        else:
            self._buckets[key] = (left, now)
            wait = (1.0 - left) / self.rate
        if len(self._buckets) > self._max_clients:
            self._buckets.popitem(last=False)
        return wait
