"""Every store: --max-pending per queue and --max-tasks overall refuse an enqueue that would
pass them, atomically (nothing of the batch is added) and only for tasks that would be made."""

from __future__ import annotations

import pytest

from tornado_queue.errors import QueueFull
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.storage import Policy


@pytest.fixture
def policy() -> Policy:
    return Policy(lease_seconds=30, max_attempts=3, retention_seconds=10, max_pending=3)


def task(queue: str = "default", key: str | None = None, delay: float = 0.0) -> NewTask:
    return NewTask(b"{}", queue=queue, delay=delay, idempotency_key=key, fingerprint=b"f")


def test_a_queue_takes_tasks_up_to_max_pending_then_refuses_with_nothing_added(store):
    store.enqueue_many([task(), task(delay=60)])  # pending and scheduled both wait

    with pytest.raises(QueueFull, match="queue 'default' is full: 2 tasks waiting"):
        store.enqueue_many([task(), task()])

    store.enqueue(task())
    assert store.stats("default")[TaskStatus.PENDING] == 2
    assert store.stats("default")[TaskStatus.SCHEDULED] == 1


def test_the_limit_is_per_queue_and_leased_tasks_do_not_count(store):
    store.enqueue_many([task() for _ in range(3)])
    store.dequeue()

    store.enqueue(task())  # 2 pending + 1 processing: room for one more
    store.enqueue_many([task("other") for _ in range(3)])

    with pytest.raises(QueueFull):
        store.enqueue(task())


def test_idempotent_replays_need_no_room(store):
    store.enqueue_many([task(key="a"), task(key="b"), task(key="c")])

    replayed = store.enqueue_many([task(key="a"), task(key="b")])

    assert [outcome.created for outcome in replayed] == [False, False]


def test_max_tasks_counts_every_state_until_tasks_are_forgotten(store, clock):
    store.policy = Policy(lease_seconds=30, retention_seconds=10, max_tasks=4)
    store.enqueue_many([task("a"), task("b"), task("c")])
    leased = store.dequeue(queue="a")
    store.complete(leased.id, lease_id=leased.lease_id)
    store.enqueue(task("d"))

    with pytest.raises(QueueFull, match="holds 4 tasks"):
        store.enqueue(task("e"))

    clock.advance(11)  # the completed task is forgotten: room again
    store.enqueue(task("e"))
    assert sum(store.stats().values()) == 4


def test_max_queues_refuses_a_new_queue_but_not_one_in_use_nor_a_replay(store, clock):
    store.policy = Policy(lease_seconds=30, retention_seconds=10, max_queues=2)
    store.enqueue_many([task("a"), task("b", key="k")])

    with pytest.raises(QueueFull, match="cannot start queue 'c': 2 queues hold tasks"):
        store.enqueue_many([task("a"), task("c")])
    store.enqueue(task("a"))
    assert [outcome.created for outcome in store.enqueue_many([task("b", key="k")])] == [False]

    store.delete(store.view(10, queue="b")[0][0].id)  # "b" empties: room for a new queue
    store.enqueue(task("c"))
    assert sorted(store.queues()) == ["a", "c"]
