"""MemoryStore at-least-once delivery (docs/reliability.md): leases, heartbeats, fencing, fail and
retry with backoff, results, retry and delete, retention, stats and ready listeners.

Every rule runs on the injected FakeClock (`clock.advance`), so nothing here sleeps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from tests.conftest import FakeClock
from tests.support import enqueue, expected_stats, new_task
from tornado_queue.errors import InvalidTransition, LeaseLost, TaskNotFound
from tornado_queue.models import Task, TaskStatus
from tornado_queue.storage import MemoryStore, Policy

LEASE = 30.0  # the `policy` fixture's lease_seconds
RETENTION = 3600.0  # the `policy` fixture's retention_seconds


def pending_ids(store: MemoryStore) -> list[str]:
    tasks, total = store.view(limit=1_000_000)
    assert total == len(tasks)
    return [task.id for task in tasks]


VISIBLE_FIELDS = (
    *("id", "status", "attempts", "max_attempts", "lease_id", "lease_expires_at"),
    *("started_at", "finished_at", "available_at", "result", "error"),
)


def fields(task: Task) -> dict[str, object]:
    """What a client can see of a task, to check that a refused command changed nothing."""
    return {name: getattr(task, name) for name in VISIBLE_FIELDS}


def take(store: MemoryStore, task_id: str, lease: float | None = None) -> Task:
    """Dequeue and check that it is the expected task."""
    task = store.dequeue(lease)
    assert task is not None
    assert task.id == task_id
    return task


def listen(store: MemoryStore) -> list[tuple[str, int]]:
    """The (queue, count) pairs the store's ready listeners are called with."""
    calls: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: calls.append((queue, count)))
    return calls


# --- leases ----------------------------------------------------------------------------------


def test_dequeue_grants_a_lease_with_a_fresh_id_an_expiry_at_wall_plus_lease_and_an_attempt(
    store, clock
):
    created = store.enqueue(new_task())
    clock.advance(5)

    task = take(store, created.id)

    assert task.status is TaskStatus.PROCESSING
    assert task.attempts == 1
    assert isinstance(task.lease_id, str)
    assert task.lease_id
    assert task.lease_expires_at == clock.now + LEASE
    stored = store.get(created.id)
    assert stored.lease_id == task.lease_id
    assert stored.lease_expires_at == task.lease_expires_at


def test_every_delivery_of_a_task_gets_a_new_lease_id(store, clock):
    created = store.enqueue(new_task())
    lease_ids = []

    # Given three deliveries: one released, one expired, one current
    lease_ids.append(take(store, created.id).lease_id)
    store.release(created.id)
    lease_ids.append(take(store, created.id).lease_id)
    clock.advance(LEASE)
    lease_ids.append(take(store, created.id).lease_id)

    # Then no lease id was ever reused
    assert len(set(lease_ids)) == 3
    assert store.get(created.id).attempts == 3


def test_concurrent_leases_of_different_tasks_have_different_ids(store):
    enqueue(store, 50)

    lease_ids = {store.dequeue().lease_id for _ in range(50)}

    assert len(lease_ids) == 50


def test_dequeue_honours_a_custom_lease_length(store, clock):
    created = store.enqueue(new_task())

    task = take(store, created.id, lease=7)

    assert task.lease_expires_at == clock.now + 7
    clock.advance(6.5)
    assert store.get(created.id).status is TaskStatus.PROCESSING
    clock.advance(0.5)
    assert store.get(created.id).status is TaskStatus.PENDING


def test_a_lease_holds_until_its_deadline_and_expires_exactly_at_it(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)

    clock.advance(LEASE - 0.25)
    assert store.get(created.id).status is TaskStatus.PROCESSING
    assert store.stats() == expected_stats(processing=1)

    clock.advance(0.25)
    assert store.get(created.id).status is TaskStatus.PENDING
    assert store.stats() == expected_stats(pending=1)


def test_an_expired_lease_puts_the_task_back_as_pending_with_its_attempts_and_no_lease(
    store, clock
):
    first, second = enqueue(store, 2)
    leased = take(store, first)
    clock.advance(LEASE + 10)

    store.reap()

    task = store.get(first)
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 1
    assert task.lease_id is None
    assert task.lease_expires_at is None
    assert task.started_at is None
    assert task.finished_at is None
    assert pending_ids(store) == [first, second]
    # And the next consumer gets it first, with a second attempt and a new lease
    again = take(store, first)
    assert again.attempts == 2
    assert again.lease_id != leased.lease_id


@pytest.mark.parametrize(
    ("lease_a", "lease_b"),
    [(10, 20), (20, 10), (15, 15)],
    ids=["a_expires_first", "b_expires_first", "both_expire_together"],
)
def test_expired_tasks_return_to_their_original_enqueue_order_whichever_expires_first(
    store, clock, lease_a, lease_b
):
    # Given A, B, C, D enqueued and A, B leased
    a, b, c, d = enqueue(store, 4)
    take(store, a, lease=lease_a)
    take(store, b, lease=lease_b)
    assert pending_ids(store) == [c, d]

    # When the first lease expires, its task goes back ahead of C and D
    clock.advance(min(lease_a, lease_b))
    if lease_a < lease_b:
        assert pending_ids(store) == [a, c, d]
    elif lease_b < lease_a:
        assert pending_ids(store) == [b, c, d]

    # When the second expires too, the order is the enqueue order again
    clock.advance(abs(lease_a - lease_b))
    assert pending_ids(store) == [a, b, c, d]
    assert [store.dequeue().id for _ in range(4)] == [a, b, c, d]


