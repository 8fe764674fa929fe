"""MemoryStore: the state machine, queue order, paging, counters, snapshots and ready listeners."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from tests.support import enqueue, expected_stats, new_task
from tornado_queue.errors import InvalidTransition, TaskNotFound
from tornado_queue.models import NewTask, Task, TaskStatus
from tornado_queue.storage import MemoryStore, Store

# --- enqueue / get ---------------------------------------------------------------------------


def test_enqueue_returns_a_pending_snapshot_with_a_uuid4_id_and_the_clock_time(store, clock):
    task = store.enqueue(NewTask(payload=b'{"job":"resize"}'))

    assert uuid.UUID(task.id).version == 4
    assert str(uuid.UUID(task.id)) == task.id
    assert task.status is TaskStatus.PENDING
    assert task.payload == b'{"job":"resize"}'
    assert task.created_at == clock.now
    assert task.available_at == clock.now
    assert task.attempts == 0
    assert task.started_at is None
    assert task.finished_at is None


def test_enqueue_gives_every_task_a_distinct_id(store):
    ids = enqueue(store, 200)

    assert len(set(ids)) == 200


def test_enqueue_stamps_each_task_with_the_clock_time_of_its_own_enqueue(store, clock):
    first = store.enqueue(new_task(1))
    clock.advance(12.5)
    second = store.enqueue(new_task(2))

    assert second.created_at - first.created_at == 12.5
    assert store.get(first.id).created_at == first.created_at


def test_get_returns_the_stored_task(store):
    created = store.enqueue(new_task(7))

    fetched = store.get(created.id)

    assert fetched is not None
    assert fetched.id == created.id
    assert fetched.payload == b'{"n":7}'
    assert fetched.status is TaskStatus.PENDING


def test_get_of_an_unknown_id_returns_none(store):
    store.enqueue(new_task())

    assert store.get(str(uuid.uuid4())) is None
    assert store.get("not-a-uuid") is None


# --- dequeue ---------------------------------------------------------------------------------


def test_dequeue_serves_tasks_in_fifo_order(store):
    ids = enqueue(store, 5)

    served = [store.dequeue().id for _ in range(5)]

    assert served == ids


def test_dequeue_marks_the_task_processing_counts_the_attempt_and_stamps_started_at(store, clock):
    created = store.enqueue(new_task())
    clock.advance(3.0)

    task = store.dequeue()

    assert task.id == created.id
    assert task.status is TaskStatus.PROCESSING
    assert task.attempts == 1
    assert task.started_at == created.created_at + 3.0
    stored = store.get(created.id)
    assert stored.status is TaskStatus.PROCESSING
    assert stored.attempts == 1
    assert stored.started_at == clock.now


def test_dequeue_on_an_empty_store_returns_none(store):
    assert store.dequeue() is None


def test_dequeue_returns_none_once_every_task_has_been_taken(store):
    enqueue(store, 2)
    store.dequeue()
    store.dequeue()

    assert store.dequeue() is None
    assert store.stats() == expected_stats(processing=2)


# --- complete --------------------------------------------------------------------------------


def test_complete_moves_a_processing_task_to_completed_with_finished_at(store, clock):
    created = store.enqueue(new_task())
    store.dequeue()
    clock.advance(4.0)

    task = store.complete(created.id)

    assert task.status is TaskStatus.COMPLETED
    assert task.finished_at == clock.now
    assert task.attempts == 1
    assert store.get(created.id).status is TaskStatus.COMPLETED
    assert store.get(created.id).finished_at == clock.now


def test_complete_of_an_unknown_id_raises_task_not_found(store):
    unknown = str(uuid.uuid4())

    with pytest.raises(TaskNotFound) as caught:
        store.complete(unknown)

    assert caught.value.task_id == unknown
    assert unknown in str(caught.value)


def test_complete_of_a_pending_task_raises_invalid_transition_naming_the_state(store):
    created = store.enqueue(new_task())

    with pytest.raises(InvalidTransition, match="pending"):
        store.complete(created.id)

    assert store.get(created.id).status is TaskStatus.PENDING
    assert store.stats() == expected_stats(pending=1)


def test_complete_of_a_completed_task_raises_invalid_transition_naming_the_state(store, clock):
    created = store.enqueue(new_task())
    store.dequeue()
    first = store.complete(created.id)
    clock.advance(10.0)

    with pytest.raises(InvalidTransition, match="completed"):
        store.complete(created.id)

    # The failed second attempt changed nothing.
    assert store.get(created.id).finished_at == first.finished_at
    assert store.stats() == expected_stats(completed=1)


# --- release ---------------------------------------------------------------------------------


def test_release_makes_a_processing_task_pending_again_keeping_its_attempts(store):
    created = store.enqueue(new_task())
    store.dequeue()

    released = store.release(created.id)

    assert released.status is TaskStatus.PENDING
    assert released.attempts == 1
    assert store.get(created.id).status is TaskStatus.PENDING
    assert store.stats() == expected_stats(pending=1)


def test_release_puts_the_task_at_the_head_of_the_queue(store):
    # Given A, B, C enqueued and A taken
    a, b, c = enqueue(store, 3)
    assert store.dequeue().id == a
    # and D enqueued after that
    d = store.enqueue(new_task(3)).id

    # When A is released
    store.release(a)

    # Then A is served next, before the tasks that waited behind it
    assert [task.id for task in store.view(10)[0]] == [a, b, c, d]
    assert [store.dequeue().id for _ in range(4)] == [a, b, c, d]


def test_a_released_task_dequeued_again_counts_a_second_attempt(store, clock):
    created = store.enqueue(new_task())
    store.dequeue()
    store.release(created.id)
    clock.advance(60.0)

    again = store.dequeue()

    assert again.id == created.id
    assert again.attempts == 2
    assert again.started_at == clock.now


def test_release_of_an_unknown_id_raises_task_not_found(store):
    with pytest.raises(TaskNotFound):
        store.release(str(uuid.uuid4()))


@pytest.mark.parametrize("state", ["pending", "completed"])
def test_release_of_a_task_that_is_not_processing_raises_invalid_transition(store, state):
    created = store.enqueue(new_task())
    if state == "completed":
        store.dequeue()
        store.complete(created.id)
    before = store.stats()

    with pytest.raises(InvalidTransition, match=state):
        store.release(created.id)

    assert store.stats() == before
    assert store.view(10)[1] == before[TaskStatus.PENDING]


# --- view ------------------------------------------------------------------------------------


def test_view_lists_pending_tasks_in_dequeue_order_with_the_pending_total(store):
    ids = enqueue(store, 5)
    store.dequeue()  # the first one is processing now: not in the view

    tasks, total = store.view(100)

    assert [task.id for task in tasks] == ids[1:]
    assert all(task.status is TaskStatus.PENDING for task in tasks)
    assert total == 4


def test_view_pages_with_limit_and_offset_while_total_counts_every_pending_task(store):
    ids = enqueue(store, 10)

    pages = [store.view(3, offset) for offset in (0, 3, 6, 9)]

    assert [[task.id for task in page] for page, _ in pages] == [
        ids[0:3],
        ids[3:6],
        ids[6:9],
        ids[9:10],
    ]
    assert {total for _, total in pages} == {10}


def test_view_past_the_end_or_with_limit_zero_is_empty_but_still_reports_the_total(store):
    enqueue(store, 3)

    assert store.view(5, offset=3) == ([], 3)
    assert store.view(5, offset=100) == ([], 3)
    assert store.view(0) == ([], 3)


def test_view_of_an_empty_store_is_empty(store):
    assert store.view(1000) == ([], 0)


# --- stats -----------------------------------------------------------------------------------


def test_stats_has_every_state_with_zero_counts_on_a_new_store(store):
    stats = store.stats()

    assert set(stats) == set(TaskStatus)
    assert stats == expected_stats()


def test_stats_follow_every_transition(store):
    a, b, c = enqueue(store, 3)
    assert store.stats() == expected_stats(pending=3)

    store.dequeue()
    assert store.stats() == expected_stats(pending=2, processing=1)

    store.dequeue()
    assert store.stats() == expected_stats(pending=1, processing=2)

    store.complete(a)
    assert store.stats() == expected_stats(pending=1, processing=1, completed=1)

    store.release(b)
    assert store.stats() == expected_stats(pending=2, completed=1)

    store.dequeue()  # b again
    store.complete(b)
    assert store.stats() == expected_stats(pending=1, completed=2)
    tasks, total = store.view(10)
    assert [task.id for task in tasks] == [c]
    assert total == 1


def test_stats_returns_a_copy_the_caller_cannot_use_to_corrupt_the_counters(store):
    store.enqueue(new_task())
    stats = store.stats()

    stats[TaskStatus.PENDING] = 99

    assert store.stats() == expected_stats(pending=1)


# --- snapshots -------------------------------------------------------------------------------


def test_a_task_returned_by_enqueue_is_a_snapshot(store):
    task = store.enqueue(new_task())

    task.status = TaskStatus.COMPLETED
    task.payload = b"{}"
    task.attempts = 42

    stored = store.get(task.id)
    assert stored.status is TaskStatus.PENDING
    assert stored.payload == b'{"n":0}'
    assert stored.attempts == 0
    assert store.dequeue().id == task.id


def test_tasks_returned_by_get_dequeue_view_and_complete_are_snapshots(store):
    created = store.enqueue(new_task())
    store.enqueue(new_task(1))

    viewed = store.view(10)[0][0]
    viewed.status = TaskStatus.FAILED
    fetched = store.get(created.id)
    fetched.attempts = 7
    dequeued = store.dequeue()
    dequeued.status = TaskStatus.PENDING  # would let a second complete pass if it were live
    completed = store.complete(created.id)
    completed.finished_at = None

    stored = store.get(created.id)
    assert stored.status is TaskStatus.COMPLETED
    assert stored.attempts == 1
    assert stored.finished_at is not None
    with pytest.raises(InvalidTransition):
        store.complete(created.id)


def test_a_snapshot_does_not_follow_later_changes_in_the_store(store):
    created = store.enqueue(new_task())

    store.dequeue()

    assert created.status is TaskStatus.PENDING
    assert created.attempts == 0


# --- ready listeners -------------------------------------------------------------------------


def test_ready_listeners_are_called_with_one_on_enqueue_and_release_only(store):
    calls: list[tuple[str, int]] = []
    others: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: calls.append((queue, count)))
    store.add_ready_listener(lambda queue, count: others.append((queue, count)))

    created = store.enqueue(new_task())
    assert calls == [("default", 1)]

    store.dequeue()
    store.get(created.id)
    store.view(10)
    store.stats()
    assert calls == [("default", 1)]

    store.release(created.id)
    assert calls == [("default", 1), ("default", 1)]

    store.dequeue()
    store.complete(created.id)
    assert calls == [("default", 1), ("default", 1)]
    assert others == calls


def test_failed_transitions_do_not_call_ready_listeners(store):
    calls: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: calls.append((queue, count)))
    created = store.enqueue(new_task())

    with pytest.raises(InvalidTransition):
        store.release(created.id)
    with pytest.raises(TaskNotFound):
        store.release(str(uuid.uuid4()))

    assert calls == [("default", 1)]


def test_a_ready_listener_runs_outside_the_store_lock_and_may_call_the_store(store):
    # A listener that reads the store would deadlock if it ran under the store's lock.
    seen: list[dict[TaskStatus, int]] = []
    store.add_ready_listener(lambda queue, count: seen.append(store.stats()))

    def enqueue_and_release() -> None:
        created = store.enqueue(new_task())
        store.dequeue()
        store.release(created.id)

    thread = threading.Thread(target=enqueue_and_release, daemon=True)
    thread.start()
    thread.join(timeout=5)

    assert not thread.is_alive(), "enqueue/release deadlocked calling a ready listener"
    assert seen == [expected_stats(pending=1), expected_stats(pending=1)]


# --- the Store contract ----------------------------------------------------------------------


def test_memory_store_is_not_blocking():
    assert MemoryStore.blocking is False
    assert MemoryStore().blocking is False


def test_a_store_subclass_missing_an_abstract_method_cannot_be_instantiated():
    class Incomplete(Store):
        def enqueue(self, new_task: NewTask) -> Task:
            raise NotImplementedError

        def dequeue(self) -> Task | None:
            return None

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_memory_store_uses_the_wall_clock_by_default():
    before = time.time()
    task = MemoryStore().enqueue(new_task())
    after = time.time()

    assert before <= task.created_at <= after
