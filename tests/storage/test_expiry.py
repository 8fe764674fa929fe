"""Expiry in every store: a task is never delivered after its `expires_at` (its own
`expires_in`, else its queue's `ttl_seconds`), not first, not again after a lost lease or a
retry; it becomes failed as expired, is counted as expired, and is never dead-lettered."""

from __future__ import annotations

from tests.conftest import FakeClock
from tornado_queue.models import Event, NewTask, TaskStatus
from tornado_queue.storage.base import EXPIRED_ERROR


def expired_count(store, queue: str = "default") -> int:
    return store.totals().get(queue, {}).get(Event.EXPIRED, 0)


def test_a_pending_task_expires_undelivered(store, clock: FakeClock):
    task = store.enqueue(NewTask(payload=b"{}", expires_in=60))
    assert task.expires_at == clock.time() + 60

    clock.advance(60)

    assert store.dequeue() is None
    expired = store.get(task.id)
    assert (expired.status, expired.error) == (TaskStatus.FAILED, EXPIRED_ERROR)
    assert expired.attempts == 0 and expired.finished_at == clock.time()
    assert expired_count(store) == 1
    assert store.totals()["default"][Event.FAILED] == 0


def test_a_task_is_delivered_until_its_expiry(store, clock: FakeClock):
    task = store.enqueue(NewTask(payload=b"{}", expires_in=60))
    clock.advance(59.9)
    assert store.dequeue().id == task.id


def test_a_queues_ttl_is_the_default_and_a_tasks_own_expiry_wins(store, clock: FakeClock):
    before = store.enqueue(NewTask(payload=b"{}"))
    store.configure("default", {"ttl_seconds": 100.0})
    by_queue = store.enqueue(NewTask(payload=b"{}"))
    own = store.enqueue(NewTask(payload=b"{}", expires_in=10))

    assert before.expires_at is None
    assert by_queue.expires_at == clock.time() + 100
    assert own.expires_at == clock.time() + 10


def test_a_scheduled_task_can_expire_before_it_is_ready(store, clock: FakeClock):
    task = store.enqueue(NewTask(payload=b"{}", delay=100, expires_in=50))
    clock.advance(100)
    assert store.dequeue() is None
    assert store.get(task.id).error == EXPIRED_ERROR


def test_a_processing_task_runs_on_but_is_never_delivered_again(store, clock: FakeClock):
    done = store.enqueue(NewTask(payload=b"{}", expires_in=10))
    lost = store.enqueue(NewTask(payload=b"{}", expires_in=10))
    retried = store.enqueue(NewTask(payload=b"{}", expires_in=10))
    released = store.enqueue(NewTask(payload=b"{}", expires_in=10))
    leases = {task.id: task.lease_id for task in store.dequeue_many(4, lease_seconds=20)}
    clock.advance(15)  # past their expiry, inside their lease

    assert store.complete(done.id, None, leases[done.id]).status is TaskStatus.COMPLETED
    failed = store.fail(retried.id, "again", retry=True, lease_id=leases[retried.id])
    assert (failed.status, failed.error) == (TaskStatus.FAILED, EXPIRED_ERROR)
    back = store.release(released.id, leases[released.id])
    assert back.status is TaskStatus.FAILED
    clock.advance(10)  # the last lease runs out
    store.reap()

    assert store.get(lost.id).status is TaskStatus.FAILED
    assert store.dequeue() is None
    assert expired_count(store) == 3


def test_an_expired_task_is_not_dead_lettered(store, clock: FakeClock):
    store.configure("default", {"dead_letter_queue": "dead"})
    task = store.enqueue(NewTask(payload=b"{}", expires_in=5))
    clock.advance(5)
    store.reap()
    assert store.get(task.id).queue == "default"
    assert store.stats("dead")[TaskStatus.PENDING] == 0


def test_an_expired_head_hands_its_groups_turn_on(store, clock: FakeClock):
    head = store.enqueue(NewTask(payload=b'{"n":1}', group="G", expires_in=5))
    follower = store.enqueue(NewTask(payload=b'{"n":2}', group="G"))
    waiting_expires = store.enqueue(NewTask(payload=b'{"n":3}', group="G", expires_in=5))
    clock.advance(5)

    assert store.dequeue().id == follower.id
    assert store.get(head.id).status is TaskStatus.FAILED
    assert store.get(waiting_expires.id).status is TaskStatus.FAILED


def test_an_operators_retry_clears_the_expiry(store, clock: FakeClock):
    task = store.enqueue(NewTask(payload=b"{}", expires_in=5))
    clock.advance(5)
    store.reap()

    retried = store.retry(task.id)

    assert (retried.status, retried.expires_at) == (TaskStatus.PENDING, None)
    assert store.dequeue().id == task.id


def test_an_expired_task_retried_joins_the_tail_and_is_delivered_once(store, clock: FakeClock):
    returned = store.enqueue(NewTask(payload=b'{"n":1}', expires_in=5))
    waiting = store.enqueue(NewTask(payload=b'{"n":2}', expires_in=5))  # expires where it waits
    store.enqueue(NewTask(payload=b'{"n":3}'))
    assert store.dequeue(lease_seconds=2).id == returned.id
    clock.advance(2)  # its lease runs out: back at its place, ahead of the others
    store.reap()
    clock.advance(3)
    store.reap()
    assert store.get(waiting.id).status is TaskStatus.FAILED
    assert store.get(returned.id).status is TaskStatus.FAILED
    store.enqueue(NewTask(payload=b'{"n":4}'))

    store.retry(waiting.id)
    store.retry(returned.id)

    order = [task.payload for task in store.dequeue_many(10)]
    assert order == [b'{"n":3}', b'{"n":4}', b'{"n":2}', b'{"n":1}']
    assert store.dequeue() is None