def test_expired_tasks_go_back_ahead_of_retried_tasks_that_joined_the_tail_later(store, clock):
    # Given A failed and retried (now behind B at the tail), then A and B leased again
    a, b = enqueue(store, 2)
    take(store, a)
    store.fail(a, "boom")
    clock.advance(1)  # backoff for attempt 1
    assert pending_ids(store) == [b, a]
    c = store.enqueue(new_task(3)).id
    take(store, b, lease=10)
    take(store, a, lease=5)

    # When both leases expire (A's first)
    clock.advance(10)

    # Then they are back at their places: B, then A, then C
    assert pending_ids(store) == [b, a, c]


def test_a_task_returned_by_expiry_keeps_its_place_among_tasks_released_earlier(store, clock):
    a, b, c = enqueue(store, 3)
    take(store, a)
    take(store, b, lease=5)
    take(store, c)

    store.release(c)
    clock.advance(5)  # B expires
    store.release(a)

    assert pending_ids(store) == [a, b, c]


CALLS_THAT_REAP: dict[str, Callable[[MemoryStore, str], object]] = {
    "reap": lambda store, other: store.reap(),
    "stats": lambda store, other: store.stats(),
    "get": lambda store, other: store.get(other),
    "view": lambda store, other: store.view(10),
    "enqueue": lambda store, other: store.enqueue(new_task(9)),
    "heartbeat": lambda store, other: store.heartbeat(other),
    "complete": lambda store, other: store.complete(other),
    "fail": lambda store, other: store.fail(other, retry=False),
    "release": lambda store, other: store.release(other),
}
READY_BESIDES_THE_EXPIRY = {"enqueue": 1, "release": 1}


@pytest.mark.parametrize("call", CALLS_THAT_REAP)
def test_an_expired_lease_is_applied_at_the_start_of_any_store_call(store, clock, call):
    # Given a task whose lease has run out, and another task leased for longer
    expiring, other = enqueue(store, 2)
    take(store, expiring, lease=10)
    take(store, other, lease=100)
    calls = listen(store)
    clock.advance(10)

    # When any call is made
    CALLS_THAT_REAP[call](store, other)

    # Then that call already put the expired task back, and told the listeners
    assert calls == [("default", 1 + READY_BESIDES_THE_EXPIRY.get(call, 0))]
    assert store.get(expiring).status is TaskStatus.PENDING
    assert pending_ids(store)[0] == expiring


def test_a_dequeue_after_a_lease_expired_hands_that_task_out_again(store, clock):
    expiring, waiting = enqueue(store, 2)
    first = take(store, expiring, lease=10)
    calls = listen(store)
    clock.advance(10)

    again = store.dequeue()

    assert again.id == expiring
    assert again.attempts == 2
    assert again.lease_id != first.lease_id
    assert calls == [("default", 1)]
    assert pending_ids(store) == [waiting]


def test_an_expired_lease_on_the_last_attempt_fails_the_task_with_lease_expired(store, clock):
    created = store.enqueue(new_task())
    for attempt in (1, 2):
        assert take(store, created.id).attempts == attempt
        clock.advance(LEASE)
        assert store.get(created.id).status is TaskStatus.PENDING

    take(store, created.id)
    lease_deadline = clock.now + LEASE
    clock.advance(LEASE + 1)
    store.reap()

    task = store.get(created.id)
    assert task.status is TaskStatus.FAILED
    assert task.error == "lease expired"
    assert task.attempts == 3
    assert task.lease_id is None
    assert task.lease_expires_at is None
    assert lease_deadline <= task.finished_at <= clock.now
    assert store.stats() == expected_stats(failed=1)
    assert store.dequeue() is None
    assert pending_ids(store) == []


def test_a_task_with_its_own_max_attempts_survives_that_many_minus_one_expiries(store, clock):
    created = store.enqueue(new_task(max_attempts=5))
    assert created.max_attempts == 5

    for attempt in range(1, 5):
        assert take(store, created.id).attempts == attempt
        clock.advance(LEASE)
        assert store.get(created.id).status is TaskStatus.PENDING

    take(store, created.id)
    clock.advance(LEASE)

    task = store.get(created.id)
    assert task.status is TaskStatus.FAILED
    assert task.attempts == 5
    assert task.error == "lease expired"


def test_a_task_with_max_attempts_one_fails_on_its_first_expiry(store, clock):
    created = store.enqueue(new_task(max_attempts=1))
    take(store, created.id)

    clock.advance(LEASE)

    assert store.get(created.id).status is TaskStatus.FAILED
    assert store.stats() == expected_stats(failed=1)


def test_tasks_without_their_own_max_attempts_use_the_policy_default(store):
    assert store.enqueue(new_task()).max_attempts == 3


# --- heartbeat -------------------------------------------------------------------------------


