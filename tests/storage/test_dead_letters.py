"""Dead-letter queues in every store: a task of a queue with a `dead_letter_queue` that would
become failed moves there as pending, keeping its id and last error, with fresh attempts and
`dead_lettered_from` set, and is counted as dead-lettered rather than failed."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FakeClock
from tornado_queue.models import Event, NewTask, TaskStatus
from tornado_queue.storage import Policy, SqliteStore
from tornado_queue.storage.base import RETIRED


def totals_of(store, queue: str) -> dict[Event, int]:
    return store.totals().get(queue, dict.fromkeys(Event, 0))


def test_a_task_failed_for_good_moves_to_the_dead_letter_queue(store):
    store.configure("emails", {"dead_letter_queue": "emails-dead"})
    task = store.enqueue(NewTask(payload=b'{"to":"x"}', queue="emails", max_attempts=5))
    leased = store.dequeue(queue="emails")

    moved = store.fail(task.id, "bounced", retry=False, lease_id=leased.lease_id)

    assert (moved.id, moved.queue, moved.status) == (task.id, "emails-dead", TaskStatus.PENDING)
    assert (moved.attempts, moved.max_attempts, moved.error) == (0, 5, "bounced")
    assert moved.dead_lettered_from == "emails"
    assert moved.lease_id is None and moved.finished_at is None
    assert store.stats("emails-dead")[TaskStatus.PENDING] == 1
    assert store.stats("emails")[TaskStatus.FAILED] == 0
    again = store.dequeue(queue="emails-dead")
    assert again.id == task.id and again.payload == b'{"to":"x"}'


def test_attempts_used_up_and_a_last_lost_lease_dead_letter_too(store, clock: FakeClock):
    store.configure("default", {"dead_letter_queue": "dead", "retry_backoff": 0})
    store.enqueue(NewTask(payload=b"{}", delay=3600))  # keeps the queue (and its totals) in use
    by_fail = store.enqueue(NewTask(payload=b"{}", max_attempts=1))
    leased = store.dequeue()
    store.fail(leased.id, "broken", lease_id=leased.lease_id)  # retry asked, none left
    by_lease = store.enqueue(NewTask(payload=b"{}", max_attempts=1))
    store.dequeue()

    clock.advance(31)
    store.reap()

    assert store.get(by_fail.id).queue == "dead"
    lost = store.get(by_lease.id)
    assert (lost.queue, lost.status, lost.error) == ("dead", TaskStatus.PENDING, "lease expired")
    assert lost.started_at is None and lost.lease_expires_at is None
    totals = totals_of(store, "default")
    assert (totals[Event.DEAD_LETTERED], totals[Event.FAILED]) == (2, 0)


def test_a_queue_emptied_by_dead_lettering_keeps_its_totals(store):
    store.configure("jobs", {"dead_letter_queue": "dead"})
    store.enqueue(NewTask(payload=b"{}", queue="jobs"))
    leased = store.dequeue(queue="jobs")
    store.fail(leased.id, "no", retry=False, lease_id=leased.lease_id)

    assert "jobs" in store.queues()  # kept by its setting, with no task
    assert store.stats("jobs") == dict.fromkeys(TaskStatus, 0)
    totals = store.totals()
    dead_lettered = totals.get("jobs", {}).get(Event.DEAD_LETTERED, 0)
    dead_lettered += totals.get(RETIRED, {}).get(Event.DEAD_LETTERED, 0)
    assert dead_lettered == 1


def test_without_a_dead_letter_queue_a_dead_task_stays_failed(store):
    store.enqueue(NewTask(payload=b"{}"))
    leased = store.dequeue()
    failed = store.fail(leased.id, "no", retry=False, lease_id=leased.lease_id)
    assert (failed.queue, failed.status, failed.dead_lettered_from) == (
        "default",
        TaskStatus.FAILED,
        None,
    )
    assert totals_of(store, "default")[Event.FAILED] == 1


def test_a_task_dead_in_the_dead_letter_queue_too_fails_there(store):
    store.configure("default", {"dead_letter_queue": "dead"})
    store.enqueue(NewTask(payload=b"{}"))
    leased = store.dequeue()
    store.fail(leased.id, "first", retry=False, lease_id=leased.lease_id)
    again = store.dequeue(queue="dead")

    final = store.fail(again.id, "second", retry=False, lease_id=again.lease_id)

    assert (final.queue, final.status, final.error) == ("dead", TaskStatus.FAILED, "second")
    assert final.dead_lettered_from == "default"


def test_a_dead_lettered_task_keeps_its_group_and_waits_its_turn_there(store):
    store.configure("default", {"dead_letter_queue": "dead"})
    store.enqueue(NewTask(payload=b'{"n":1}', queue="dead", group="G"))
    store.enqueue(NewTask(payload=b'{"n":2}', group="G"))
    leased = store.dequeue()
    store.fail(leased.id, "no", retry=False, lease_id=leased.lease_id)

    first = store.dequeue(queue="dead")
    assert first.payload == b'{"n":1}'
    assert store.dequeue(queue="dead") is None  # behind the group's head in its new queue
    store.complete(first.id, None, first.lease_id)
    assert store.dequeue(queue="dead").id == leased.id


def test_sqlite_dead_letters_after_a_restart(tmp_path: Path, clock: FakeClock, policy: Policy):
    first = SqliteStore(tmp_path / "q.db", policy, clock)
    first.configure("default", {"dead_letter_queue": "dead"})
    task = first.enqueue(NewTask(payload=b"{}", max_attempts=1))
    first.dequeue()
    first.close()
    clock.advance(31)

    again = SqliteStore(tmp_path / "q.db", policy, clock)
    try:
        again.reap()
        moved = again.get(task.id)
        assert (moved.queue, moved.dead_lettered_from) == ("dead", "default")
    finally:
        again.close()
