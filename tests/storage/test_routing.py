"""MemoryStore routing and scheduling (docs/api.md): named queues, priorities, delays,
batches and idempotency keys.

Time is the `clock` fixture (lease 30 s, max_attempts 3, retry backoff 1 s, retention 3600 s):
tests move it instead of sleeping.
"""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from tornado_queue.errors import IdempotencyConflict, InvalidTransition, LeaseLost, TaskNotFound
from tornado_queue.models import Completion, NewTask, TaskStatus
from tornado_queue.storage import MemoryStore, Policy

LEASE = 30.0
RETENTION = 3600.0


def new(
    number: int = 0,
    *,
    queue: str = "default",
    priority: int = 0,
    delay: float = 0.0,
    key: str | None = None,
    content: bytes | None = None,
    max_attempts: int | None = None,
) -> NewTask:
    """A NewTask; `content` stands for the request's fingerprint (the payload by default)."""
    payload = b'{"n":%d}' % number
    fingerprint = (content or payload) if key is not None else b""
    return NewTask(
        payload=payload,
        max_attempts=max_attempts,
        queue=queue,
        priority=priority,
        delay=delay,
        idempotency_key=key,
        fingerprint=fingerprint,
    )


def put(store: MemoryStore, *priorities: int, queue: str = "default") -> list[str]:
    """Enqueue one task per priority, in order; their ids."""
    return [store.enqueue(new(n, queue=queue, priority=p)).id for n, p in enumerate(priorities)]


def view_ids(store: MemoryStore, queue: str = "default") -> list[str]:
    tasks, total = store.view(limit=1_000_000, queue=queue)
    assert total == len(tasks)
    assert all(task.status is TaskStatus.PENDING and task.queue == queue for task in tasks)
    return [task.id for task in tasks]


def drain(store: MemoryStore, queue: str = "default") -> list[str]:
    taken = []
    while (task := store.dequeue(queue=queue)) is not None:
        taken.append(task.id)
    return taken


def counts(**named: int) -> dict[TaskStatus, int]:
    result = dict.fromkeys(TaskStatus, 0)
    result.update({TaskStatus(name): value for name, value in named.items()})
    return result


# --- named queues ------------------------------------------------------------------------------


def test_named_queues_are_separate_for_dequeue_view_and_stats(store):
    a = put(store, 0, 0, queue="a")
    b = put(store, 0, queue="b")

    assert view_ids(store, "a") == a
    assert view_ids(store, "b") == b
    assert view_ids(store, "default") == []
    assert store.dequeue(queue="default") is None
    assert store.dequeue(queue="b").id == b[0]
    assert store.dequeue(queue="b") is None
    assert store.stats("a") == counts(pending=2)
    assert store.stats("b") == counts(processing=1)
    assert store.stats("nowhere") == counts()
    assert store.stats(None) == counts(pending=2, processing=1)
    assert [task.queue for task in store.dequeue_many(5, queue="a")] == ["a", "a"]


def test_queues_are_created_on_first_use_and_listed_with_their_counts(store):
    assert store.queues() == {}
    assert store.dequeue(queue="ghost") is None
    put(store, 0, queue="emails")
    put(store, 0, 0, queue="reports")
    store.complete(store.dequeue(queue="reports").id)

    assert store.queues() == {
        "emails": counts(pending=1),
        "reports": counts(pending=1, completed=1),
    }
    total = store.stats()
    assert all(total[s] == sum(q[s] for q in store.queues().values()) for s in TaskStatus)


# --- priorities --------------------------------------------------------------------------------


def test_higher_priority_first_and_fifo_within_a_priority(store):
    ids = put(store, 0, 5, 0, 5, -3, 10, 2**31 - 1, -(2**31 - 1))
    expected = [ids[6], ids[5], ids[1], ids[3], ids[0], ids[2], ids[4], ids[7]]

    assert view_ids(store) == expected
    assert drain(store) == expected


def test_a_released_task_goes_back_to_its_place_within_its_priority(store):
    a, b, c, d = put(store, 5, 5, 5, 0)
    first, second = store.dequeue(), store.dequeue()
    assert (first.id, second.id) == (a, b)
    (e,) = put(store, 5)

    store.release(second.id)
    store.release(first.id)

    assert view_ids(store) == [a, b, c, e, d]
    assert drain(store) == [a, b, c, e, d]


def test_a_task_whose_lease_expired_goes_back_to_its_place_within_its_priority(store, clock):
    low, high = put(store, 0, 5)
    assert store.dequeue().id == high
    assert store.dequeue().id == low
    later_high, later_low = put(store, 5, 0)

    clock.advance(LEASE)

    assert view_ids(store) == [high, later_high, low, later_low]
    taken = store.dequeue_many(4)
    assert [task.id for task in taken] == [high, later_high, low, later_low]
    assert [task.attempts for task in taken] == [2, 1, 2, 1]


