"""Time, injected: wall time for the timestamps clients see, monotonic time for deadlines."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What a store asks of time. Tests pass a clock they move by hand instead of sleeping."""

    def time(self) -> float:
        """Wall-clock seconds since the epoch, for timestamps shown to clients."""
        ...

    def monotonic(self) -> float:
        """Seconds that only move forward, for leases, delays and retention deadlines."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