def test_a_heartbeat_extends_the_lease_from_now_past_the_original_deadline(store, clock):
    created = store.enqueue(new_task())
    leased = take(store, created.id)

    # Given a heartbeat 20 s into a 30 s lease
    clock.advance(20)
    beat = store.heartbeat(created.id, lease_seconds=30, lease_id=leased.lease_id)

    # Then the lease now ends 30 s after the heartbeat, same lease id and attempt
    assert beat.status is TaskStatus.PROCESSING
    assert beat.lease_expires_at == clock.now + 30
    assert beat.lease_id == leased.lease_id
    assert beat.attempts == 1
    # And the task survives its original deadline ...
    clock.advance(29.5)
    assert store.get(created.id).status is TaskStatus.PROCESSING
    assert store.stats() == expected_stats(processing=1)
    # ... and the lease ends at the new one
    clock.advance(0.5)
    assert store.get(created.id).status is TaskStatus.PENDING


def test_a_heartbeat_without_a_lease_length_extends_by_the_policy_lease(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id, lease=5)
    clock.advance(4)

    beat = store.heartbeat(created.id)

    assert beat.lease_expires_at == clock.now + LEASE
    clock.advance(LEASE - 1)
    assert store.get(created.id).status is TaskStatus.PROCESSING


def test_a_heartbeat_with_a_shorter_lease_ends_the_lease_at_the_new_earlier_deadline(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id, lease=60)

    store.heartbeat(created.id, lease_seconds=5)

    clock.advance(4.5)
    assert store.get(created.id).status is TaskStatus.PROCESSING
    clock.advance(0.5)
    assert store.get(created.id).status is TaskStatus.PENDING


def test_repeated_heartbeats_keep_a_task_leased_indefinitely(store, clock):
    created = store.enqueue(new_task())
    leased = take(store, created.id)

    for _ in range(100):
        clock.advance(LEASE - 1)
        store.heartbeat(created.id, lease_id=leased.lease_id)

    task = store.get(created.id)
    assert task.status is TaskStatus.PROCESSING
    assert task.attempts == 1
    assert store.complete(created.id, lease_id=leased.lease_id).status is TaskStatus.COMPLETED


def test_a_heartbeat_after_the_lease_expired_is_refused(store, clock):
    created = store.enqueue(new_task())
    leased = take(store, created.id)
    clock.advance(LEASE)

    with pytest.raises(InvalidTransition):
        store.heartbeat(created.id)
    with pytest.raises(LeaseLost):
        store.heartbeat(created.id, lease_id=leased.lease_id)
    assert store.get(created.id).status is TaskStatus.PENDING


@pytest.mark.parametrize("state", ["pending", "scheduled", "completed", "failed"])
def test_a_heartbeat_of_a_task_that_is_not_processing_raises_invalid_transition(store, state):
    created = store.enqueue(new_task())
    if state != "pending":
        take(store, created.id)
        if state == "scheduled":
            store.fail(created.id, "boom")
        elif state == "completed":
            store.complete(created.id)
        else:
            store.fail(created.id, "boom", retry=False)
    before = fields(store.get(created.id))

    with pytest.raises(InvalidTransition, match="not processing"):
        store.heartbeat(created.id)

    assert fields(store.get(created.id)) == before


def test_a_heartbeat_of_an_unknown_task_raises_task_not_found(store):
    with pytest.raises(TaskNotFound):
        store.heartbeat(str(uuid.uuid4()))


# --- fencing ---------------------------------------------------------------------------------

