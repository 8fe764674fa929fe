"""The SQLite store keeps task history in the task's row: it survives closing the store and a
kill -9 of a real server, a database made before history existed gains it on open, and the
workers hold their processing tasks again once the store is reopened."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.storage.test_queue_control_servers import dequeue, enqueue, sqlite_server
from tests.support import call
from tornado_queue.models import (
    HISTORY_LENGTH,
    Happened,
    HistoryEntry,
    NewTask,
    history_of,
)
from tornado_queue.storage import Policy, SqliteStore

OWN_STORE = True  # each test opens (and reopens) its own database file


def new(**fields) -> NewTask:
    return NewTask(payload=b"{}", **fields)


def events(store: SqliteStore, task_id: str) -> list[str]:
    return [entry.event for entry in history_of(store.get(task_id))]


def test_every_kind_of_history_survives_closing_and_reopening_the_store(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    path = tmp_path / "tasks.db"
    store = SqliteStore(path, policy, clock)
    # Given tasks with each kind of history: a completed one, one failed for good and retried,
    # a lease that ran out, a released dependent, and one longer than HISTORY_LENGTH
    done = store.enqueue(new())
    leased = store.dequeue_many(1, worker="w1")[0]
    clock.advance(1)
    store.complete(done.id, b"1", leased.lease_id)
    retried = store.enqueue(new(queue="again", max_attempts=2))
    leased = store.dequeue(queue="again")
    store.fail(retried.id, "bad input", retry=False, lease_id=leased.lease_id)
    store.retry(retried.id)
    store.dequeue_many(1, lease_seconds=5, queue="again", worker="w2")
    clock.advance(6)
    store.reap()
    parent = store.enqueue(new())
    child = store.enqueue(new(after=(parent.id,)))
    store.complete(parent.id, None, store.dequeue().lease_id)
    long = store.enqueue(new(queue="long", max_attempts=100))
    for _ in range(12):
        store.dequeue_many(1, lease_seconds=1, queue="long")
        clock.advance(2)
        store.reap()
    ids = [done.id, retried.id, parent.id, child.id, long.id]
    before = {task_id: history_of(store.get(task_id)) for task_id in ids}

    # When the store is closed and opened again on the same file
    store.close()
    reopened = SqliteStore(path, policy, clock)
    try:
        # Then each task's history is as it was, entry for entry
        assert {task_id: history_of(reopened.get(task_id)) for task_id in ids} == before
        assert events(reopened, retried.id) == [
            "enqueued",
            "delivered",
            "dead",
            "retried",
            "delivered",
            "lease_expired",
        ]
        _, delivered, completed = history_of(reopened.get(done.id))
        assert (delivered.event, delivered.worker) == ("delivered", "w1")
        assert completed == HistoryEntry(delivered.at + 1, "completed", delivered.lease_id, "w1")
        assert events(reopened, child.id) == ["enqueued", "waiting", "released"]
        assert len(history_of(reopened.get(long.id))) == HISTORY_LENGTH
        # and it goes on from there
        leased = reopened.dequeue(queue="again")
        assert leased.id == retried.id
        reopened.complete(retried.id, None, leased.lease_id)
        assert events(reopened, retried.id)[-2:] == ["delivered", "completed"]
    finally:
        reopened.close()


def test_a_database_made_before_task_history_gains_it_on_open(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    # Given a database whose tasks table has no history column, holding a pending task and one
    # processing
    path = tmp_path / "tasks.db"
    store = SqliteStore(path, policy, clock)
    waiting = store.enqueue(new())
    running = store.enqueue(new())
    leased = store.dequeue()
    store.close()
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE tasks DROP COLUMN history")
        columns = {row[1] for row in db.execute("PRAGMA table_info(tasks)")}
    db.close()
    assert "history" not in columns

    # When a store opens it
    store = SqliteStore(path, policy, clock)
    try:
        # Then its tasks read as only enqueued, and every change from now on is recorded
        assert history_of(store.get(waiting.id)) == [HistoryEntry(clock.now, Happened.ENQUEUED)]
        assert leased.id == waiting.id
        store.complete(waiting.id, None, leased.lease_id)
        assert events(store, waiting.id) == ["enqueued", "completed"]
        again = store.dequeue_many(1, worker="w")[0]
        assert again.id == running.id
        assert events(store, running.id) == ["enqueued", "delivered"]
    finally:
        store.close()


def test_workers_hold_their_processing_tasks_again_after_a_reopen(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    # Given two tasks delivered to worker "a" (one of them completed) and one to "b" on a
    # five-second lease, and a task delivered to a consumer that named no worker
    path = tmp_path / "tasks.db"
    store = SqliteStore(path, policy, clock)
    for _ in range(4):
        store.enqueue(new())
    first, second = store.dequeue_many(2, worker="a")
    store.complete(first.id, None, first.lease_id)
    short = store.dequeue_many(1, lease_seconds=5, worker="b")[0]
    store.dequeue()
    store.close()

    # When the store is opened again after b's lease ran out
    clock.advance(6)
    store = SqliteStore(path, policy, clock)
    try:
        # Then "a" holds its processing task again, and "b" nothing: its lease expired
        listing = {info.id: info for info in store.workers()}
        assert set(listing) == {"a", "b"}
        assert listing["a"].tasks == (second.id,)
        assert listing["b"].tasks == ()
        assert events(store, short.id)[-1] == "lease_expired"
        # and completing the task lets "a" go of it
        store.complete(second.id, None, second.lease_id)
        assert {info.id: info.tasks for info in store.workers()} == {"a": (), "b": ()}
    finally:
        store.close()


def test_event_ids_of_an_earlier_opening_ask_for_a_resync(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    path = tmp_path / "tasks.db"
    store = SqliteStore(path, policy, clock)
    heard = []
    store.event_feed.start()
    store.event_feed.subscribe(heard.extend)
    store.enqueue(new())
    store.close()
    assert [event.event for event in heard] == ["enqueued"]

    reopened = SqliteStore(path, policy, clock)
    try:
        reopened.event_feed.start()
        assert reopened.event_feed.since(heard[0].id) is None
    finally:
        reopened.close()


def test_an_operation_rolled_back_half_way_leaves_no_trace_in_the_feed_or_the_workers(
    tmp_path: Path, clock: FakeClock, policy: Policy, monkeypatch: pytest.MonkeyPatch
):
    store = SqliteStore(tmp_path / "tasks.db", policy, clock)
    try:
        heard = []
        store.event_feed.start()
        store.event_feed.subscribe(heard.extend)
        task = store.enqueue(new())
        leased = store.dequeue_many(1, worker="w")[0]

        # When a complete fails after it has finished the task in its transaction
        def broken(*_args: object) -> None:
            raise RuntimeError("broken after the change")

        monkeypatch.setattr(store, "_slot_freed", broken)
        with pytest.raises(RuntimeError, match="broken after the change"):
            store.complete(task.id, None, leased.lease_id)
        monkeypatch.undo()

        # Then neither its history entry, nor its event, nor the worker letting go remain
        assert events(store, task.id) == ["enqueued", "delivered"]
        assert [event.event for event in heard] == ["enqueued", "delivered"]
        assert [info.tasks for info in store.workers()] == [(task.id,)]
        # and the same complete, done again, records each of them once
        store.complete(task.id, None, leased.lease_id)
        assert events(store, task.id) == ["enqueued", "delivered", "completed"]
        assert [event.event for event in heard] == ["enqueued", "delivered", "completed"]
        assert [(info.tasks, info.completed) for info in store.workers()] == [((), 1)]
    finally:
        store.close()


def test_history_survives_a_kill_9_of_the_server_once_answered(tmp_path: Path):
    # Given a task that failed for good, was retried and then completed through a real server,
    # which is killed with SIGKILL as soon as the last answer came
    with sqlite_server(tmp_path) as server:
        task = enqueue(server.url, "jobs", max_attempts=1)
        first = dequeue(server.url, "jobs")
        fail = {"error": "boom", "lease_id": first["lease_id"]}
        status, failed = call(server.url, "PUT", f"/tasks/{task['id']}/fail", fail)
        assert (status, failed["status"]) == (200, "failed"), failed
        status, retried = call(server.url, "POST", f"/tasks/{task['id']}/retry")
        assert (status, retried["status"]) == (200, "pending"), retried
        second = dequeue(server.url, "jobs")
        assert second["id"] == task["id"]
        path = f"/tasks/{task['id']}/complete?lease_id={second['lease_id']}"
        assert call(server.url, "PUT", path)[0] == 200
        server.kill()

    # Then the database, opened again, holds the whole history with the leases it named
    store = SqliteStore(tmp_path / "q.db")
    try:
        history = history_of(store.get(task["id"]))
    finally:
        store.close()
    assert [(entry.event, entry.lease_id) for entry in history] == [
        ("enqueued", None),
        ("delivered", first["lease_id"]),
        ("dead", first["lease_id"]),
        ("retried", None),
        ("delivered", second["lease_id"]),
        ("completed", second["lease_id"]),
    ]
    assert history[2].error == "boom"
