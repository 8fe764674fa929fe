"""What result waiting and progress need from every store: finished listeners hear of tasks
completed, failed or deleted (on Redis, of watched ones, from any server sharing it); progress
is fenced, kept, and on disk across a SQLite restart (and an older database gains its column)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.conftest import FakeClock
from tests.support import shared_redis_stores, wait_until
from tornado_queue.errors import InvalidTransition, LeaseLost
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.storage import Policy, SqliteStore, Store


def leased(store: Store, **fields: object) -> tuple[str, str]:
    store.enqueue(NewTask(payload=b"{}", **fields))  # type: ignore[arg-type]
    task = store.dequeue()
    assert task is not None and task.lease_id is not None
    return task.id, task.lease_id


def test_finished_listeners_hear_of_completed_failed_and_deleted_tasks(store: Store):
    heard: list[str] = []
    store.add_finished_listener(heard.append)
    completed, lease = leased(store)
    failed, other = leased(store, max_attempts=1)
    kept = store.enqueue(NewTask(payload=b"{}")).id
    for task_id in (completed, failed, kept):
        store.watch(task_id, 10)

    store.complete(completed, b"1", lease)
    store.fail(failed, "boom", lease_id=other)
    store.delete(kept)

    # In process at once; on Redis from the script's reply, on the calling thread too.
    assert heard == [completed, failed, kept]


def test_a_lease_that_runs_out_for_good_is_heard(store: Store, clock: FakeClock):
    heard: list[str] = []
    store.add_finished_listener(heard.append)
    task_id, _ = leased(store, max_attempts=1)
    store.watch(task_id, 60)
    clock.advance(31)

    store.reap()

    assert heard == [task_id]
    assert store.get(task_id).status is TaskStatus.FAILED  # type: ignore[union-attr]


def test_a_retried_fail_is_not_a_finish(store: Store):
    heard: list[str] = []
    store.add_finished_listener(heard.append)
    task_id, lease = leased(store, max_attempts=3)
    store.watch(task_id, 10)

    store.fail(task_id, "again", lease_id=lease)

    assert heard == []


def test_watch_returns_the_task_or_none(store: Store):
    task = store.enqueue(NewTask(payload=b'{"a":1}'))

    watched = store.watch(task.id, 5)

    assert watched is not None and (watched.id, watched.payload) == (task.id, b'{"a":1}')
    assert store.watch("no-such-task", 5) is None


def test_progress_is_fenced_kept_and_does_not_touch_the_lease(store: Store):
    task_id, lease = leased(store)
    before = store.get(task_id)

    after = store.progress(task_id, b'{"done":1}', lease)

    assert after.progress == b'{"done":1}'
    assert after.lease_expires_at == before.lease_expires_at  # type: ignore[union-attr]
    with pytest.raises(LeaseLost):
        store.progress(task_id, b"2", "another-lease")
    store.complete(task_id, None, lease)
    with pytest.raises(InvalidTransition):
        store.progress(task_id, b"3")
    assert store.get(task_id).progress == b'{"done":1}'  # type: ignore[union-attr]


# --- Redis: only watched tasks are published, to every server -----------------------------------


def test_redis_tells_other_servers_of_watched_tasks_only(redis_url: str, policy: Policy):
    with shared_redis_stores(redis_url, policy, None, "{tq-results}") as (a, b):
        heard: list[str] = []
        a.add_finished_listener(heard.append)
        watched, lease = leased(b)
        unwatched, other = leased(b)
        assert a.watch(watched, 10) is not None

        b.complete(unwatched, None, other)
        b.complete(watched, None, lease)

        assert wait_until(lambda: heard == [watched])
        assert unwatched not in heard


# --- SQLite: on disk ---------------------------------------------------------------------------


def test_progress_survives_a_sqlite_restart(tmp_path: Path, policy: Policy, clock: FakeClock):
    path = tmp_path / "tasks.db"
    first = SqliteStore(path, policy, clock)
    task_id, lease = leased(first)
    first.progress(task_id, b'{"page":7}', lease)
    first.close()

    again = SqliteStore(path, policy, clock)
    try:
        task = again.get(task_id)
        assert task is not None
        assert (task.status, task.progress) == (TaskStatus.PROCESSING, b'{"page":7}')
    finally:
        again.close()


def test_a_database_without_the_progress_column_gains_it(tmp_path: Path, policy: Policy):
    path = tmp_path / "old.db"
    SqliteStore(path, policy).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX IF EXISTS ready_order")
        db.execute("ALTER TABLE tasks DROP COLUMN progress")

    store = SqliteStore(path, policy)
    try:
        task_id, lease = leased(store)
        assert store.progress(task_id, b"1", lease).progress == b"1"
    finally:
        store.close()