COMMANDS: dict[str, Callable[[MemoryStore, str, str | None], Task]] = {
    "heartbeat": lambda store, task_id, lease_id: store.heartbeat(task_id, lease_id=lease_id),
    "complete": lambda store, task_id, lease_id: store.complete(
        task_id, result=b'{"ok":true}', lease_id=lease_id
    ),
    "fail": lambda store, task_id, lease_id: store.fail(task_id, "boom", lease_id=lease_id),
    "release": lambda store, task_id, lease_id: store.release(task_id, lease_id=lease_id),
}
STATUS_AFTER = {
    "heartbeat": TaskStatus.PROCESSING,
    "complete": TaskStatus.COMPLETED,
    "fail": TaskStatus.SCHEDULED,
    "release": TaskStatus.PENDING,
}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_with_a_wrong_lease_id_raises_lease_lost_and_changes_nothing(
    store, clock, command
):
    created = store.enqueue(new_task())
    take(store, created.id)
    clock.advance(3)
    before = fields(store.get(created.id))
    calls = listen(store)

    with pytest.raises(LeaseLost, match="lost") as raised:
        COMMANDS[command](store, created.id, "not-the-lease")

    assert isinstance(raised.value, InvalidTransition)  # so HTTP maps it to 409
    assert fields(store.get(created.id)) == before
    assert store.stats() == expected_stats(processing=1)
    assert calls == []


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_with_another_tasks_lease_id_raises_lease_lost(store, command):
    mine, theirs = enqueue(store, 2)
    take(store, mine)
    their_lease = take(store, theirs).lease_id
    before = fields(store.get(mine))

    with pytest.raises(LeaseLost):
        COMMANDS[command](store, mine, their_lease)

    assert fields(store.get(mine)) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_with_the_current_lease_id_is_applied(store, command):
    created = store.enqueue(new_task())
    leased = take(store, created.id)

    task = COMMANDS[command](store, created.id, leased.lease_id)

    assert task.status is STATUS_AFTER[command]
    assert store.get(created.id).status is STATUS_AFTER[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_without_a_lease_id_is_applied_as_before_leases_existed(store, command):
    created = store.enqueue(new_task())
    take(store, created.id)

    task = COMMANDS[command](store, created.id, None)

    assert task.status is STATUS_AFTER[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_after_expiry_and_redelivery_the_first_consumers_lease_is_refused(store, clock, command):
    # Given consumer 1 leased the task, went quiet, and consumer 2 got it after the lease
    created = store.enqueue(new_task())
    first = take(store, created.id)
    clock.advance(LEASE)
    second = take(store, created.id)
    before = fields(store.get(created.id))

    # When consumer 1 comes back late
    with pytest.raises(LeaseLost):
        COMMANDS[command](store, created.id, first.lease_id)

    # Then consumer 2 still holds the task and can finish it
    assert fields(store.get(created.id)) == before
    task = COMMANDS[command](store, created.id, second.lease_id)
    assert task.status is STATUS_AFTER[command]


@pytest.mark.parametrize("command", COMMANDS)
def test_a_lease_that_expired_before_redelivery_is_refused_and_the_task_stays_pending(
    store, clock, command
):
    created = store.enqueue(new_task())
    leased = take(store, created.id)
    clock.advance(LEASE)

    with pytest.raises(LeaseLost):
        COMMANDS[command](store, created.id, leased.lease_id)

    task = store.get(created.id)
    assert task.status is TaskStatus.PENDING
    assert task.attempts == 1
    assert pending_ids(store) == [created.id]


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"complete"}))
def test_a_late_command_after_the_task_was_completed_is_refused(store, command):
    created = store.enqueue(new_task())
    leased = take(store, created.id)
    store.complete(created.id, result=b"1", lease_id=leased.lease_id)

    with pytest.raises(LeaseLost):
        COMMANDS[command](store, created.id, leased.lease_id)

    task = store.get(created.id)
    assert task.status is TaskStatus.COMPLETED
    assert task.result == b"1"


@pytest.mark.parametrize("command", COMMANDS)
def test_a_command_with_a_lease_id_on_an_unknown_task_raises_task_not_found(store, command):
    with pytest.raises(TaskNotFound):
        COMMANDS[command](store, str(uuid.uuid4()), "some-lease")


# --- complete --------------------------------------------------------------------------------


def test_complete_stores_the_result_bytes_and_finished_at_and_ends_the_lease(store, clock):
    created = store.enqueue(new_task())
    leased = take(store, created.id)
    clock.advance(2)

    done = store.complete(created.id, result=b'{"rows":[1,2,3]}', lease_id=leased.lease_id)

    assert done.status is TaskStatus.COMPLETED
    assert done.result == b'{"rows":[1,2,3]}'
    assert done.finished_at == clock.now
    assert done.lease_id is None
    assert done.lease_expires_at is None
    stored = store.get(created.id)
    assert stored.result == b'{"rows":[1,2,3]}'
    assert stored.finished_at == clock.now
    assert store.stats() == expected_stats(completed=1)


def test_complete_without_a_result_leaves_the_result_empty(store):
    created = store.enqueue(new_task())
    take(store, created.id)

    assert store.complete(created.id).result is None


