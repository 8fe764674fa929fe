"""Push queues in every store: the push target is kept with its secrets; a consumer's dequeue
of a push queue is refused in the dequeue's own atomic step and changes nothing, while the
pushers' dequeue (`push=True`) takes its tasks under every delivery rule a pull obeys, and
nothing from a queue that is not pushed; a failed push waits the receiver's Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.storage.test_queue_settings import listen
from tornado_queue.errors import PushQueue
from tornado_queue.limits import MAX_BACKOFF_SECONDS
from tornado_queue.models import (
    Happened,
    NewTask,
    PushTarget,
    QueueSettings,
    RateLimit,
    TaskStatus,
    history_of,
)
from tornado_queue.storage import Policy, SqliteStore
from tornado_queue.storage.base import EXPIRED_ERROR

QUEUE = "hooks"
PUSHER = "push/host-a/4242"

TARGET = PushTarget(
    url="https://receiver.internal/tasks?team=7",
    timeout_seconds=12.5,
    headers=(("Authorization", "Bearer t0ken"), ("X-Team", "seven")),
    secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    previous_secret="whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    rotated_at=1_789_990_000.5,
)


def fill(store, count: int, queue: str = QUEUE, **fields) -> list[str]:
    made = store.enqueue_many(
        [NewTask(payload=b'{"n":%d}' % n, queue=queue, **fields) for n in range(count)]
    )
    return [outcome.task_id for outcome in made]


def pushed(store, queue: str = QUEUE, **settings) -> None:
    """Make `queue` a push queue (with `settings` besides)."""
    store.configure(queue, {"push": TARGET, **settings})


# -- the setting --------------------------------------------------------------------------


def test_a_push_target_is_kept_with_its_secrets_and_shown_without_them(store):
    changed = store.configure(QUEUE, {"push": TARGET, "max_processing": 4})

    expected = QueueSettings(max_processing=4, push=TARGET)
    assert changed == expected
    assert store.queue_settings(QUEUE) == expected
    assert store.configured_queues() == {QUEUE: expected}
    kept = store.queue_settings(QUEUE).push
    assert (kept.secret, kept.previous_secret) == (TARGET.secret, TARGET.previous_secret)
    assert kept.headers == TARGET.headers  # in the order given
    assert store.queue_settings(QUEUE).document()["push"] == {
        "url": TARGET.url,
        "timeout_seconds": 12.5,
        "headers": {"Authorization": "Bearer t0ken", "X-Team": "seven"},
        "secret_rotated_at": datetime.fromtimestamp(1_789_990_000.5, UTC),
    }


def test_a_push_target_changed_or_cleared_is_stored_as_changed(store):
    pushed(store)
    fresh = PushTarget(url="http://10.0.0.8:8080/in", secret="whsec_bmV3")
    assert store.configure(QUEUE, {"push": fresh}).push == fresh
    assert store.queue_settings(QUEUE).push == fresh  # no header, no previous secret

    assert store.configure(QUEUE, {"push": None}) == QueueSettings()
    assert store.configured_queues() == {}


def test_the_settings_document_lists_push_unset(store):
    store.configure(QUEUE, {"paused": True})
    assert store.queue_settings(QUEUE).document()["push"] is None


# -- who may dequeue ----------------------------------------------------------------------


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_a_consumer_dequeue_of_a_push_queue_is_refused_and_changes_nothing(store, batch: bool):
    (task_id,) = fill(store, 1)
    pushed(store)

    with pytest.raises(PushQueue) as refused:
        if batch:
            store.dequeue_many(5, queue=QUEUE, worker="w1")
        else:
            store.dequeue(queue=QUEUE)

    assert refused.value.queue == QUEUE
    assert str(refused.value) == (
        "queue 'hooks' is a push queue: the server delivers its tasks to its push URL, so "
        "consumers cannot dequeue from it (clear its 'push' setting to pull)"
    )
    task = store.get(task_id)
    assert (task.status, task.attempts, task.lease_id) == (TaskStatus.PENDING, 0, None)
    assert [entry.event for entry in history_of(task)] == [Happened.ENQUEUED]
    assert store.stats(QUEUE)[TaskStatus.PENDING] == 1
    assert store.stats(QUEUE)[TaskStatus.PROCESSING] == 0
    assert store.workers() == []


def test_an_empty_push_queue_refuses_a_consumer_too(store):
    pushed(store)
    with pytest.raises(PushQueue):
        store.dequeue_many(1, queue=QUEUE)


def test_the_pushers_dequeue_takes_a_push_queues_tasks_in_order(store, clock: FakeClock):
    ids = fill(store, 3)
    pushed(store)

    first = store.dequeue(lease_seconds=17.5, queue=QUEUE, push=True)
    rest = store.dequeue_many(5, 17.5, QUEUE, PUSHER, push=True)

    assert [first.id, *(task.id for task in rest)] == ids
    for task in (first, *rest):
        assert (task.status, task.attempts) == (TaskStatus.PROCESSING, 1)
        assert task.lease_expires_at == clock.time() + 17.5
    delivered = history_of(store.get(rest[0].id))[-1]
    assert (delivered.event, delivered.worker) == (Happened.DELIVERED, PUSHER)
    assert delivered.lease_id == rest[0].lease_id
    assert [worker.id for worker in store.workers()] == [PUSHER]
    # and its leases end as any do: completed, with the receiver's answer as the result
    done = store.complete(first.id, b'{"ok":true}', first.lease_id)
    assert (done.status, done.result) == (TaskStatus.COMPLETED, b'{"ok":true}')


def test_the_pushers_dequeue_gets_nothing_from_a_queue_that_is_not_pushed(store):
    fill(store, 2)
    store.configure(QUEUE, {"max_processing": 5})  # has settings, but not push

    assert store.dequeue_many(5, queue=QUEUE, worker=PUSHER, push=True) == []
    assert store.dequeue_many(5, queue="other", push=True) == []
    assert store.dequeue(queue="default", push=True) is None
    assert store.stats(QUEUE)[TaskStatus.PENDING] == 2
    assert store.workers() == []


def test_clearing_push_hands_the_queue_back_to_consumers(store):
    ids = fill(store, 2)
    pushed(store)
    taken = store.dequeue_many(1, queue=QUEUE, push=True)

    store.configure(QUEUE, {"push": None})

    assert store.dequeue_many(1, queue=QUEUE, push=True) == []
    assert store.dequeue(queue=QUEUE).id == ids[1]
    # the lease the pusher holds still ends as a lease does
    assert store.complete(taken[0].id, None, taken[0].lease_id).status is TaskStatus.COMPLETED


def test_setting_push_stops_consumers_at_once_and_leaves_their_leases(store):
    ids = fill(store, 2)
    held = store.dequeue(queue=QUEUE)

    pushed(store)

    with pytest.raises(PushQueue):
        store.dequeue(queue=QUEUE)
    assert store.complete(held.id, None, held.lease_id).status is TaskStatus.COMPLETED
    assert store.dequeue(queue=QUEUE, push=True).id == ids[1]


# -- delivery rules apply to pushes as to pulls ------------------------------------------


def test_a_paused_push_queue_hands_the_pushers_nothing(store):
    fill(store, 2)
    pushed(store, paused=True)

    assert store.dequeue_many(5, queue=QUEUE, push=True) == []
    with pytest.raises(PushQueue):  # and consumers are still refused
        store.dequeue(queue=QUEUE)

    store.configure(QUEUE, {"paused": None})
    assert len(store.dequeue_many(5, queue=QUEUE, push=True)) == 2


def test_a_push_queues_cap_holds_for_the_pushers(store):
    fill(store, 5)
    pushed(store, max_processing=2)

    taken = store.dequeue_many(5, queue=QUEUE, push=True)

    assert len(taken) == 2
    assert store.dequeue_many(5, queue=QUEUE, push=True) == []
    heard = listen(store)
    store.fail(taken[0].id, "push answered 503: busy", lease_id=taken[0].lease_id)
    assert (QUEUE, 1) in heard  # a slot freed wakes the pushers as it wakes consumers
    assert len(store.dequeue_many(5, queue=QUEUE, push=True)) == 1


def test_a_push_queues_rate_limit_holds_for_the_pushers(store, clock: FakeClock):
    fill(store, 5)
    pushed(store, rate_limit=RateLimit(2, 10.0))

    assert len(store.dequeue_many(5, queue=QUEUE, push=True)) == 2
    clock.advance(9.9)
    assert store.dequeue_many(5, queue=QUEUE, push=True) == []
    clock.advance(0.2)
    assert len(store.dequeue_many(5, queue=QUEUE, push=True)) == 2


def test_a_push_queues_expired_task_is_never_pushed(store, clock: FakeClock):
    (expiring,) = fill(store, 1, expires_in=5)
    (lasting,) = fill(store, 1)
    pushed(store)

    clock.advance(6)

    assert [task.id for task in store.dequeue_many(5, queue=QUEUE, push=True)] == [lasting]
    gone = store.get(expiring)
    assert (gone.status, gone.error, gone.attempts) == (TaskStatus.FAILED, EXPIRED_ERROR, 0)


def test_a_push_queues_dead_task_goes_to_its_dead_letter_queue(store):
    fill(store, 1, max_attempts=1)
    pushed(store, dead_letter_queue="hooks.dead")
    (task,) = store.dequeue_many(1, queue=QUEUE, push=True)

    dead = store.fail(task.id, "push answered 404: no such hook", True, task.lease_id)

    assert (dead.queue, dead.status, dead.dead_lettered_from) == (
        "hooks.dead",
        TaskStatus.PENDING,
        QUEUE,
    )
    assert dead.error == "push answered 404: no such hook"
    # the dead-letter queue is not pushed: consumers take it, pushers do not
    assert store.dequeue_many(1, queue="hooks.dead", push=True) == []
    assert store.dequeue(queue="hooks.dead").id == task.id


def test_a_push_lease_that_runs_out_hands_the_task_to_the_next_push(store, clock: FakeClock):
    (task_id,) = fill(store, 1)
    pushed(store)
    store.dequeue_many(1, lease_seconds=17.5, queue=QUEUE, worker=PUSHER, push=True)

    clock.advance(18)

    again = store.dequeue_many(1, queue=QUEUE, push=True)
    assert [(task.id, task.attempts) for task in again] == [(task_id, 2)]


# -- Retry-After --------------------------------------------------------------------------


def failed_once(store, retry_after: float | None, queue: str = QUEUE):
    """A task of `queue` (a push queue) failed once with `retry_after`: the task."""
    fill(store, 1, queue=queue)
    pushed(store, queue)
    (task,) = store.dequeue_many(1, queue=queue, push=True)
    return store.fail(task.id, "push answered 429: slow down", True, task.lease_id, retry_after)


def test_a_retry_after_sets_the_retry_delay(store, clock: FakeClock):
    failed = failed_once(store, 7.0)

    assert (failed.status, failed.error) == (TaskStatus.SCHEDULED, "push answered 429: slow down")
    assert failed.available_at == clock.time() + 7.0
    clock.advance(6.9)
    assert store.dequeue_many(1, queue=QUEUE, push=True) == []
    clock.advance(0.2)
    assert [task.id for task in store.dequeue_many(1, queue=QUEUE, push=True)] == [failed.id]


def test_a_retry_after_replaces_the_queues_own_backoff(store, clock: FakeClock):
    store.configure(QUEUE, {"retry_backoff": 600.0})
    failed = failed_once(store, 2.5)
    assert failed.available_at == clock.time() + 2.5


def test_a_retry_after_beyond_the_longest_backoff_is_cut_to_it(store, clock: FakeClock):
    failed = failed_once(store, MAX_BACKOFF_SECONDS + 86_400.0)
    assert failed.available_at == clock.time() + MAX_BACKOFF_SECONDS


def test_a_retry_after_in_the_past_retries_at_once(store, clock: FakeClock):
    failed = failed_once(store, -30.0)
    assert (failed.status, failed.available_at) == (TaskStatus.PENDING, clock.time())


def test_without_a_retry_after_the_backoff_doubles_as_before(store, clock: FakeClock):
    # the policy's base is 1 s: 1 s after the first attempt, 2 s after the second
    failed = failed_once(store, None)
    assert failed.available_at == clock.time() + 1.0
    clock.advance(1.0)
    (again,) = store.dequeue_many(1, queue=QUEUE, push=True)
    failed = store.fail(again.id, "push timed out after 30 s", True, again.lease_id, None)
    assert failed.available_at == clock.time() + 2.0


def test_a_retry_after_does_not_keep_a_task_without_attempts_left(store):
    fill(store, 1, max_attempts=1)
    pushed(store)
    (task,) = store.dequeue_many(1, queue=QUEUE, push=True)

    dead = store.fail(task.id, "push answered 503: down", True, task.lease_id, 7.0)

    assert (dead.status, dead.error) == (TaskStatus.FAILED, "push answered 503: down")


def test_a_retry_after_applies_to_a_pulled_task_too(store, clock: FakeClock):
    (task_id,) = fill(store, 1, queue="pulled")
    task = store.dequeue(queue="pulled")
    failed = store.fail(task_id, "later", lease_id=task.lease_id, retry_after=42.0)
    assert failed.available_at == clock.time() + 42.0


# -- waking --------------------------------------------------------------------------------


def test_setting_or_clearing_push_wakes_listeners_of_a_queue_with_pending_tasks(store):
    fill(store, 3)
    store.configure("idle", {"max_attempts": 2})
    heard = listen(store)

    pushed(store)
    assert heard == [(QUEUE, 3)]  # the pushers may take them now
    store.configure(QUEUE, {"push": PushTarget(url="https://elsewhere.internal/", secret="s")})
    store.configure(QUEUE, {"max_attempts": 4})
    assert heard == [(QUEUE, 3)]  # still pushed: no one new may take them
    store.configure("idle", {"push": TARGET})
    assert heard == [(QUEUE, 3)]  # nothing pending there

    store.configure(QUEUE, {"push": None})
    assert heard == [(QUEUE, 3), (QUEUE, 3)]  # consumers may take them again


# -- persistence ---------------------------------------------------------------------------


def test_sqlite_a_push_setting_with_its_secrets_lasts_across_a_reopen(
    tmp_path: Path, policy: Policy, clock: FakeClock
):
    first = SqliteStore(tmp_path / "q.db", policy, clock)
    (task_id,) = fill(first, 1)
    pushed(first, max_processing=3)
    first.close()

    again = SqliteStore(tmp_path / "q.db", policy, clock)
    try:
        assert again.queue_settings(QUEUE) == QueueSettings(max_processing=3, push=TARGET)
        assert again.configured_queues()[QUEUE].push.secret == TARGET.secret
        with pytest.raises(PushQueue):
            again.dequeue(queue=QUEUE)
        assert again.dequeue(queue=QUEUE, push=True).id == task_id
    finally:
        again.close()
