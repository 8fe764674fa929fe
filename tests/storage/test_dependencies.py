"""Task dependencies in every store: a task enqueued with `after` is `waiting` until every
parent is completed, then pending (or scheduled for its delay); a parent that fails for good
or is deleted fails its waiting dependents, naming it, down the chain, in the same operation;
bad parents are refused before anything changes."""

from __future__ import annotations

import pytest

from tests.conftest import FakeClock
from tornado_queue.errors import ValidationError, parent_deleted_error, parent_failed_error
from tornado_queue.limits import MAX_DEPENDENTS
from tornado_queue.models import Event, NewTask, TaskStatus
from tornado_queue.storage.base import EXPIRED_ERROR

WAITING, PENDING, FAILED = TaskStatus.WAITING, TaskStatus.PENDING, TaskStatus.FAILED


def new(*after: str | int, **fields) -> NewTask:
    return NewTask(payload=b"{}", after=after or None, **fields)


def finish(store, task_id: str) -> None:
    """Dequeue the next task, which must be `task_id`, and complete it."""
    task = store.dequeue(queue=store.get(task_id).queue)
    assert task is not None and task.id == task_id
    store.complete(task.id, None, task.lease_id)


def status(store, task_id: str) -> TaskStatus:
    return store.get(task_id).status


def test_a_task_waits_until_its_parent_completes(store):
    parent = store.enqueue(new())
    child = store.enqueue(new(parent.id))

    assert child.status is WAITING
    assert (child.extras.after, child.extras.waiting_on) == ((parent.id,), 1)
    assert store.stats()[WAITING] == 1
    assert store.get(parent.id).extras.dependents == [child.id]

    finish(store, parent.id)

    assert status(store, child.id) is PENDING
    assert store.stats()[WAITING] == 0
    assert store.dequeue().id == child.id


def test_a_task_waits_for_every_parent_and_its_delay_runs_after(store, clock: FakeClock):
    first, second = store.enqueue(new()), store.enqueue(new())
    child = store.enqueue(new(first.id, second.id, delay=30))

    finish(store, first.id)
    assert status(store, child.id) is WAITING
    clock.advance(100)
    finish(store, second.id)

    released = store.get(child.id)
    assert released.status is TaskStatus.SCHEDULED
    assert released.available_at == clock.time() + 30
    clock.advance(30)
    assert store.dequeue().id == child.id


def test_a_completed_parent_counts_as_done(store):
    parent = store.enqueue(new())
    finish(store, parent.id)
    child = store.enqueue(new(parent.id))
    assert child.status is PENDING


def test_a_parents_failure_fails_its_dependents_down_the_chain(store):
    root = store.enqueue(new(max_attempts=1))
    child = store.enqueue(new(root.id))
    grandchild = store.enqueue(new(child.id))
    other = store.enqueue(new())
    unrelated = store.enqueue(new(other.id))

    task = store.dequeue()
    store.fail(task.id, "boom", True, task.lease_id)  # no attempt left: dead

    assert store.get(child.id).status is FAILED
    assert store.get(child.id).error == parent_failed_error(root.id)
    assert store.get(grandchild.id).error == parent_failed_error(child.id)
    assert status(store, unrelated.id) is WAITING
    assert store.totals()["default"][Event.FAILED] == 3


def test_deleting_a_parent_fails_its_dependents(store):
    parent = store.enqueue(new(delay=60))
    child = store.enqueue(new(parent.id))
    grandchild = store.enqueue(new(child.id))

    store.delete(parent.id)

    assert store.get(child.id).error == parent_deleted_error(parent.id)
    assert store.get(grandchild.id).error == parent_failed_error(child.id)
    assert store.stats()[FAILED] == 2


def test_purging_waiting_tasks_fails_what_waits_for_them(store):
    parent = store.enqueue(new())
    child = store.enqueue(new(parent.id))
    grandchild = store.enqueue(new(child.id))

    assert store.purge("default", WAITING, 1) == 1

    assert store.get(grandchild.id) is None  # the newest waiting task goes first
    assert status(store, child.id) is WAITING
    assert store.purge("default", WAITING, 10) == 1
    assert store.get(child.id) is None and status(store, parent.id) is PENDING


def test_a_dead_lettered_parent_still_holds_its_dependents(store):
    store.configure("default", {"dead_letter_queue": "dead"})
    parent = store.enqueue(new(max_attempts=1))
    child = store.enqueue(new(parent.id))
    task = store.dequeue()
    store.fail(task.id, "boom", False, task.lease_id)

    assert status(store, parent.id) is PENDING and store.get(parent.id).queue == "dead"
    assert status(store, child.id) is WAITING
    finish(store, parent.id)
    assert status(store, child.id) is PENDING


