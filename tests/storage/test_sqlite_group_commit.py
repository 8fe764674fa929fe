"""SqliteStore group commit: operations queued while the writer is busy share one transaction
(one fsync), each in its own savepoint, and nobody is answered before that commit returns.

A `Gate` in place of the store's connection holds a COMMIT until the test lets it go, so the
test knows exactly which operations are queued behind it: they form the next group."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from queue import SimpleQueue
from typing import Any

import pytest

from tests.support import new_task
from tornado_queue.errors import LeaseLost, OutcomeUnknown, StoreUnavailable
from tornado_queue.models import QueueSettings, TaskStatus
from tornado_queue.storage import SqliteStore, group_commit

WAIT = 10.0  # seconds before a test gives up on something that should happen at once


class Gate:
    """The store's connection, counting commits: `hold()` makes the next COMMIT wait for
    `release()`, `fail_commit(after=n)` fails the COMMIT after the next n, `fail(which)` fails
    the next statement `which` picks."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.commits = 0
        self.committing = threading.Event()
        self._released = threading.Event()
        self._holding = False
        self._attempts = 0
        self._failing_attempt = -1
        self._fails: Callable[[str], bool] = lambda _sql: False

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        if sql == "COMMIT":
            self._commit_gate()
        elif self._fails(sql):
            self._fails = lambda _sql: False
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.execute(sql, parameters)

    def _commit_gate(self) -> None:
        if self._holding:
            self._holding = False
            self.committing.set()
            assert self._released.wait(WAIT), "the test never released the commit"
        self._attempts += 1
        if self._attempts - 1 == self._failing_attempt:
            raise sqlite3.OperationalError("disk I/O error")
        self.commits += 1

    def hold(self) -> None:
        self.committing.clear()
        self._released.clear()
        self._holding = True

    def release(self) -> None:
        self._released.set()

    def fail_commit(self, after: int = 0) -> None:
        self._failing_attempt = self._attempts + after

    def fail(self, which: Callable[[str], bool]) -> None:
        self._fails = which

    def close(self) -> None:
        self.real.close()