def test_view_pages_follow_the_dequeue_order_with_returns_and_deletes(store):
    ids = put(store, 1, 3, 1, 3, 2, 1, 3)
    held = store.dequeue_many(2)
    store.delete(ids[4])
    store.release(held[1].id)
    order = view_ids(store)

    pages = [store.view(limit=2, offset=offset)[0] for offset in range(0, 8, 2)]
    assert [task.id for page in pages for task in page] == order
    assert store.view(limit=2, offset=2)[1] == len(order) == 5
    assert drain(store) == order
    assert order == [ids[3], ids[6], ids[0], ids[2], ids[5]]


# --- delays ------------------------------------------------------------------------------------


def test_a_delayed_task_is_scheduled_until_due_then_joins_the_tail_of_its_priority(store, clock):
    delayed = store.enqueue(new(1, priority=1, delay=10))
    same, lower = put(store, 1, 0)
    calls: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: calls.append((queue, count)))

    assert delayed.status is TaskStatus.SCHEDULED
    assert delayed.available_at == delayed.created_at + 10
    assert store.stats() == counts(pending=2, scheduled=1)
    clock.advance(9.999)
    store.reap()
    assert calls == []
    assert view_ids(store) == [same, lower]

    clock.advance(0.001)
    store.reap()

    assert calls == [("default", 1)]
    assert store.get(delayed.id).status is TaskStatus.PENDING
    assert view_ids(store) == [same, delayed.id, lower]
    assert drain(store) == [same, delayed.id, lower]


def test_a_due_delayed_task_of_higher_priority_overtakes_older_lower_tasks(store, clock):
    low1, low2 = put(store, 0, 0)
    high = store.enqueue(new(9, priority=9, delay=5)).id
    assert store.dequeue().id == low1

    clock.advance(5)

    assert drain(store) == [high, low2]


def test_priority_delay_and_retry_backoff_interplay(store, clock):
    a = store.enqueue(new(0, priority=5, max_attempts=3)).id
    held = store.dequeue()
    b, c = put(store, 5, 0)
    store.fail(held.id, "boom", lease_id=held.lease_id)  # backoff 1 s
    d = store.enqueue(new(3, priority=5, delay=0.5)).id
    assert store.stats() == counts(pending=2, scheduled=2)

    clock.advance(1)

    assert view_ids(store) == [b, d, a, c]
    assert store.dequeue().id == b
    retried = store.dequeue_many(2)
    assert [task.id for task in retried] == [d, a]
    assert retried[1].attempts == 2
    store.fail(a, retry=False)
    store.retry(a)
    assert view_ids(store) == [a, c]


# --- batches -----------------------------------------------------------------------------------


def test_enqueue_many_adds_in_order_and_reports_each_outcome(store):
    outcomes = store.enqueue_many([new(0), new(1, priority=2), new(2, queue="other")])

    assert all(outcome.created and outcome.task is not None for outcome in outcomes)
    assert [outcome.task.queue for outcome in outcomes] == ["default", "default", "other"]
    assert view_ids(store) == [outcomes[1].task_id, outcomes[0].task_id]
    assert view_ids(store, "other") == [outcomes[2].task_id]


def test_enqueue_many_is_all_or_nothing(store):
    store.enqueue(new(0, key="k", content=b"first"))
    before = (store.stats(), store.queues())
    calls: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: calls.append((queue, count)))

    with pytest.raises(IdempotencyConflict):
        store.enqueue_many([new(1, queue="fresh"), new(2), new(3, key="k", content=b"other")])

    assert (store.stats(), store.queues()) == before
    assert calls == []


def test_dequeue_many_leases_up_to_count_in_dequeue_order(store, clock):
    ids = put(store, 0, 1, 0, 1, 0)

    taken = store.dequeue_many(3, lease_seconds=7)

    assert [task.id for task in taken] == [ids[1], ids[3], ids[0]]
    assert all(task.status is TaskStatus.PROCESSING and task.attempts == 1 for task in taken)
    assert len({task.lease_id for task in taken}) == 3
    assert all(task.lease_expires_at == clock.now + 7 for task in taken)
    assert [task.id for task in store.dequeue_many(10)] == [ids[2], ids[4]]
    assert store.dequeue_many(10) == []
    assert store.stats() == counts(processing=5)


def test_complete_many_judges_each_item_on_its_own(store):
    ids = put(store, 0, 0, 0, 0)
    one, two, three = store.dequeue_many(3)
    items = [
        Completion(one.id, one.lease_id, b'{"ok":1}'),
        Completion("no-such-task"),
        Completion(two.id, "not-the-lease"),
        Completion(ids[3]),  # pending, not processing
        Completion(three.id),
        Completion(three.id),  # already completed by the item before
    ]

    outcomes = store.complete_many(items)

    assert [outcome.task_id for outcome in outcomes] == [item.task_id for item in items]
    assert outcomes[0].error is None
    assert outcomes[0].task.status is TaskStatus.COMPLETED
    assert outcomes[0].task.result == b'{"ok":1}'
    assert isinstance(outcomes[1].error, TaskNotFound)
    assert isinstance(outcomes[2].error, LeaseLost)
    assert type(outcomes[3].error) is InvalidTransition
    assert outcomes[4].error is None
    assert type(outcomes[5].error) is InvalidTransition
    assert all(outcome.task is None for outcome in outcomes if outcome.error is not None)
    assert store.get(two.id).status is TaskStatus.PROCESSING
    assert store.stats() == counts(pending=1, processing=1, completed=2)