def test_an_expiring_parent_fails_its_dependents(store, clock: FakeClock):
    parent = store.enqueue(new(expires_in=10))
    child = store.enqueue(new(parent.id))
    clock.advance(10)
    store.reap()
    assert store.get(parent.id).error == EXPIRED_ERROR
    assert store.get(child.id).error == parent_failed_error(parent.id)


def test_a_waiting_task_can_expire(store, clock: FakeClock):
    parent = store.enqueue(new())
    child = store.enqueue(new(parent.id, expires_in=10))
    clock.advance(10)
    store.reap()
    assert (status(store, child.id), store.get(child.id).error) == (FAILED, EXPIRED_ERROR)
    finish(store, parent.id)
    assert status(store, child.id) is FAILED


def test_a_batch_is_a_workflow_fan_out_and_fan_in(store):
    outcomes = store.enqueue_many([new(), new(0), new(0), new(1, 2)])
    root, left, right, join = (outcome.task_id for outcome in outcomes)

    assert [outcome.task.status for outcome in outcomes] == [PENDING, WAITING, WAITING, WAITING]
    assert store.get(join).extras.after == (left, right)
    assert store.get(root).extras.dependents == [left, right]

    finish(store, root)
    taken = store.dequeue_many(2)
    assert {task.id for task in taken} == {left, right}
    store.complete(taken[0].id, None, taken[0].lease_id)
    assert status(store, join) is WAITING
    store.complete(taken[1].id, None, taken[1].lease_id)
    assert store.dequeue().id == join


@pytest.mark.parametrize("case", ["unknown", "failed"])
def test_bad_parents_are_refused_and_nothing_changes(store, case: str):
    known = store.enqueue(new(max_attempts=1))
    task = store.dequeue()
    store.fail(task.id, None, False, task.lease_id)
    parent = "no-such-task" if case == "unknown" else known.id
    before = store.stats()

    with pytest.raises(ValidationError, match=rf"tasks\[1\]\.after names task '{parent}'"):
        store.enqueue_many([new(), new(parent)])
    with pytest.raises(ValidationError, match=f"field 'after' names task '{parent}'"):
        store.enqueue(new(parent))

    assert store.stats() == before


def test_an_index_and_an_id_naming_one_task_are_refused(store):
    first = store.enqueue(NewTask(payload=b"{}", idempotency_key="k"))
    before = store.stats()
    # item 0 replays the key's first task, so "#0" and that task's id name one task twice
    batch = [NewTask(payload=b"{}", idempotency_key="k"), new(first.id, 0)]

    with pytest.raises(ValidationError, match=r"tasks\[1\]\.after names task .* twice"):
        store.enqueue_many(batch)
    assert store.stats() == before


def test_an_index_names_the_task_an_idempotent_item_stands_for(store):
    first = store.enqueue(NewTask(payload=b"{}", idempotency_key="k"))
    outcomes = store.enqueue_many([NewTask(payload=b"{}", idempotency_key="k"), new(0)])
    assert outcomes[0].task_id == first.id and not outcomes[0].created
    assert outcomes[1].task.extras.after == (first.id,)
    assert store.get(first.id).extras.dependents == [outcomes[1].task_id]


def test_a_parent_has_at_most_so_many_dependents(store):
    parent = store.enqueue(new())
    store.enqueue_many([new(parent.id) for _ in range(MAX_DEPENDENTS)])
    with pytest.raises(ValidationError, match=f"already has {MAX_DEPENDENTS} dependents"):
        store.enqueue(new(parent.id))
    assert store.stats()[WAITING] == MAX_DEPENDENTS


def test_waiting_tasks_are_listed_most_recent_first(store):
    parent = store.enqueue(new())
    children = [store.enqueue(new(parent.id)).id for _ in range(3)]
    page, total = store.view(2, 0, "default", WAITING)
    assert [task.id for task in page] == children[::-1][:2] and total == 3


def test_a_dependent_in_a_group_joins_it_when_released(store):
    parent = store.enqueue(new())
    child = store.enqueue(new(parent.id, group="g"))
    later = store.enqueue(new(group="g"))
    assert store.dequeue().id == parent.id  # the group's head is `later`, not the waiting child
    assert store.dequeue().id == later.id
    finish_task = store.get(parent.id)
    store.complete(parent.id, None, finish_task.lease_id)
    assert status(store, child.id) is PENDING
    assert store.dequeue() is None  # behind `later`, still processing