class CountingInbox(SimpleQueue):  # type: ignore[type-arg]
    """The writer's inbox, telling the test how many operations were ever queued."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0
        self.changed = threading.Condition()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        super().put(item, block, timeout)
        with self.changed:
            self.queued += 1
            self.changed.notify_all()

    def wait_for(self, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.queued >= count, WAIT), self.queued


@pytest.fixture
def sqlite(monkeypatch, policy, clock, tmp_path: Path) -> Iterator[SqliteStore]:
    monkeypatch.setattr(group_commit, "SimpleQueue", CountingInbox)
    store = SqliteStore(tmp_path / "tasks.db", policy, clock)
    store._db = Gate(store._db)  # type: ignore[assignment]
    yield store
    store.close()


@pytest.fixture
def gate(sqlite: SqliteStore) -> Gate:
    return sqlite._db  # type: ignore[return-value]


@pytest.fixture
def inbox(sqlite: SqliteStore) -> CountingInbox:
    return sqlite._writer._inbox  # type: ignore[return-value]


class Call(threading.Thread):
    """One store call on its own thread, keeping its answer: a result or an exception."""

    def __init__(self, call: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.call()
        except BaseException as error:  # kept for the test to look at
            self.error = error

    def answer(self) -> Any:
        self.join(WAIT)
        assert not self.is_alive(), "the call was never answered"
        if self.error is not None:
            raise self.error
        return self.result


def queue_behind_a_held_commit(
    sqlite: SqliteStore, gate: Gate, inbox: CountingInbox, calls: list[Callable[[], Any]]
) -> list[Call]:
    """Start a first operation and hold its COMMIT; then queue `calls`, in this order, behind
    it: they are the next group. Returns the started calls, the first one first."""
    gate.hold()
    queued = inbox.queued
    started = [Call(lambda: sqlite.enqueue(new_task()))]
    started[0].start()
    assert gate.committing.wait(WAIT)
    for call in calls:
        started.append(Call(call))
        started[-1].start()
        queued += 1
        inbox.wait_for(queued + 1)
    return started


def committed_tasks(path: Path) -> int:
    """Tasks on disk, as a second connection sees them: only what was committed."""
    with closing(sqlite3.connect(path)) as other:
        return other.execute("SELECT count(*) FROM tasks").fetchone()[0]


def test_operations_queued_during_a_commit_share_the_next_transaction(sqlite, gate, inbox):
    calls = [lambda: sqlite.enqueue(new_task()) for _ in range(20)]
    started = queue_behind_a_held_commit(sqlite, gate, inbox, calls)
    commits = sqlite.commits

    gate.release()

    assert all(call.answer().status is TaskStatus.PENDING for call in started)
    assert sqlite.commits == commits + 2, "20 operations after the held one: one more commit"
    assert gate.commits == sqlite.commits
    assert sqlite.stats()[TaskStatus.PENDING] == 21


def test_many_threads_commit_in_fewer_transactions_than_operations(sqlite, gate):
    threads, rounds = 16, 30
    before = sqlite.commits

    def lifecycles() -> None:
        for _ in range(rounds):
            sqlite.enqueue(new_task())
            task = sqlite.dequeue()
            assert task is not None
            sqlite.complete(task.id, lease_id=task.lease_id)

    workers = [Call(lifecycles) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.answer()

    operations = threads * rounds * 3
    assert sqlite.commits - before < operations
    assert sqlite.stats()[TaskStatus.COMPLETED] == threads * rounds


def test_a_refused_operation_is_undone_alone_and_its_neighbours_commit(sqlite, gate, inbox):
    held, other = sqlite.enqueue(new_task()), sqlite.enqueue(new_task())
    leased = {task.id: task for task in sqlite.dequeue_many(2)}

    def enqueue_then_break() -> None:
        def apply(tx: Any) -> None:
            sqlite._insert(tx, "half-done", new_task(), sqlite._next_seq(tx), QueueSettings(), None)
            raise ValueError("broken after a change")

        sqlite._run(apply)

    started = queue_behind_a_held_commit(
        sqlite,
        gate,
        inbox,
        [
            lambda: sqlite.complete(held.id, lease_id=leased[held.id].lease_id),
            lambda: sqlite.complete(other.id, lease_id="a lease it never had"),
            enqueue_then_break,
            lambda: sqlite.enqueue(new_task()),
        ],
    )
    commits = sqlite.commits
    gate.release()

    _plug, completed, refused, broken, enqueued = started
    assert completed.answer().status is TaskStatus.COMPLETED
    with pytest.raises(LeaseLost):
        refused.answer()
    with pytest.raises(ValueError, match="broken after a change"):
        broken.answer()
    assert enqueued.answer().status is TaskStatus.PENDING
    assert sqlite.commits == commits + 2, "the four calls were not one group"
    assert sqlite.get("half-done") is None
    assert sqlite.get(other.id).lease_id == leased[other.id].lease_id
    assert sqlite.get(held.id).status is TaskStatus.COMPLETED


def test_a_failed_commit_answers_every_member_with_outcome_unknown(sqlite, gate, inbox, tmp_path):
    task = sqlite.enqueue(new_task())
    calls = [lambda: sqlite.enqueue(new_task()) for _ in range(5)]
    calls.append(lambda: sqlite.complete(task.id, lease_id="not its lease"))
    started = queue_behind_a_held_commit(sqlite, gate, inbox, calls)
    gate.fail_commit(after=1)  # the held commit goes through, the next group's fails

    gate.release()

    plug, *group = started
    assert plug.answer().status is TaskStatus.PENDING
    for call in group:
        with pytest.raises(OutcomeUnknown) as unknown:
            call.answer()
        assert isinstance(unknown.value.cause, sqlite3.OperationalError)
    assert committed_tasks(tmp_path / "tasks.db") == 2, "a failed group left rows behind"


def test_a_failed_commit_fails_only_its_own_group(sqlite, gate, inbox):
    started = queue_behind_a_held_commit(
        sqlite, gate, inbox, [lambda: sqlite.enqueue(new_task()) for _ in range(3)]
    )
    gate.fail_commit()

    gate.release()

    with pytest.raises(OutcomeUnknown):
        started[0].answer()
    assert all(call.answer().status is TaskStatus.PENDING for call in started[1:])
    assert sqlite.stats()[TaskStatus.PENDING] == 3


def test_nobody_is_answered_before_the_commit_returns(sqlite, gate, tmp_path):
    gate.hold()
    call = Call(lambda: sqlite.enqueue(new_task()))
    call.start()
    assert gate.committing.wait(WAIT)

    call.join(0.2)  # nothing to wait for: the call must still be waiting
    assert call.is_alive()
    assert committed_tasks(tmp_path / "tasks.db") == 0

    gate.release()

    assert call.answer().status is TaskStatus.PENDING
    assert committed_tasks(tmp_path / "tasks.db") == 1


def test_an_io_error_before_the_commit_fails_what_ran_and_not_what_waits(sqlite, gate, inbox):
    target = sqlite.enqueue(new_task())
    started = queue_behind_a_held_commit(
        sqlite,
        gate,
        inbox,
        [
            lambda: sqlite.enqueue(new_task()),
            lambda: sqlite.delete(target.id),
            lambda: sqlite.enqueue(new_task()),
        ],
    )
    commits = sqlite.commits
    # The delete fails mid-group: the transaction that held the first enqueue is lost.
    gate.fail(lambda sql: sql.startswith("DELETE FROM tasks WHERE id"))

    gate.release()

    plug, before, deleted, after = started
    assert plug.answer().status is TaskStatus.PENDING
    for call in (before, deleted):
        with pytest.raises(StoreUnavailable):
            call.answer()
    assert after.answer().status is TaskStatus.PENDING
    assert sqlite.commits == commits + 2
    assert sqlite.stats()[TaskStatus.PENDING] == 3, "target, the held one and the last one"


def test_close_answers_what_is_queued_then_refuses(sqlite, gate, inbox):
    started = queue_behind_a_held_commit(
        sqlite, gate, inbox, [lambda: sqlite.enqueue(new_task()) for _ in range(3)]
    )
    queued = inbox.queued
    stopping = Call(sqlite.close)
    stopping.start()
    inbox.wait_for(queued + 1)  # the close queued its stop behind the three

    gate.release()

    stopping.answer()
    assert all(call.answer().status is TaskStatus.PENDING for call in started)
    assert not sqlite._writer._thread.is_alive()
    with pytest.raises(StoreUnavailable):
        sqlite.stats()
