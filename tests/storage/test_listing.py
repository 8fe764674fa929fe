"""Every store: listing processing and failed tasks (most recent first, paged) and the event
totals per queue that throughput and metrics are read from."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support import enqueue, new_task
from tornado_queue.models import Event, NewTask, TaskStatus
from tornado_queue.storage import Policy, SqliteStore
from tornado_queue.storage.base import RETIRED

PROCESSING, FAILED, PENDING = TaskStatus.PROCESSING, TaskStatus.FAILED, TaskStatus.PENDING


def ids(page: tuple[list, int]) -> list[str]:
    return [task.id for task in page[0]]


def events(**counts: int) -> dict[Event, int]:
    return {event: counts.get(event.value, 0) for event in Event}


# --- listing ---------------------------------------------------------------------------------


def test_processing_tasks_are_listed_most_recently_leased_first(store, clock):
    first, second, third = enqueue(store, 3)
    for _ in range(3):
        store.dequeue()
        clock.advance(1)

    assert ids(store.view(10, status=PROCESSING)) == [third, second, first]
    assert store.view(10, status=PROCESSING)[1] == 3


def test_a_page_of_processing_tasks_honours_limit_and_offset(store):
    tasks = enqueue(store, 5)
    store.dequeue_many(5)

    page, total = store.view(2, offset=1, status=PROCESSING)

    assert [task.id for task in page] == [tasks[3], tasks[2]]
    assert total == 5
    assert all(task.status is PROCESSING and task.lease_id for task in page)


def test_a_task_leaves_the_processing_list_when_completed_failed_released_or_expired(store, clock):
    done, failed, released, expired, kept = enqueue(store, 5)
    leases = {task.id: task.lease_id for task in store.dequeue_many(5)}
    store.complete(done, lease_id=leases[done])
    store.fail(failed, "boom", retry=True, lease_id=leases[failed])
    store.release(released, lease_id=leases[released])
    clock.advance(20)
    store.heartbeat(kept, lease_id=leases[kept])
    clock.advance(15)  # past every other lease

    assert store.get(expired).status is PENDING
    assert ids(store.view(10, status=PROCESSING)) == [kept]


def test_failed_tasks_are_listed_most_recently_failed_first(store, clock):
    first, second = enqueue(store, 2)
    leases = {task.id: task.lease_id for task in store.dequeue_many(2)}
    store.fail(second, "no", retry=False, lease_id=leases[second])
    clock.advance(1)
    store.fail(first, "no", retry=False, lease_id=leases[first])

    page, total = store.view(10, status=FAILED)

    assert [task.id for task in page] == [first, second]
    assert [task.error for task in page] == ["no", "no"]
    assert total == 2


def test_a_task_whose_last_lease_expires_is_listed_as_failed(store, clock):
    task = store.enqueue(new_task(max_attempts=1))
    store.dequeue()
    clock.advance(31)

    assert ids(store.view(10, status=FAILED)) == [task.id]
    assert store.view(10, status=PROCESSING) == ([], 0)


def test_retried_deleted_and_forgotten_tasks_leave_the_failed_list(store, clock):
    retried, deleted, forgotten, kept = enqueue(store, 4)
    leases = {task.id: task.lease_id for task in store.dequeue_many(3)}
    for task_id in (retried, deleted, forgotten):
        store.fail(task_id, retry=False, lease_id=leases[task_id])
    store.retry(retried)
    store.delete(deleted)
    clock.advance(3599)
    kept_lease = store.dequeue().lease_id  # `retried` went to the tail: `kept` is first
    store.fail(kept, retry=False, lease_id=kept_lease)
    clock.advance(2)  # `forgotten` is past its retention, `kept` is not

    assert store.get(forgotten) is None
    assert ids(store.view(10, status=FAILED)) == [kept]


def test_a_task_retried_then_failed_again_is_listed_once_at_the_front(store, clock):
    again, other = enqueue(store, 2)
    leases = {task.id: task.lease_id for task in store.dequeue_many(2)}
    store.fail(again, retry=False, lease_id=leases[again])
    store.fail(other, retry=False, lease_id=leases[other])
    store.retry(again)
    store.fail(again, retry=False, lease_id=store.dequeue().lease_id)

    assert ids(store.view(10, status=FAILED)) == [again, other]


def test_listings_are_per_queue(store):
    mine = store.enqueue(NewTask(payload=b"{}", queue="mine"))
    store.enqueue(NewTask(payload=b"{}", queue="theirs"))
    store.dequeue(queue="mine")
    store.dequeue(queue="theirs")

    assert ids(store.view(10, queue="mine", status=PROCESSING)) == [mine.id]
    assert store.view(10, queue="nobody", status=PROCESSING) == ([], 0)
    assert store.view(10, queue="nobody", status=FAILED) == ([], 0)


def test_the_pending_view_is_unchanged_by_the_status_argument(store):
    tasks = enqueue(store, 3)

    assert ids(store.view(10, status=PENDING)) == tasks == ids(store.view(10))


# --- totals ----------------------------------------------------------------------------------


def test_totals_start_empty(store):
    assert store.totals() == {}


def test_totals_count_each_event_per_queue(store, clock):
    enqueue(store, 3)  # default queue
    store.enqueue(NewTask(payload=b"{}", queue="other"))
    completed, failed, expired = (task.id for task in store.dequeue_many(3))
    leases = {task.id: task.lease_id for task in [store.get(completed), store.get(failed)]}
    store.complete(completed, lease_id=leases[completed])
    store.fail(failed, retry=False, lease_id=leases[failed])
    clock.advance(31)  # `expired`'s lease runs out: back to pending, one lease_expired

    assert store.get(expired).status is PENDING
    assert store.totals() == {
        "default": events(enqueued=3, completed=1, failed=1, lease_expired=1),
        "other": events(enqueued=1),
    }


def test_a_retried_failure_or_a_release_is_not_a_failed_event(store):
    first, second = enqueue(store, 2)
    leases = {task.id: task.lease_id for task in store.dequeue_many(2)}
    store.fail(first, "try again", retry=True, lease_id=leases[first])
    store.release(second, lease_id=leases[second])

    assert store.totals()["default"] == events(enqueued=2)


def test_a_last_lease_expiring_counts_as_lease_expired_and_failed(store, clock):
    store.enqueue(new_task(max_attempts=1))
    store.dequeue()
    clock.advance(31)

    assert store.totals()["default"] == events(enqueued=1, failed=1, lease_expired=1)


def test_an_idempotent_replay_is_not_counted_again(store):
    request = NewTask(payload=b"{}", idempotency_key="k", fingerprint=b"f")
    store.enqueue(request)
    store.enqueue(request)
    store.enqueue_many([NewTask(payload=b"{}") for _ in range(4)])

    assert store.totals()["default"] == events(enqueued=5)


def test_a_queue_that_empties_folds_its_totals_into_retired(store, clock):
    task = store.enqueue(NewTask(payload=b"{}", queue="short"))
    store.complete(task.id, lease_id=store.dequeue(queue="short").lease_id)
    store.enqueue(NewTask(payload=b"{}", queue="kept"))
    clock.advance(3601)  # forgotten: "short" holds nothing and is no longer listed

    totals = store.totals()
    assert "short" not in store.queues()
    assert set(totals) == {"kept", RETIRED}
    assert totals[RETIRED] == events(enqueued=1, completed=1)
    assert totals["kept"] == events(enqueued=1)


def test_a_deleted_last_task_retires_its_queue_and_a_new_use_counts_from_zero(store):
    task = store.enqueue(NewTask(payload=b"{}", queue="once"))
    store.delete(task.id)
    store.enqueue(NewTask(payload=b"{}", queue="once"))

    totals = store.totals()
    assert totals["once"] == events(enqueued=1)
    assert totals[RETIRED] == events(enqueued=1)


def test_many_short_lived_queue_names_leave_bounded_totals(store):
    for number in range(300):
        task = store.enqueue(NewTask(payload=b"{}", queue=f"q{number}"))
        store.delete(task.id)

    assert set(store.totals()) == {RETIRED}
    assert store.totals()[RETIRED] == events(enqueued=300)


def test_sqlite_keeps_totals_and_listings_across_a_restart(tmp_path: Path, clock):
    policy = Policy()
    first = SqliteStore(tmp_path / "q.db", policy, clock)
    done, dead, held = enqueue(first, 3)
    leases = {task.id: task.lease_id for task in first.dequeue_many(3)}
    first.complete(done, lease_id=leases[done])
    first.fail(dead, retry=False, lease_id=leases[dead])
    first.close()

    again = SqliteStore(tmp_path / "q.db", policy, clock)
    try:
        assert again.totals()["default"] == events(enqueued=3, completed=1, failed=1)
        assert ids(again.view(10, status=FAILED)) == [dead]
        assert ids(again.view(10, status=PROCESSING)) == [held]
    finally:
        again.close()


def test_sqlite_opens_a_database_made_before_listings_existed(tmp_path: Path, clock):
    path = tmp_path / "old.db"
    store = SqliteStore(path, Policy(), clock)
    task = store.enqueue(new_task())
    store.close()

    with sqlite3.connect(path) as db:  # as an older version left it: none of the newer columns
        for index in ("listing_order", "ready_order", "waiting_order", "group_order"):
            db.execute(f"DROP INDEX {index}")
        db.execute("DROP INDEX expiry_order")
        for column in (
            *("moved", "grp", "expires_at", "dead_lettered_from", "backoff", "blocked"),
            *("parents", "dependents", "waiting_on", "hold"),
        ):
            db.execute(f"ALTER TABLE tasks DROP COLUMN {column}")

        db.execute(
            "CREATE INDEX pending_order ON tasks (queue, priority DESC, seq) "
            "WHERE status = 'pending'"
        )

    reopened = SqliteStore(path, Policy(), clock)
    try:
        leased = reopened.dequeue()
        assert leased.id == task.id
        assert ids(reopened.view(10, status=PROCESSING)) == [task.id]
        indexes = {row[0] for row in reopened._db.execute("SELECT name FROM sqlite_master")}
        assert "pending_order" not in indexes and "ready_order" in indexes
        assert "listing_order" in indexes
    finally:
        reopened.close()


@pytest.mark.parametrize("status", list(TaskStatus))
def test_sqlite_pages_walk_an_index_not_the_table(tmp_path: Path, clock, status):
    store = SqliteStore(tmp_path / "plan.db", Policy(), clock)
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        store.view(10, status=status)
        page_queries = [sql for sql in statements if "OFFSET" in sql]
        plans = [
            " ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {query}"))
            for query in page_queries
        ]
    finally:
        store._db.set_trace_callback(None)
        store.close()

    # Pending: the deliverable ones in dequeue order, then those waiting behind a group's head.
    indexes = ["ready_order", "waiting_order"] if status is PENDING else ["listing_order"]
    assert len(plans) == len(indexes)
    for plan, index in zip(plans, indexes, strict=True):
        assert f"USING INDEX {index}" in plan
        assert "TEMP B-TREE" not in plan
