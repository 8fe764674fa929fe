"""Delivery settings in every store: a concurrency cap (`max_processing`) and a sliding-window
rate limit (`rate_limit`), each holding across stores sharing one Redis and across a SQLite
restart, and waking listeners when a slot frees or a window opens; per-queue retry backoff."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FakeClock
from tests.storage.test_queue_settings import listen
from tests.support import shared_redis_stores
from tornado_queue.models import NewTask, QueueSettings, RateLimit, TaskStatus
from tornado_queue.storage import Policy, SqliteStore


def fill(store, count: int, queue: str = "default") -> None:
    store.enqueue_many([NewTask(payload=b"{}", queue=queue) for _ in range(count)])


# -- max_processing ---------------------------------------------------------------------------


def test_a_cap_limits_how_many_tasks_are_processing_at_once(store):
    fill(store, 5)
    store.configure("default", {"max_processing": 2})

    taken = store.dequeue_many(5)

    assert len(taken) == 2
    assert store.dequeue() is None
    store.complete(taken[0].id, None, taken[0].lease_id)
    assert store.dequeue() is not None
    assert store.dequeue() is None
    assert store.stats()[TaskStatus.PROCESSING] == 2


def test_every_way_out_of_processing_frees_a_slot_and_tells_listeners(store, clock: FakeClock):
    fill(store, 10)
    store.configure("default", {"max_processing": 1})
    heard = listen(store)
    ways_out = [
        lambda task: store.complete(task.id, None, task.lease_id),
        lambda task: store.fail(task.id, "no", retry=False, lease_id=task.lease_id),
        lambda task: store.release(task.id, task.lease_id),
        lambda task: clock.advance(31) or store.reap(),
    ]
    for way_out in ways_out:
        task = store.dequeue()
        assert task is not None and store.dequeue() is None
        heard.clear()

        way_out(task)

        assert any(queue == "default" for queue, _ in heard)
        assert store.dequeue() is not None
        store.reap()
        for leased in store.view(10, status=TaskStatus.PROCESSING)[0]:
            store.complete(leased.id, None, leased.lease_id)


def test_raising_or_lifting_a_cap_tells_listeners(store):
    fill(store, 3)
    store.configure("default", {"max_processing": 1})
    store.dequeue()
    heard = listen(store)

    store.configure("default", {"max_processing": 2})
    store.configure("default", {"max_processing": 1})  # lowered: nothing more to take
    assert heard == [("default", 2)]
    store.configure("default", {"max_processing": None})
    assert heard == [("default", 2), ("default", 2)]
    assert len(store.dequeue_many(5)) == 2


def test_a_cap_holds_across_stores_sharing_one_redis(redis_url: str, clock, policy: Policy):
    with shared_redis_stores(redis_url, policy, clock, "{tq-cap}") as (a, b):
        fill(a, 4)
        a.configure("default", {"max_processing": 2})
        assert len(a.dequeue_many(1)) == 1
        assert len(b.dequeue_many(5)) == 1
        assert a.dequeue() is None and b.dequeue() is None


# -- rate_limit -------------------------------------------------------------------------------


def test_a_rate_limit_allows_so_many_deliveries_in_any_window(store, clock: FakeClock):
    fill(store, 10)
    store.configure("default", {"rate_limit": RateLimit(2, 10.0)})

    assert len(store.dequeue_many(5)) == 2  # two at t=0
    clock.advance(9.9)
    assert store.dequeue() is None
    clock.advance(0.1)  # t=10: the two of t=0 have left the window
    assert store.dequeue() is not None
    clock.advance(5)  # t=15: one delivery (t=10) in the window
    assert store.dequeue() is not None
    assert store.dequeue() is None
    clock.advance(5)  # t=20: the delivery of t=10 left, the one of t=15 has not
    assert len(store.dequeue_many(5)) == 1


def test_a_sliding_window_never_lets_a_burst_through_at_its_edge(store, clock: FakeClock):
    fill(store, 10)
    store.configure("default", {"rate_limit": RateLimit(3, 1.0)})
    clock.advance(0.9)
    assert len(store.dequeue_many(3)) == 3  # at the end of one second
    clock.advance(0.2)  # a fixed window or a full bucket would allow 3 more now
    assert store.dequeue() is None
    clock.advance(0.8)  # a second after those three
    assert len(store.dequeue_many(5)) == 3


def test_redeliveries_count_against_the_rate(store, clock: FakeClock):
    fill(store, 1)
    store.configure("default", {"rate_limit": RateLimit(1, 100.0)})
    task = store.dequeue()
    store.release(task.id, task.lease_id)
    assert store.dequeue() is None
    clock.advance(100)
    assert store.dequeue().id == task.id


def test_a_consumer_turned_away_by_the_rate_limit_is_told_when_the_window_opens(
    store, clock: FakeClock
):
    fill(store, 3)
    store.configure("default", {"rate_limit": RateLimit(1, 5.0)})
    store.dequeue()
    heard = listen(store)
    assert store.dequeue() is None  # turned away: a wake-up is planned
    deadline = store.seconds_to_next_deadline()
    assert deadline is not None and deadline <= 5.0

    clock.advance(5)
    store.reap()

    assert ("default", 1) in heard
    assert store.dequeue() is not None


def test_a_changed_or_lifted_rate_limit_tells_listeners_and_keeps_counting(store, clock: FakeClock):
    fill(store, 5)
    store.configure("default", {"rate_limit": RateLimit(1, 60.0)})
    store.dequeue()
    heard = listen(store)

    store.configure("default", {"rate_limit": RateLimit(2, 60.0)})

    assert heard == [("default", 4)]
    assert len(store.dequeue_many(5)) == 1  # the delivery before the change still counts
    store.configure("default", {"rate_limit": None})
    assert len(store.dequeue_many(5)) == 3


def test_a_rate_limit_holds_across_stores_sharing_one_redis(
    redis_url: str, clock: FakeClock, policy: Policy
):
    with shared_redis_stores(redis_url, policy, clock, "{tq-rate}") as (a, b):
        fill(a, 5)
        a.configure("default", {"rate_limit": RateLimit(3, 10.0)})
        assert len(a.dequeue_many(2)) == 2
        assert len(b.dequeue_many(5)) == 1
        assert a.dequeue() is None


def test_sqlite_keeps_the_rate_window_across_a_restart(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    first = SqliteStore(tmp_path / "q.db", policy, clock)
    fill(first, 3)
    first.configure("default", {"rate_limit": RateLimit(1, 60.0)})
    assert first.dequeue() is not None
    first.close()

    again = SqliteStore(tmp_path / "q.db", policy, clock)
    try:
        assert again.queue_settings("default").rate_limit == RateLimit(1, 60.0)
        assert again.dequeue() is None
        clock.advance(60)
        assert again.dequeue() is not None
    finally:
        again.close()


# -- retry_backoff ----------------------------------------------------------------------------


def test_a_queues_backoff_applies_to_tasks_enqueued_after_it_is_set(store, clock: FakeClock):
    before = store.enqueue(NewTask(payload=b"{}"))
    store.configure("default", {"retry_backoff": 20.0})
    after = store.enqueue(NewTask(payload=b"{}"))
    assert store.queue_settings("default") == QueueSettings(retry_backoff=20.0)

    for task in store.dequeue_many(2):
        store.fail(task.id, "again", lease_id=task.lease_id)

    waits = {
        task_id: store.get(task_id).available_at - clock.time() for task_id in (before.id, after.id)
    }
    assert waits == {before.id: 1.0, after.id: 20.0}  # the server's 1 s, the queue's 20 s


def test_a_backoff_of_zero_retries_at_once(store):
    store.configure("default", {"retry_backoff": 0.0})
    task = store.enqueue(NewTask(payload=b"{}"))
    leased = store.dequeue()
    store.fail(leased.id, "again", lease_id=leased.lease_id)
    assert store.get(task.id).status is TaskStatus.PENDING