def test_a_completed_task_is_not_touched_when_its_old_lease_deadline_passes(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    store.complete(created.id)

    clock.advance(LEASE * 2)

    task = store.get(created.id)
    assert task.status is TaskStatus.COMPLETED
    assert task.attempts == 1
    assert store.stats() == expected_stats(completed=1)


# --- fail and backoff ------------------------------------------------------------------------


def test_fail_with_retry_schedules_the_task_for_the_base_backoff_after_the_first_attempt(
    store, clock
):
    created = store.enqueue(new_task())
    leased = take(store, created.id)
    clock.advance(3)

    task = store.fail(created.id, "timeout talking to S3", retry=True, lease_id=leased.lease_id)

    assert task.status is TaskStatus.SCHEDULED
    assert task.available_at == clock.now + 1.0
    assert task.error == "timeout talking to S3"
    assert task.attempts == 1
    assert task.lease_id is None
    assert task.lease_expires_at is None
    assert task.finished_at is None
    assert store.stats() == expected_stats(scheduled=1)
    assert store.dequeue() is None
    assert pending_ids(store) == []


def test_a_scheduled_task_joins_the_tail_when_due_and_not_before(store, clock):
    a, b = enqueue(store, 2)
    take(store, a)
    store.fail(a, "boom")  # due in 1 s
    c = store.enqueue(new_task(3)).id

    clock.advance(0.75)
    assert store.get(a).status is TaskStatus.SCHEDULED
    assert pending_ids(store) == [b, c]
    assert store.stats() == expected_stats(pending=2, scheduled=1)

    clock.advance(0.25)
    assert store.get(a).status is TaskStatus.PENDING
    d = store.enqueue(new_task(4)).id
    assert pending_ids(store) == [b, c, a, d]
    assert store.stats() == expected_stats(pending=4)


def test_a_due_retry_joins_the_tail_before_a_task_enqueued_after_it_fell_due(store, clock):
    a = store.enqueue(new_task()).id
    take(store, a)
    store.fail(a, "boom")

    # Given nothing calls the store between the due time and the next enqueue
    clock.advance(5)
    b = store.enqueue(new_task(2)).id

    assert pending_ids(store) == [a, b]


def test_backoff_doubles_with_each_attempt(clock):
    store = MemoryStore(Policy(retry_backoff=1.5, max_attempts=5), clock)
    created = store.enqueue(new_task())
    waits = []

    for _ in range(4):
        take(store, created.id)
        task = store.fail(created.id, "boom")
        waits.append(task.available_at - clock.now)
        clock.advance(task.available_at - clock.now)

    assert waits == [1.5, 3.0, 6.0, 12.0]


def test_the_second_attempt_waits_twice_the_base_backoff(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    store.fail(created.id)
    clock.advance(1)
    take(store, created.id)

    task = store.fail(created.id, "again")

    assert task.attempts == 2
    assert task.available_at == clock.now + 2
    clock.advance(1.75)
    assert store.get(created.id).status is TaskStatus.SCHEDULED
    clock.advance(0.25)
    assert store.get(created.id).status is TaskStatus.PENDING


def test_backoff_is_capped_at_one_hour(store, clock):
    created = store.enqueue(new_task(max_attempts=20))
    waits = []

    for _ in range(15):
        take(store, created.id)
        task = store.fail(created.id, "boom")
        assert task.status is TaskStatus.SCHEDULED
        waits.append(task.available_at - clock.now)
        clock.advance(waits[-1])

    assert waits == [2.0**n for n in range(12)] + [3600.0, 3600.0, 3600.0]


def test_backoff_stays_capped_for_attempt_counts_past_a_thousand(clock):
    # The store takes any per-task max_attempts; 2 ** (attempts - 1) passes the float range
    # after attempt 1024, and the wait must still be the one-hour cap.
    store = MemoryStore(Policy(retry_backoff=1.0), clock)
    created = store.enqueue(new_task(max_attempts=1100))
    task = None

    for _ in range(1030):
        take(store, created.id)
        task = store.fail(created.id, "boom")
        clock.advance(3600)

    assert task.attempts == 1030
    assert task.status is TaskStatus.SCHEDULED
    assert Policy().backoff(1030) == 3600.0


def test_fail_with_zero_backoff_makes_the_task_pending_at_the_tail_at_once(clock):
    store = MemoryStore(Policy(retry_backoff=0), clock)
    a, b = enqueue(store, 2)
    take(store, a)
    calls = listen(store)

    task = store.fail(a, "flaky")

    assert task.status is TaskStatus.PENDING
    assert task.error == "flaky"
    assert task.available_at == clock.now
    assert pending_ids(store) == [b, a]
    assert store.stats() == expected_stats(pending=2)
    assert calls == [("default", 1)]


def test_fail_without_retry_fails_the_task_with_its_error_and_finished_at(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    clock.advance(4)

    task = store.fail(created.id, "bad input", retry=False)

    assert task.status is TaskStatus.FAILED
    assert task.error == "bad input"
    assert task.finished_at == clock.now
    assert task.lease_id is None
    assert store.stats() == expected_stats(failed=1)
    clock.advance(RETENTION - 1)  # any retry would have fallen due by now
    assert store.dequeue() is None
    assert store.get(created.id).status is TaskStatus.FAILED


def test_fail_with_retry_on_the_last_attempt_fails_the_task(store, clock):
    created = store.enqueue(new_task())
    for attempt in (1, 2):
        take(store, created.id)
        assert store.fail(created.id, f"try {attempt}").status is TaskStatus.SCHEDULED
        clock.advance(2**attempt)

    take(store, created.id)
    task = store.fail(created.id, "try 3", retry=True)

    assert task.status is TaskStatus.FAILED
    assert task.attempts == 3
    assert task.error == "try 3"
    assert task.finished_at == clock.now
    assert store.stats() == expected_stats(failed=1)


def test_a_task_with_its_own_max_attempts_is_retried_that_many_times(store, clock):
    created = store.enqueue(new_task(max_attempts=5))
    statuses = []

    for _ in range(5):
        take(store, created.id)
        task = store.fail(created.id, "boom")
        statuses.append(task.status)
        clock.advance(3600)

    assert statuses == [TaskStatus.SCHEDULED] * 4 + [TaskStatus.FAILED]


@pytest.mark.parametrize("state", ["pending", "scheduled", "completed", "failed"])
def test_fail_of_a_task_that_is_not_processing_raises_invalid_transition(store, state):
    created = store.enqueue(new_task())
    if state != "pending":
        take(store, created.id)
        if state == "scheduled":
            store.fail(created.id, "boom")
        elif state == "completed":
            store.complete(created.id)
        else:
            store.fail(created.id, "boom", retry=False)
    before = fields(store.get(created.id))

    with pytest.raises(InvalidTransition):
        store.fail(created.id, "late")

    assert fields(store.get(created.id)) == before


# --- retry -----------------------------------------------------------------------------------


def test_retry_puts_a_failed_task_at_the_tail_as_pending_with_a_clean_slate(store, clock):
    a, b = enqueue(store, 2)
    take(store, a)
    store.fail(a, "bad input", retry=False)
    c = store.enqueue(new_task(3)).id
    calls = listen(store)
    clock.advance(7)

    task = store.retry(a)

    assert task.status is TaskStatus.PENDING
    assert task.attempts == 0
    assert task.error is None
    assert task.result is None
    assert task.finished_at is None
    assert task.lease_id is None
    assert pending_ids(store) == [b, c, a]
    assert store.stats() == expected_stats(pending=3)
    assert calls == [("default", 1)]


def test_a_retried_task_gets_its_full_attempt_budget_again(store, clock):
    created = store.enqueue(new_task())
    for _ in range(3):
        take(store, created.id)
        clock.advance(LEASE)
    assert store.get(created.id).status is TaskStatus.FAILED

    store.retry(created.id)

    for attempt in (1, 2):
        assert take(store, created.id).attempts == attempt
        clock.advance(LEASE)
        assert store.get(created.id).status is TaskStatus.PENDING
    take(store, created.id)
    clock.advance(LEASE)
    assert store.get(created.id).status is TaskStatus.FAILED


@pytest.mark.parametrize("state", ["pending", "scheduled", "processing", "completed"])
def test_retry_of_a_task_that_is_not_failed_raises_invalid_transition(store, state):
    created = store.enqueue(new_task())
    if state != "pending":
        take(store, created.id)
        if state == "scheduled":
            store.fail(created.id, "boom")
        elif state == "completed":
            store.complete(created.id)
    before = fields(store.get(created.id))
    calls = listen(store)

    with pytest.raises(InvalidTransition, match="only failed tasks"):
        store.retry(created.id)

    assert fields(store.get(created.id)) == before
    assert calls == []


def test_retry_of_an_unknown_task_raises_task_not_found(store):
    with pytest.raises(TaskNotFound):
        store.retry(str(uuid.uuid4()))


# --- delete ----------------------------------------------------------------------------------


def test_deleting_a_pending_task_removes_it_from_get_view_dequeue_and_stats(store):
    a, b, c = enqueue(store, 3)

    assert store.delete(b) is None

    assert store.get(b) is None
    assert pending_ids(store) == [a, c]
    assert store.stats() == expected_stats(pending=2)
    assert [store.dequeue().id, store.dequeue().id] == [a, c]
    assert store.dequeue() is None


def test_deleting_the_task_at_the_front_of_the_queue_lets_the_next_one_be_dequeued(store):
    a, b = enqueue(store, 2)

    store.delete(a)

    assert take(store, b).attempts == 1


def test_deleting_a_task_that_went_back_to_the_front_after_expiry_removes_it(store, clock):
    a, b = enqueue(store, 2)
    take(store, a)
    clock.advance(LEASE)

    store.delete(a)

    assert pending_ids(store) == [b]
    assert store.stats() == expected_stats(pending=1)


def test_deleting_a_scheduled_task_means_it_never_becomes_pending(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    store.fail(created.id, "boom")
    calls = listen(store)

    store.delete(created.id)

    assert store.stats() == expected_stats()
    clock.advance(3600)
    assert store.dequeue() is None
    assert store.get(created.id) is None
    assert store.stats() == expected_stats()
    assert calls == []


@pytest.mark.parametrize("finish", ["complete", "fail"])
def test_deleting_a_finished_task_removes_it(store, finish):
    created = store.enqueue(new_task())
    take(store, created.id)
    if finish == "complete":
        store.complete(created.id)
    else:
        store.fail(created.id, "boom", retry=False)

    store.delete(created.id)

    assert store.get(created.id) is None
    assert store.stats() == expected_stats()
    with pytest.raises(TaskNotFound):
        store.retry(created.id)


def test_deleting_a_processing_task_raises_invalid_transition_and_keeps_it(store):
    created = store.enqueue(new_task())
    take(store, created.id)
    before = fields(store.get(created.id))

    with pytest.raises(InvalidTransition, match="processing"):
        store.delete(created.id)

    assert fields(store.get(created.id)) == before
    assert store.stats() == expected_stats(processing=1)


def test_deleting_an_unknown_or_already_deleted_task_raises_task_not_found(store):
    created = store.enqueue(new_task())
    store.delete(created.id)

    with pytest.raises(TaskNotFound):
        store.delete(created.id)
    with pytest.raises(TaskNotFound):
        store.delete(str(uuid.uuid4()))


def test_deleting_most_of_a_long_queue_keeps_view_and_dequeue_right(store):
    # Given 3000 pending tasks of which 2100 are deleted: past the compaction threshold
    ids = enqueue(store, 3000)
    kept = [task_id for number, task_id in enumerate(ids) if number % 10 in (0, 5, 9)]
    for number, task_id in enumerate(ids):
        if number % 10 not in (0, 5, 9):
            store.delete(task_id)

    # Then the pending list, its pages and the dequeue order are the kept tasks only
    assert len(kept) == 900
    assert pending_ids(store) == kept
    page, total = store.view(limit=10, offset=445)
    assert [task.id for task in page] == kept[445:455]
    assert total == 900
    assert store.stats() == expected_stats(pending=900)
    assert [store.dequeue().id for _ in range(900)] == kept
    assert store.dequeue() is None


def test_the_memory_store_compacts_its_pending_order_after_many_deletes(memory_store):
    # Given 3000 pending tasks of which 2100 are deleted: past the compaction threshold
    ids = enqueue(memory_store, 3000)
    for number, task_id in enumerate(ids):
        if number % 10 not in (0, 5, 9):
            memory_store.delete(task_id)

    # Then the pending order no longer holds most of the deleted ids
    assert len(memory_store._pending["default"]) < 2 * 900


def test_compacting_the_queue_keeps_the_place_of_tasks_whose_lease_later_expires(store, clock):
    ids = enqueue(store, 2500)
    first, second = take(store, ids[0]), take(store, ids[1])
    for task_id in ids[2:2000]:
        store.delete(task_id)
    store.release(second.id)

    clock.advance(LEASE)

    assert pending_ids(store) == [ids[0], ids[1], *ids[2000:]]
    assert store.get(first.id).attempts == 1


def test_many_deletes_interleaved_with_dequeues_keep_the_queue_consistent(store):
    ids = enqueue(store, 5000)
    expected = []
    for number, task_id in enumerate(ids):
        if number % 4 == 3:
            expected.append(task_id)
        else:
            store.delete(task_id)
        if number % 500 == 499:
            # every 500 enqueued tasks, dequeue the oldest kept one
            assert store.dequeue().id == expected.pop(0)

    assert pending_ids(store) == expected
    assert store.stats() == expected_stats(pending=len(expected), processing=10)


# --- retention -------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["complete", "fail", "lease_expired"])
def test_a_finished_task_is_forgotten_retention_seconds_after_it_finished_and_not_before(
    clock, ending
):
    store = MemoryStore(Policy(retention_seconds=100, max_attempts=1), clock)
    created = store.enqueue(new_task())
    take(store, created.id, lease=10)
    if ending == "complete":
        store.complete(created.id, result=b"42")
    elif ending == "fail":
        store.fail(created.id, "bad", retry=False)
    else:
        clock.advance(10)
    finished = store.get(created.id)
    assert finished.status in (TaskStatus.COMPLETED, TaskStatus.FAILED)

    clock.advance(99.5)
    assert store.get(created.id) is not None
    assert sum(store.stats().values()) == 1

    clock.advance(0.5)
    assert store.get(created.id) is None
    assert store.stats() == expected_stats()
    with pytest.raises(TaskNotFound):
        store.delete(created.id)


def test_retention_is_counted_per_task_from_its_own_finish(clock):
    store = MemoryStore(Policy(retention_seconds=100), clock)
    early, late = enqueue(store, 2)
    take(store, early, lease=1000)
    take(store, late, lease=1000)
    store.complete(early)
    clock.advance(60)
    store.complete(late)

    clock.advance(40)
    assert store.get(early) is None
    assert store.get(late) is not None
    assert store.stats() == expected_stats(completed=1)

    clock.advance(60)
    assert store.get(late) is None


def test_pending_scheduled_and_processing_tasks_are_never_forgotten(clock):
    store = MemoryStore(Policy(retention_seconds=1, retry_backoff=3600, lease_seconds=43200), clock)
    pending, scheduled, processing = enqueue(store, 3)
    take(store, pending)
    take(store, scheduled)
    take(store, processing)
    store.release(pending)
    store.fail(scheduled, "later")
    store.heartbeat(processing, lease_seconds=43200)

    clock.advance(3599)

    assert store.stats() == expected_stats(pending=1, scheduled=1, processing=1)


def test_a_task_retried_after_failing_is_not_forgotten_by_its_old_retention_deadline(store, clock):
    # Given a task that failed at t0 (forget at t0 + 3600), retried at t0 + 100
    created = store.enqueue(new_task())
    take(store, created.id)
    store.fail(created.id, "boom", retry=False)
    clock.advance(100)
    store.retry(created.id)

    # When the old retention deadline passes while it is pending, then processing
    clock.advance(RETENTION - 100)
    assert store.get(created.id).status is TaskStatus.PENDING
    leased = take(store, created.id, lease=10_000)
    clock.advance(RETENTION)
    assert store.get(created.id).status is TaskStatus.PROCESSING

    # Then it is forgotten only retention_seconds after it finishes again
    store.complete(created.id, lease_id=leased.lease_id)
    clock.advance(RETENTION - 1)
    assert store.get(created.id).status is TaskStatus.COMPLETED
    clock.advance(1)
    assert store.get(created.id) is None


def test_a_task_that_fails_again_after_a_retry_is_kept_for_a_full_retention_period(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    store.fail(created.id, "first", retry=False)
    clock.advance(RETENTION - 10)
    store.retry(created.id)
    take(store, created.id)
    store.fail(created.id, "second", retry=False)

    clock.advance(10)  # the first failure's retention deadline
    task = store.get(created.id)
    assert task.status is TaskStatus.FAILED
    assert task.error == "second"

    clock.advance(RETENTION - 10)
    assert store.get(created.id) is None


# --- stats -----------------------------------------------------------------------------------


def test_stats_count_every_state_including_scheduled_and_failed(store, clock):
    ids = enqueue(store, 6)
    for task_id in ids[:4]:
        take(store, task_id)
    store.complete(ids[0])
    store.fail(ids[1], "retry me")
    store.fail(ids[2], "give up", retry=False)

    assert store.stats() == expected_stats(
        pending=2, scheduled=1, processing=1, completed=1, failed=1
    )
    clock.advance(1)  # the retry falls due
    assert store.stats() == expected_stats(pending=3, processing=1, completed=1, failed=1)
    clock.advance(LEASE)  # the processing lease expires
    assert store.stats() == expected_stats(pending=4, completed=1, failed=1)
    clock.advance(RETENTION)
    assert store.stats() == expected_stats(pending=4)


# --- ready listeners -------------------------------------------------------------------------


def test_ready_listeners_hear_of_expired_leases_counted_together_when_reaped_together(store, clock):
    a, b, c = enqueue(store, 3)
    take(store, a, lease=10)
    take(store, b, lease=12)
    take(store, c, lease=50)
    calls = listen(store)

    clock.advance(20)
    store.reap()
    store.reap()

    assert calls == [("default", 2)]


def test_ready_listeners_are_not_called_when_an_expiry_fails_the_task(store, clock):
    created = store.enqueue(new_task(max_attempts=1))
    take(store, created.id)
    calls = listen(store)

    clock.advance(LEASE)
    store.reap()

    assert store.get(created.id).status is TaskStatus.FAILED
    assert calls == []


def test_ready_listeners_hear_of_a_retry_falling_due(store, clock):
    created = store.enqueue(new_task())
    take(store, created.id)
    calls = listen(store)
    store.fail(created.id, "boom")
    assert calls == []

    clock.advance(1)
    store.reap()

    assert calls == [("default", 1)]


def test_ready_listeners_hear_of_release_and_retry(store):
    a, b = enqueue(store, 2)
    take(store, a)
    take(store, b)
    store.fail(b, "bad", retry=False)
    calls = listen(store)

    store.release(a)
    store.retry(b)

    assert calls == [("default", 1), ("default", 1)]


def test_ready_listeners_are_not_called_for_heartbeat_complete_fail_or_delete(store, clock):
    a, b, c, d = enqueue(store, 4)
    for task_id in (a, b, c):
        take(store, task_id)
    calls = listen(store)

    store.heartbeat(a)
    store.complete(a)
    store.fail(b, "later")
    store.fail(c, "never", retry=False)
    store.delete(d)

    assert calls == []


@pytest.mark.parametrize(
    "refused_call",
    [
        lambda store, task_id: store.complete(str(uuid.uuid4())),
        lambda store, task_id: store.heartbeat(task_id, lease_id="stale"),
        lambda store, task_id: store.fail(task_id),
        lambda store, task_id: store.retry(task_id),
        lambda store, task_id: store.delete(str(uuid.uuid4())),
    ],
    ids=["complete_unknown", "heartbeat_stale", "fail_pending", "retry_pending", "delete_unknown"],
)
def test_ready_listeners_hear_of_an_expiry_even_when_the_call_that_found_it_is_refused(
    store, clock, refused_call
):
    # Given a task whose lease ran out while nobody called the store
    created = store.enqueue(new_task())
    take(store, created.id)
    calls = listen(store)
    clock.advance(LEASE)

    # When the next call reaps it but is itself refused
    with pytest.raises((TaskNotFound, InvalidTransition)):
        refused_call(store, created.id)

    # Then waiting consumers are still told a task is ready: no later reap will tell them
    store.reap()
    assert store.get(created.id).status is TaskStatus.PENDING
    assert calls == [("default", 1)]


# --- cost ------------------------------------------------------------------------------------


def _seconds_to_reap_expiries(count: int, same_lease: bool) -> float:
    clock = FakeClock()
    store = MemoryStore(Policy(lease_seconds=30), clock)
    for number in range(count):
        store.enqueue(new_task(number))
    for number in range(count):
        # Same lease: expiries in enqueue order. Shrinking leases: in reverse enqueue order.
        store.dequeue(lease_seconds=1000.0 if same_lease else 1000.0 - number * 0.01)
    clock.advance(1000)
    started = time.perf_counter()
    store.reap()
    elapsed = time.perf_counter() - started
    assert store.stats()[TaskStatus.PENDING] == count
    return elapsed


def test_reaping_many_leases_that_expire_together_costs_about_the_same_in_any_order():
    # Given 10,000 consumers that all vanished with the same lease length (a fleet crash),
    # When their leases are reaped together,
    # Then putting the tasks back in order costs no more than in the cheapest order: the
    # reaper runs under the store lock on the IOLoop, so quadratic work would stall the server.
    cheapest = _seconds_to_reap_expiries(10_000, same_lease=False)
    same_lease = _seconds_to_reap_expiries(10_000, same_lease=True)

    assert same_lease < max(0.5, 10 * cheapest), (same_lease, cheapest)
