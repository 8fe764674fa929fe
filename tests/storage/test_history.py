"""Task history, workers and the event feed in every store: each change to a task is one
history entry (the last 20 kept, oldest first) and, once the feed is started, one event with
an id a client can resume from; a worker that names itself holds what it was delivered."""

from __future__ import annotations

import threading

import pytest

from tests.conftest import FakeClock
from tornado_queue.limits import WORKER_SEEN_SECONDS
from tornado_queue.models import (
    HISTORY_LENGTH,
    Happened,
    HistoryEntry,
    NewTask,
    RateLimit,
    history_of,
)
from tornado_queue.storage.base import EXPIRED_ERROR
from tornado_queue.storage.events import StreamEvent


def new(**fields) -> NewTask:
    return NewTask(payload=b"{}", **fields)


def events(store, task_id: str) -> list[str]:
    return [entry.event for entry in history_of(store.get(task_id))]


def test_a_new_task_has_one_entry_enqueued_at_its_creation(store, clock: FakeClock):
    task = store.enqueue(new())

    assert history_of(store.get(task.id)) == [HistoryEntry(clock.now, Happened.ENQUEUED)]


def test_a_lifecycle_records_delivery_and_completion_with_lease_and_worker(store, clock: FakeClock):
    task = store.enqueue(new())
    clock.advance(1)
    leased = store.dequeue_many(1, worker="host-1/42/0")[0]
    clock.advance(2)
    store.complete(task.id, b"1", leased.lease_id)

    enqueued, delivered, completed = history_of(store.get(task.id))
    assert enqueued == HistoryEntry(clock.now - 3, Happened.ENQUEUED)
    assert delivered == HistoryEntry(clock.now - 2, "delivered", leased.lease_id, "host-1/42/0")
    assert completed == HistoryEntry(clock.now, "completed", leased.lease_id, "host-1/42/0")
    assert history_of(leased)[-1] == delivered  # the dequeue's answer shows it already


def test_a_failed_attempt_with_a_retry_to_follow_records_failed(store):
    task = store.enqueue(new(max_attempts=2))
    leased = store.dequeue()
    store.fail(task.id, "boom", lease_id=leased.lease_id)

    failed = history_of(store.get(task.id))[-1]
    assert (failed.event, failed.lease_id, failed.error) == ("failed", leased.lease_id, "boom")


def test_failing_for_good_records_dead_and_a_retry_records_retried(store, clock: FakeClock):
    task = store.enqueue(new(max_attempts=1))
    leased = store.dequeue()
    store.fail(task.id, "bad input", lease_id=leased.lease_id)
    store.retry(task.id)

    assert events(store, task.id) == ["enqueued", "delivered", "dead", "retried"]
    dead = history_of(store.get(task.id))[2]
    assert (dead.lease_id, dead.error) == (leased.lease_id, "bad input")


def test_a_lease_that_runs_out_is_recorded_then_the_task_dies_on_its_last(store, clock: FakeClock):
    task = store.enqueue(new(max_attempts=2))
    first = store.dequeue_many(1, lease_seconds=5, worker="w1")[0]
    clock.advance(6)
    second = store.dequeue_many(1, lease_seconds=5, worker="w2")[0]
    clock.advance(6)
    store.reap()

    history = history_of(store.get(task.id))
    assert [entry.event for entry in history] == [
        "enqueued",
        "delivered",
        "lease_expired",
        "delivered",
        "lease_expired",
        "dead",
    ]
    assert (history[2].lease_id, history[2].worker) == (first.lease_id, "w1")
    assert (history[4].lease_id, history[4].worker) == (second.lease_id, "w2")
    assert history[5].error == "lease expired"


def test_dead_lettering_and_expiry_are_recorded(store, clock: FakeClock):
    store.configure("jobs", {"dead_letter_queue": "graveyard"})
    task = store.enqueue(new(queue="jobs", max_attempts=1))
    leased = store.dequeue(queue="jobs")
    store.fail(task.id, "no", lease_id=leased.lease_id)
    assert events(store, task.id)[-1] == "dead_lettered"
    assert store.get(task.id).queue == "graveyard"

    short = store.enqueue(new(expires_in=10))
    clock.advance(11)
    store.reap()
    last = history_of(store.get(short.id))[-1]
    assert (last.event, last.error) == ("expired", EXPIRED_ERROR)


def test_dependencies_record_waiting_and_released(store):
    parent = store.enqueue(new())
    child = store.enqueue(new(after=(parent.id,)))
    assert events(store, child.id) == ["enqueued", "waiting"]

    leased = store.dequeue()
    store.complete(parent.id, None, leased.lease_id)
    assert events(store, child.id) == ["enqueued", "waiting", "released"]


def test_a_dependent_failed_by_its_parent_records_dead_naming_it(store):
    parent = store.enqueue(new(max_attempts=1))
    child = store.enqueue(new(after=(parent.id,)))
    leased = store.dequeue()
    store.fail(parent.id, "x", lease_id=leased.lease_id)

    last = history_of(store.get(child.id))[-1]
    assert last.event == "dead" and parent.id in last.error


