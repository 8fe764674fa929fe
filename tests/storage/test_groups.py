"""Ordered groups in every store: the tasks of one group are delivered one at a time, in the
order they became ready; the next one's turn comes when the one before is completed, deleted,
dead, dead-lettered or expired, and a retry keeps the head. Groups compete with other tasks by
their head's priority and place in line, last across a SQLite restart and hold across stores
sharing one Redis."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FakeClock
from tests.support import shared_redis_stores
from tornado_queue.models import NewTask, Task, TaskStatus
from tornado_queue.storage import Policy, SqliteStore


def put(store, name: str, group: str | None = "customer-1", **fields) -> Task:
    payload = b'{"name":"%s"}' % name.encode()
    return store.enqueue(NewTask(payload=payload, group=group, **fields))


def name_of(task: Task | None) -> str | None:
    return None if task is None else task.payload.decode().split('"')[3]


def take(store, count: int = 1) -> list[str]:
    return [name_of(task) for task in store.dequeue_many(count)]


def finish(store, task: Task) -> None:
    store.complete(task.id, None, task.lease_id)


def test_a_group_hands_out_one_task_at_a_time_in_order(store):
    for name in ("a1", "a2", "a3"):
        put(store, name)

    first = store.dequeue()
    assert name_of(first) == "a1"
    assert store.dequeue() is None  # a2 waits for a1
    finish(store, first)
    second = store.dequeue()
    assert name_of(second) == "a2"
    finish(store, second)
    assert take(store, 10) == ["a3"]


def test_other_groups_and_ungrouped_tasks_go_on_while_a_group_waits(store):
    put(store, "a1", "A")
    put(store, "a2", "A")
    put(store, "b1", "B")
    put(store, "u1", None)
    put(store, "b2", "B")

    assert take(store, 10) == ["a1", "b1", "u1"]  # one per group, never two of one group
    assert store.stats()[TaskStatus.PENDING] == 2  # a2 and b2 wait, counted as pending


def test_the_next_task_of_a_group_goes_when_the_head_ends_in_any_way(store, clock: FakeClock):
    endings = {
        "completed": lambda head: store.complete(head.id, None, head.lease_id),
        "dead": lambda head: store.fail(head.id, "no", retry=False, lease_id=head.lease_id),
    }
    for group, end in endings.items():
        put(store, "head", group)
        put(store, "next", group)
        head = store.dequeue()
        assert store.dequeue() is None
        end(head)
        following = store.dequeue()
        assert name_of(following) == "next" and following.group == group
        finish(store, following)

    put(store, "head", "deleted")
    put(store, "next", "deleted")
    store.delete(store.view(10)[0][0].id)  # the head, pending
    assert name_of(store.dequeue()) == "next"

    store.configure("default", {"dead_letter_queue": "dead"})
    put(store, "head", "moved")
    put(store, "next", "moved")
    head = store.dequeue()
    store.fail(head.id, "no", retry=False, lease_id=head.lease_id)
    assert store.get(head.id).queue == "dead"
    assert name_of(store.dequeue()) == "next"


def test_a_failed_attempt_with_a_retry_keeps_the_head_of_its_group(store, clock: FakeClock):
    put(store, "a1")
    put(store, "a2")
    head = store.dequeue()

    store.fail(head.id, "try again", retry=True, lease_id=head.lease_id)

    assert store.get(head.id).status is TaskStatus.SCHEDULED
    assert store.dequeue() is None  # a2 does not overtake a1 during its backoff
    clock.advance(1.0)
    again = store.dequeue()
    assert (again.id, again.attempts) == (head.id, 2)
    finish(store, again)
    assert take(store) == ["a2"]


def test_a_lost_lease_keeps_the_head_of_its_group(store, clock: FakeClock):
    put(store, "a1")
    put(store, "a2")
    head = store.dequeue()

    clock.advance(31)  # past the 30 s lease

    again = store.dequeue()
    assert again.id == head.id
    assert store.dequeue() is None


def test_a_group_competes_with_its_heads_priority_and_place(store):
    put(store, "a1", "A")
    put(store, "a2", "A")
    put(store, "u1", None)
    head = store.dequeue()
    assert name_of(head) == "a1"
    put(store, "urgent", None, priority=5)

    finish(store, head)

    # a2 joined the line before u1, so it goes first; the higher priority goes before both
    assert take(store, 3) == ["urgent", "a2", "u1"]


def test_a_delayed_task_joins_its_group_when_it_is_ready(store, clock: FakeClock):
    put(store, "late", delay=10)
    put(store, "early")
    first = store.dequeue()
    assert name_of(first) == "early"
    clock.advance(10)
    assert store.dequeue() is None  # "late" is ready now, but waits behind "early"
    finish(store, first)
    assert take(store) == ["late"]


def test_pending_lists_the_deliverable_tasks_then_those_waiting_in_their_group(store):
    put(store, "a1", "A")
    put(store, "a2", "A")
    put(store, "b1", "B")
    put(store, "a3", "A")

    page, total = store.view(10)

    assert [name_of(task) for task in page] == ["a1", "b1", "a2", "a3"]
    assert total == 4
    assert [name_of(task) for task in store.view(2, 1)[0]] == ["b1", "a2"]
    assert [name_of(task) for task in store.view(5, 3)[0]] == ["a3"]


def test_deleting_a_waiting_task_keeps_the_rest_in_order(store):
    head = put(store, "a1")
    middle = put(store, "a2")
    put(store, "a3")

    store.delete(middle.id)

    leased = store.dequeue()
    assert leased.id == head.id
    finish(store, leased)
    assert take(store) == ["a3"]


def test_a_retried_task_joins_the_tail_of_its_group(store):
    put(store, "a1")
    head = store.dequeue()
    store.fail(head.id, "dead", retry=False, lease_id=head.lease_id)
    put(store, "a2")

    store.retry(head.id)

    assert take(store) == ["a2"]
    assert store.view(10)[0][0].id == head.id  # waiting behind a2


def test_every_task_of_a_batch_in_one_group_waits_its_turn(store):
    store.enqueue_many([NewTask(payload=b'{"name":"b%d"}' % n, group="G") for n in range(3)])
    order = []
    while (task := store.dequeue()) is not None:
        order.append(name_of(task))
        assert store.dequeue() is None
        finish(store, task)
    assert order == ["b0", "b1", "b2"]


def test_groups_of_different_queues_are_separate(store):
    store.enqueue(NewTask(payload=b'{"name":"x"}', group="G", queue="one"))
    store.enqueue(NewTask(payload=b'{"name":"y"}', group="G", queue="two"))

    assert store.dequeue(queue="one") is not None
    assert store.dequeue(queue="two") is not None


def test_sqlite_keeps_groups_across_a_restart(tmp_path: Path, clock: FakeClock, policy: Policy):
    first = SqliteStore(tmp_path / "q.db", policy, clock)
    put(first, "a1")
    put(first, "a2")
    head = first.dequeue()
    first.close()

    again = SqliteStore(tmp_path / "q.db", policy, clock)
    try:
        assert again.dequeue() is None
        finish(again, head)
        assert take(again) == ["a2"]
    finally:
        again.close()


def test_stores_sharing_one_redis_never_hand_out_two_tasks_of_a_group(
    redis_url: str, clock: FakeClock, policy: Policy
):
    with shared_redis_stores(redis_url, policy, clock, "{tq-groups}") as (a, b):
        put(a, "a1")
        put(b, "a2")
        head = a.dequeue()
        assert b.dequeue() is None
        finish(b, head)
        assert take(a) == ["a2"]