# --- idempotency keys --------------------------------------------------------------------------


def test_the_same_key_and_content_returns_the_first_task_and_adds_nothing(store):
    first = store.enqueue_many([new(1, key="order-1")])[0]
    again = store.enqueue_many([new(1, key="order-1")])[0]

    assert first.created
    assert not again.created
    assert again.task_id == first.task_id
    assert again.task is not None
    assert again.task.id == first.task_id
    assert store.stats() == counts(pending=1)
    assert store.enqueue(new(1, key="order-1")).id == first.task_id


def test_a_replay_returns_the_task_as_it_is_now(store):
    first = store.enqueue(new(1, key="k"))
    store.complete(store.dequeue().id, b"42")

    again = store.enqueue_many([new(1, key="k")])[0]

    assert (again.task_id, again.created) == (first.id, False)
    assert again.task.status is TaskStatus.COMPLETED
    assert again.task.result == b"42"


def test_the_same_key_with_other_content_conflicts_and_nothing_of_the_batch_is_added(store):
    store.enqueue(new(1, key="k", content=b"A"))

    with pytest.raises(IdempotencyConflict):
        store.enqueue(new(1, key="k", content=b"B"))
    with pytest.raises(IdempotencyConflict):
        store.enqueue_many([new(2, key="fresh"), new(3), new(1, key="k", content=b"B")])

    assert store.stats() == counts(pending=1)
    assert store.enqueue_many([new(2, key="fresh")])[0].created


def test_a_key_twice_in_one_batch_creates_one_task(store):
    outcomes = store.enqueue_many([new(1, key="dup"), new(2), new(1, key="dup")])

    assert [outcome.created for outcome in outcomes] == [True, True, False]
    assert outcomes[2].task_id == outcomes[0].task_id
    assert store.stats() == counts(pending=2)


def test_a_key_twice_in_one_batch_with_other_content_conflicts(store):
    with pytest.raises(IdempotencyConflict):
        store.enqueue_many([new(1, key="dup", content=b"A"), new(1, key="dup", content=b"B")])

    assert store.stats() == counts()
    assert store.queues() == {}


def test_keys_are_forgotten_after_the_retention_period_once_their_task_is_gone(store, clock):
    # Given a keyed task that was done at once (so it is forgotten after the retention period)
    first = store.enqueue(new(1, key="k")).id
    leased = store.dequeue()
    store.complete(leased.id, lease_id=leased.lease_id)
    clock.advance(RETENTION - 1)
    assert store.enqueue_many([new(1, key="k")])[0].task_id == first

    # When the retention period is over: the task is forgotten, and its key with it
    clock.advance(1)
    after = store.enqueue_many([new(1, key="k", content=b"anything now")])[0]

    # Then the key is free again
    assert after.created
    assert after.task_id != first
    assert store.stats() == counts(pending=1)


def test_a_key_whose_task_was_deleted_still_returns_its_id(store):
    first = store.enqueue(new(1, key="k")).id
    store.delete(first)

    again = store.enqueue_many([new(1, key="k")])[0]

    assert (again.task_id, again.task, again.created) == (first, None, False)
    assert store.stats() == counts()
    with pytest.raises(TaskNotFound):
        store.enqueue(new(1, key="k"))
    with pytest.raises(IdempotencyConflict):
        store.enqueue(new(1, key="k", content=b"other"))


# --- the dequeue order, for any interleaving ---------------------------------------------------

QUEUES = ("a", "b")
steps = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.sampled_from(QUEUES), st.integers(-3, 3)),
        st.tuples(st.just("dequeue"), st.sampled_from(QUEUES), st.integers(1, 3)),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_dequeue_order_is_priority_then_enqueue_order_for_any_interleaving(ops):
    store = MemoryStore(Policy(lease_seconds=3600))
    model: dict[str, list[tuple[int, int, str]]] = {queue: [] for queue in QUEUES}
    for number, (kind, queue, value) in enumerate(ops):
        if kind == "enqueue":
            task = store.enqueue(new(number, queue=queue, priority=value))
            model[queue].append((-value, number, task.id))
            continue
        model[queue].sort()
        expected = [task_id for _, _, task_id in model[queue][:value]]
        del model[queue][:value]
        taken = store.dequeue(queue=queue) if value == 1 else store.dequeue_many(value, queue=queue)
        taken = [] if taken is None else taken if isinstance(taken, list) else [taken]
        assert [task.id for task in taken] == expected
    for queue in QUEUES:
        assert view_ids(store, queue) == [task_id for *_, task_id in sorted(model[queue])]
