"""How many tasks a queue may hand out right now (pause, concurrency cap, rate limit, and
whether it is pushed):
`DeliveryRules` for the memory store (the durable stores apply the same rules in their own
atomic step, beside their code), and `delivers_more`, which every store asks when settings
change."""

from __future__ import annotations

from collections import deque

from tornado_queue.models import QueueSettings, RateLimit


class DeliveryRules:
    """A queue's delivery settings and the times of its recent deliveries.

    The rate limit is a sliding window: a delivery at time t is allowed while fewer than
    `tasks` deliveries happened in (t - seconds, t]. Only the last `tasks` delivery times can
    matter, and times older than the window never will again (the clock only moves on), so
    the log holds at most `tasks` times and every operation on it is O(1) amortized.
    """

    __slots__ = ("_log", "_short", "max_processing", "paused", "push", "rate", "wake_at")

    def __init__(self, settings: QueueSettings, before: DeliveryRules | None = None) -> None:
        self.paused = bool(settings.paused)
        self.push = settings.push is not None
        """Only the servers' pushers may dequeue (`dequeue_many(push=True)`)."""
        self.max_processing = settings.max_processing
        self.rate: RateLimit | None = settings.rate_limit
        # Deliveries already made count against a new limit too.
        self._log: deque[float] = before._log if before is not None else deque()
        if self.rate is not None:
            while len(self._log) > self.rate.tasks:  # a lower limit keeps the latest times
                self._log.popleft()
        self._short = False  # the last allowance was cut by the rate limit
        self.wake_at: float | None = None
        """When the rate window next opens for a consumer that was refused (else None)."""
        if before is not None and before.rate == self.rate:
            self.wake_at = before.wake_at  # a wake-up already planned still comes

    @classmethod
    def of(cls, settings: QueueSettings, before: DeliveryRules | None) -> DeliveryRules | None:
        """The rules for `settings`, carrying on from `before` (its delivery log, a planned
        wake-up); None when no setting limits delivery."""
        if all(getattr(settings, name) is None for name in QueueSettings.DELIVERY):
            return None
        return cls(settings, before)

    def allowance(self, wanted: int, processing: int, now: float) -> int:
        """How many of `wanted` tasks may be handed out at `now` with `processing` of the
        queue's tasks processing. Call `delivered` with what was handed out."""
        self._short = False
        if self.paused:
            return 0
        if self.max_processing is not None:
            wanted = min(wanted, self.max_processing - processing)
        rate = self.rate
        if rate is None or wanted <= 0:
            return max(wanted, 0)
        log = self._log
        opens = now - rate.seconds
        while log and log[0] <= opens:
            log.popleft()
        room = rate.tasks - len(log)
        self._short = room < wanted
        return min(wanted, room)

    def delivered(self, count: int, now: float) -> bool:
        """Note `count` deliveries at `now`. True when the rate limit turned a consumer away
        and `wake_at` is newly set to when the window next lets one more through (the store
        then plans a wake-up for it)."""
        rate = self.rate
        if rate is None:
            return False
        log = self._log
        if count:
            log.extend([now] * count)
        if not self._short or not log:
            return False
        # The oldest delivery in the window leaves it then, making room for one more.
        opens = log[0] + rate.seconds
        if opens == self.wake_at:
            return False
        self.wake_at = opens
        return True


def delivers_more(before: QueueSettings, after: QueueSettings) -> bool:
    """Whether a change of settings may let a queue deliver tasks it did not before (resumed,
    a cap raised or lifted, a rate limit changed or lifted, push set or cleared, which hands
    its tasks to other takers): its waiters should look again."""
    if (before.push is None) != (after.push is None):
        return True
    if before.paused and not after.paused:
        return True
    if after.paused:
        return False
    cap_before, cap_after = before.max_processing, after.max_processing
    if cap_before is not None and (cap_after is None or cap_after > cap_before):
        return True
    return before.rate_limit is not None and after.rate_limit != before.rate_limit
