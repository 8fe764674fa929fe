"""A rate limit on Redis holds exactly across servers whose dequeues reach Redis in another
order than their clocks read: the window keeps a clock that never goes back, and a dequeue
behind it is judged, and its delivery timed, by that clock."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import FakeClock
from tornado_queue.models import NewTask, RateLimit
from tornado_queue.storage import Policy
from tornado_queue.storage.redis import RedisStore

QUEUE = "metered"
START = 1_790_000_000.0


@pytest.fixture
def behind_and_ahead(
    redis_url: str, policy: Policy
) -> Iterator[tuple[RedisStore, FakeClock, RedisStore, FakeClock]]:
    """Two stores on one Redis and prefix (two servers), each on a clock of its own."""
    prefix = f"{{rate-{uuid.uuid4().hex[:8]}}}"
    behind, ahead = FakeClock(START), FakeClock(START)
    stores = [RedisStore(redis_url, policy, clock, prefix=prefix) for clock in (behind, ahead)]
    yield stores[0], behind, stores[1], ahead
    for store in stores:
        store.close()


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of `times` within any window (t - seconds, t]."""
    times = sorted(times)
    return max(sum(1 for other in times if at - seconds < other <= at) for at in times)


def test_a_dequeue_behind_a_later_timed_one_cannot_reopen_its_window(behind_and_ahead):
    a, a_clock, b, b_clock = behind_and_ahead
    a.configure(QUEUE, {"rate_limit": RateLimit(tasks=2, seconds=1.0)})
    a.enqueue_many([NewTask(payload=b"{}", queue=QUEUE) for _ in range(2)])
    first = a.dequeue_many(1, queue=QUEUE)
    a_clock.advance(0.5)
    second = a.dequeue_many(1, queue=QUEUE)

    # B's clock reads 1.001 s: its dequeue finds nothing but moves the window past the first
    b_clock.advance(1.001)
    assert b.dequeue_many(1, queue=QUEUE) == []
    # A's dequeue arrives after it, its clock still at 0.999 s
    a_clock.advance(0.499)
    a.enqueue(NewTask(payload=b"{}", queue=QUEUE))
    third = a.dequeue_many(1, queue=QUEUE)

    starts = [task.started_at for task in (*first, *second, *third)]
    assert len(starts) == 3
    assert third[0].started_at == pytest.approx(START + 1.001)  # timed by the window's clock
    assert most_in_any_window(starts, 1.0) == 2
    assert a.get(third[0].id).history[-1].at == pytest.approx(START + 1.001)


def test_clearing_the_limit_forgets_the_windows_clock(behind_and_ahead):
    a, _a_clock, b, b_clock = behind_and_ahead
    a.configure(QUEUE, {"rate_limit": RateLimit(tasks=5, seconds=1.0)})
    b_clock.advance(60)
    assert b.dequeue_many(1, queue=QUEUE) == []  # the window's clock is now a minute ahead
    a.configure(QUEUE, {"rate_limit": None})
    a.configure(QUEUE, {"rate_limit": RateLimit(tasks=5, seconds=1.0)})
    a.enqueue(NewTask(payload=b"{}", queue=QUEUE))

    (task,) = a.dequeue_many(1, queue=QUEUE)

    assert task.started_at == pytest.approx(START)
