"""Group commit for SQLite: one writer thread runs every operation queued since its last
commit in one transaction, so one fsync makes a whole group durable.

Each operation runs inside its own SAVEPOINT: one that raises is rolled back alone and answered
with its own exception, while its neighbours go on and commit. Nobody is answered before the
COMMIT that holds their effects has returned. When SQLite itself fails:
- before the COMMIT (BEGIN refused, an I/O error in a statement), the transaction is rolled back
  and the operations it held are answered with `StoreUnavailable`: nothing of theirs is applied;
  operations not yet started go to the next group;
- at the COMMIT, every operation of the group is answered with `OutcomeUnknown`: the commit may
  have reached the disk or not.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from queue import Empty, SimpleQueue
from typing import Any, Generic, Protocol, TypeVar

from tornado_queue.errors import OutcomeUnknown, StoreFailure, StoreUnavailable

T = TypeVar("T")

MAX_GROUP = 256
"""Most operations in one transaction, so that a burst cannot hold back everyone behind it."""

GROUP_SECONDS = 0.05
"""No operation joins a group that has been running this long (a few huge batches)."""


class Connection(Protocol):
    """What the writer needs of a connection (a test may put a wrapper in its place)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class Operation(Generic[T]):
    """One caller's work and, once answered, its result or exception.

    `opened` is what the group's opening step returned when this operation was the first of
    a group that committed (None otherwise), so that its caller can act on it."""

    __slots__ = ("_answered", "error", "opened", "result", "work")

    def __init__(self, work: Callable[[], T]) -> None:
        self.work = work
        self.result: T | None = None
        self.error: BaseException | None = None
        self.opened: Any = None
        # A lock held until the answer is in: the cheapest one-shot latch threading offers.
        self._answered = threading.Lock()
        self._answered.acquire()

    def answer(self) -> None:
        self._answered.release()

    def wait(self) -> None:
        self._answered.acquire()


class _WholeTransactionFailed(Exception):
    """SQLite failed in a way that may have undone the whole transaction."""

    def __init__(self, cause: sqlite3.OperationalError) -> None:
        super().__init__(str(cause))
        self.cause = cause


_STOP: Any = object()


class GroupWriter:
    """The thread that owns the connection while the store is open.

    `connection()` is read at every group (the store's current connection); `lock` is held
    for each whole group, so that others may use the connection between groups; `opening()`
    runs first in every transaction (reaping what is due) and what it returns goes to the
    group's first operation; `committed()` runs once a group's COMMIT has returned, before
    anyone is answered (with `lock` still held)."""

    def __init__(
        self,
        connection: Callable[[], Connection],
        lock: threading.Lock,
        opening: Callable[[], Any],
        name: str = "sqlite-writer",
        committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._connection = connection
        self._lock = lock
        self._opening = opening
        self._committed = committed
        self._inbox: SimpleQueue[Operation[Any]] = SimpleQueue()
        self._closing = threading.Lock()
        self._closed = False
        self.commits = 0
        """Transactions committed, for tests and benchmarks."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def run(self, work: Callable[[], T]) -> Operation[T]:
        """Queue `work` for the next group and wait until it is answered (see `Operation`)."""
        operation = Operation(work)
        with self._closing:
            if self._closed:
                raise StoreUnavailable(sqlite3.ProgrammingError("the store is closed"))
            self._inbox.put(operation)
        operation.wait()
        return operation

    def close(self) -> None:
        """Answer what is queued, then stop the thread."""
        with self._closing:
            if self._closed:
                return
            self._closed = True
            self._inbox.put(_STOP)
        self._thread.join()

    # -- the writer thread --------------------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._inbox.get()
            if first is _STOP:
                return
            with self._lock:
                stopping = self._group(first)

    def _group(self, first: Operation[Any]) -> bool:
        """Run one transaction starting with `first`; True when the writer is to stop."""
        db = self._connection()
        members, stopping = [first], False
        try:
            first.opened = _open(db, self._opening)
            started = time.monotonic()
            operation: Operation[Any] | None = first
            while operation is not None:
                _run_in_savepoint(db, operation)
                operation, stopping = self._next(len(members), started)
                if operation is not None:
                    members.append(operation)
        except _WholeTransactionFailed as failure:
            _rollback(db)
            _answer_all(members, failure.cause, StoreUnavailable)
            return stopping
        except BaseException as error:
            # A bug, or a database that is closed or damaged: each caller hears of it.
            _rollback(db)
            _answer_all(members, error, None)
            return stopping
        try:
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            _rollback(db)
            _answer_all(members, error, OutcomeUnknown)
            return stopping
        self.commits += 1
        self._committed()
        for member in members:
            member.answer()
        return stopping

    def _next(self, size: int, started: float) -> tuple[Operation[Any] | None, bool]:
        """The next operation for this group while it has room; and whether to stop after it.
        Operations are taken one at a time, so a failed transaction leaves the rest queued."""
        if size >= MAX_GROUP or time.monotonic() - started >= GROUP_SECONDS:
            return None, False
        try:
            operation = self._inbox.get_nowait()
        except Empty:
            return None, False
        if operation is _STOP:
            return None, True
        return operation, False


def _open(db: Connection, opening: Callable[[], Any]) -> Any:
    try:
        db.execute("BEGIN IMMEDIATE")
        return opening()
    except sqlite3.OperationalError as error:
        raise _WholeTransactionFailed(error) from error


def _run_in_savepoint(db: Connection, operation: Operation[Any]) -> None:
    """Run one operation; its own exception undoes its own effects only. A SQLite failure
    (`OperationalError`: I/O, full disk) may have undone the whole transaction, so it fails
    the transaction instead."""
    try:
        db.execute("SAVEPOINT operation")
        try:
            operation.result = operation.work()
        except sqlite3.OperationalError:
            raise
        except Exception as error:  # a refusal or a bug: its caller's answer
            operation.error = error
            db.execute("ROLLBACK TO operation")
        db.execute("RELEASE operation")
    except sqlite3.OperationalError as error:
        raise _WholeTransactionFailed(error) from error


def _rollback(db: Connection) -> None:
    # A failing disk may refuse the rollback too; SQLite then rolls back by itself when the
    # journal is next read, so the error that matters is the first one.
    with suppress(sqlite3.Error):
        db.execute("ROLLBACK")


def _answer_all(
    members: list[Operation[Any]],
    cause: BaseException,
    failure: type[StoreFailure] | None,
) -> None:
    """Answer every member with `failure(cause)`, or with `cause` itself when None."""
    for member in members:
        error: BaseException = cause
        if failure is not None:
            error = failure(cause)
            error.__cause__ = cause
        member.error, member.result, member.opened = error, None, None
        member.answer()
