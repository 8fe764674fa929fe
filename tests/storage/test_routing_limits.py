"""What keeps routing bounded: empty queues are forgotten, emptied priorities are dropped,
pages of returned tasks are read lazily, and an idempotency key outlives its term while its
task is still there."""

from __future__ import annotations

import heapq
import random

from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.storage.pending import _heap_in_order


def test_a_queue_is_listed_while_it_holds_tasks_and_forgotten_once_empty(store, clock, policy):
    # Given a task in "brief" that is completed and then outlives its retention
    store.enqueue(NewTask(b"{}", queue="brief"))
    leased = store.dequeue(queue="brief")
    store.complete(leased.id, lease_id=leased.lease_id)
    assert "brief" in store.queues()

    # When its retention ends
    clock.advance(policy.retention_seconds + 1)

    # Then the queue is no longer listed, and its counts read as zeros
    assert "brief" not in store.queues()
    assert store.stats("brief") == dict.fromkeys(TaskStatus, 0)


def test_a_queue_whose_only_tasks_were_deleted_is_forgotten(store):
    ids = [store.enqueue(NewTask(b"{}", queue="gone", delay=60)).id for _ in range(3)]
    for task_id in ids:
        store.delete(task_id)
    assert "gone" not in store.queues()


def test_an_idempotency_key_is_kept_while_its_task_exists_even_past_the_retention_period(
    store, clock, policy
):
    # Given a task delayed for longer than the retention period, created with a key
    request = NewTask(
        b'{"o":1}', delay=policy.retention_seconds * 2, idempotency_key="k", fingerprint=b"f"
    )
    first = store.enqueue_many([request])[0]

    # When the same request comes again after the key's own term
    clock.advance(policy.retention_seconds + 1)
    again = store.enqueue_many([request])[0]

    # Then it is still recognised: no duplicate task
    assert (again.task_id, again.created) == (first.task_id, False)
    assert store.stats()[TaskStatus.SCHEDULED] == 1


def test_deleting_every_task_of_many_priorities_leaves_no_levels_behind(memory_store):
    ids = [memory_store.enqueue(NewTask(b"{}", priority=p)).id for p in range(500)]
    for task_id in ids[1:]:
        memory_store.delete(task_id)
    assert len(memory_store._pending["default"]._levels) == 1
    assert [task.id for task in memory_store.view(10)[0]] == ids[:1]


def test_a_heap_is_read_in_order_lazily():
    for size in range(60):
        heap = [(random.randrange(100), str(n)) for n in range(size)]
        heapq.heapify(heap)
        assert list(_heap_in_order(heap)) == sorted(heap)
