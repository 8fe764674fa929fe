"""Purging a queue's tasks in one state, in every store: up to a limit per call, each deleted
as `delete` would (a group's next task takes its turn), never a processing task; and listing
the scheduled and completed tasks of a queue."""

from __future__ import annotations

import pytest

from tests.conftest import FakeClock
from tornado_queue.errors import InvalidTransition
from tornado_queue.models import NewTask, TaskStatus


def fill(store, count: int, queue: str = "default", **fields) -> list[str]:
    made = store.enqueue_many([NewTask(payload=b"{}", queue=queue, **fields)] * count)
    return [outcome.task_id for outcome in made]


@pytest.mark.parametrize(
    "status", [TaskStatus.PENDING, TaskStatus.SCHEDULED, TaskStatus.COMPLETED, TaskStatus.FAILED]
)
def test_a_purge_deletes_the_tasks_of_one_state_and_no_others(store, status):
    leased_ids = fill(store, 2)
    leased = store.dequeue_many(2)
    store.complete(leased[0].id, None, leased[0].lease_id)
    store.fail(leased[1].id, "no", retry=False, lease_id=leased[1].lease_id)
    fill(store, 3)
    fill(store, 2, delay=60)
    fill(store, 1, queue="other")
    processing = store.dequeue()
    before = store.stats("default")

    deleted = store.purge("default", status, 1000)

    after = store.stats("default")
    assert deleted == before[status] and after[status] == 0
    assert {s: n for s, n in after.items() if s is not status} == {
        s: n for s, n in before.items() if s is not status
    }
    assert store.get(processing.id).status is TaskStatus.PROCESSING
    assert store.stats("other")[TaskStatus.PENDING] == 1
    assert all(store.get(task_id) is None or task_id in leased_ids for task_id in leased_ids)


def test_a_purge_stops_at_its_limit(store):
    fill(store, 5)
    assert store.purge("default", TaskStatus.PENDING, 3) == 3
    assert store.stats("default")[TaskStatus.PENDING] == 2
    assert store.purge("default", TaskStatus.PENDING, 3) == 2
    assert store.purge("default", TaskStatus.PENDING, 3) == 0
    assert "default" not in store.queues()


def test_purging_pending_tasks_takes_those_waiting_in_groups_too(store):
    store.enqueue_many([NewTask(payload=b"{}", group="G")] * 3)
    head = store.dequeue()

    assert store.purge("default", TaskStatus.PENDING, 10) == 2

    store.complete(head.id, None, head.lease_id)
    assert store.dequeue() is None
    assert store.stats("default")[TaskStatus.PENDING] == 0


def test_processing_tasks_are_never_purged(store):
    fill(store, 1)
    store.dequeue()
    with pytest.raises(InvalidTransition):
        store.purge("default", TaskStatus.PROCESSING, 10)
    assert store.stats("default")[TaskStatus.PROCESSING] == 1


def test_scheduled_and_completed_tasks_are_listed_most_recent_first(store, clock: FakeClock):
    early, late = fill(store, 1, delay=10)[0], fill(store, 1, delay=20)[0]
    first, second = fill(store, 2)
    for task in store.dequeue_many(2):
        clock.advance(1)
        store.complete(task.id, None, task.lease_id)

    scheduled, total = store.view(10, status=TaskStatus.SCHEDULED)
    assert [task.id for task in scheduled] == [late, early] and total == 2
    completed, total = store.view(10, status=TaskStatus.COMPLETED)
    assert [task.id for task in completed] == [second, first] and total == 2
    assert [task.id for task in store.view(1, 1, status=TaskStatus.COMPLETED)[0]] == [first]