def test_history_keeps_the_last_twenty_entries(store, clock: FakeClock):
    task = store.enqueue(new(max_attempts=100))
    for _ in range(12):  # 24 entries after the enqueue: delivered, lease_expired each time
        store.dequeue_many(1, lease_seconds=1)
        clock.advance(2)
        store.reap()

    history = history_of(store.get(task.id))
    assert len(history) == HISTORY_LENGTH
    assert [entry.event for entry in history[:2]] == ["delivered", "lease_expired"]
    assert history[-1].event == "lease_expired"
    assert [entry.at for entry in history] == sorted(entry.at for entry in history)


def test_workers_hold_what_they_were_delivered_until_it_stops_processing(store, clock: FakeClock):
    first, second, third = (store.enqueue(new()) for _ in range(3))
    a = store.dequeue_many(2, worker="a")
    b = store.dequeue_many(1, lease_seconds=5, worker="b")[0]
    assert {task.id for task in a} == {first.id, second.id}

    listing = {info.id: info for info in store.workers()}
    assert set(listing) == {"a", "b"}
    assert set(listing["a"].tasks) == {first.id, second.id}
    assert listing["b"].tasks == (third.id,)

    store.complete(a[0].id, None, a[0].lease_id)
    store.fail(a[1].id, "no", lease_id=a[1].lease_id)
    clock.advance(6)  # b's lease runs out
    store.reap()

    listing = {info.id: info for info in store.workers()}
    assert (listing["a"].tasks, listing["a"].completed, listing["a"].failed) == ((), 1, 1)
    assert (listing["b"].tasks, listing["b"].completed, listing["b"].failed) == ((), 0, 0)
    assert listing["a"].last_seen == clock.now - 6
    assert b.id == third.id


def test_a_worker_unseen_for_a_minute_is_no_longer_listed(store, clock: FakeClock):
    store.enqueue(new())
    store.dequeue_many(1, worker="old")
    clock.advance(WORKER_SEEN_SECONDS / 2)
    store.saw_worker("new")
    assert [info.id for info in store.workers()] == ["new", "old"]  # latest seen first

    clock.advance(WORKER_SEEN_SECONDS / 2 + 1)
    assert [info.id for info in store.workers()] == ["new"]
    store.saw_worker("old")  # a fenced call: seen again
    assert {info.id for info in store.workers()} == {"new", "old"}


def test_the_feed_records_nothing_until_started(store):
    task = store.enqueue(new())
    feed = store.event_feed
    feed.start()
    heard = Heard()
    feed.subscribe(heard)
    leased = store.dequeue()
    store.complete(task.id, None, leased.lease_id)

    received = heard.first(2)
    assert [event.event for event in received] == ["delivered", "completed"]
    delivered, completed = received
    assert delivered.data["id"] == task.id and delivered.data["status"] == "processing"
    assert delivered.data["lease_id"] == leased.lease_id
    assert completed.data["status"] == "completed" and completed.data["queue"] == "default"
    assert feed.position(delivered.id) < feed.position(completed.id)


def test_the_feed_answers_what_came_after_an_id_or_asks_for_a_resync(store):
    feed = store.event_feed
    feed.start()
    heard = Heard()
    feed.subscribe(heard)
    ids = [store.enqueue(new(queue="q")).id for _ in range(3)]
    received = heard.first(3)
    assert [event.data["id"] for event in received] == ids

    missed = feed.since(received[0].id)
    assert missed is not None
    assert [event.id for event in missed] == [event.id for event in received[1:]]
    assert feed.since(received[-1].id) == []
    assert feed.since("not-an-id-of-this-feed") is None


def test_deleting_a_task_is_an_event(store):
    task = store.enqueue(new())
    feed = store.event_feed
    feed.start()
    heard = Heard()
    feed.subscribe(heard)
    store.delete(task.id)

    (deleted,) = heard.first(1)
    assert (deleted.event, deleted.data["id"]) == ("deleted", task.id)


class Heard:
    """What a feed hands its subscriber: a store sharing its feed across servers (Redis)
    hands events over from a reader thread, so a test waits for them (bounded)."""

    def __init__(self) -> None:
        self.events: list[StreamEvent] = []
        self._changed = threading.Condition()

    def __call__(self, events) -> None:
        with self._changed:
            self.events.extend(events)
            self._changed.notify_all()

    def first(self, count: int, timeout: float = 5.0) -> list[StreamEvent]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.events) >= count, timeout):
                pytest.fail(f"heard {len(self.events)} events of {count}: {self.events}")
            return self.events[:count]


def test_a_rate_limited_queue_still_records_each_delivery(store, clock: FakeClock):
    store.configure("slow", {"rate_limit": RateLimit(1, 60)})
    task = store.enqueue(new(queue="slow"))
    store.dequeue_many(5, queue="slow", worker="w")
    assert events(store, task.id) == ["enqueued", "delivered"]
