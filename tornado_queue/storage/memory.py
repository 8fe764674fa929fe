"""MemoryStore: a deque of ids, a dict of tasks and one lock. The default and fastest store."""

from __future__ import annotations

import os
import threading
import uuid
from itertools import islice
from types import TracebackType

from ..clock import Clock, SystemClock
from ..errors import InvalidTransition, LeaseLost, TaskNotFound
from ..models import FINISHED, NewTask, Task, TaskStatus
from .base import Policy, ReadyListener, Store
from .deadlines import DeadlineHeap
from .pending import PendingQueue


class MemoryStore(Store):
    """Tasks in process memory; lost on restart, shared only by threads of one process.

    State, all guarded by `_lock`:
    - `_tasks`: every known task by id;
    - `_pending`: the pending tasks in dequeue order, a deque plus a heap of tasks that came
      back unfinished (see `PendingQueue`);
    - `_counts`: tasks per state, so stats are O(1);
    - three `DeadlineHeap`s: leases by expiry, scheduled retries by due time, finished tasks by
      the time they are forgotten. Entries are checked against the task when they fall due.
    Every operation runs as an `_Operation`: it holds the lock, reads the clocks, first applies
    what is due (`_reap`), and tells ready listeners afterwards, even if it raised. Callers only
    ever get snapshots.
    """

    blocking = False

    def __init__(self, policy: Policy | None = None, clock: Clock | None = None) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._pending = PendingQueue(self._tasks.get)
        self._counts: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)
        self._leases = DeadlineHeap()
        self._schedule = DeadlineHeap()
        self._retention = DeadlineHeap()
        self._listeners: list[ReadyListener] = []

    # -- commands ---------------------------------------------------------------------------

    def enqueue(self, new_task: NewTask) -> Task:
        # uuid4 and the record are built before taking the lock to keep the critical section short.
        max_attempts = new_task.max_attempts or self.policy.max_attempts
        task = Task(str(uuid.uuid4()), new_task.payload, 0.0, max_attempts)
        with self._operation() as op:
            task.created_at = task.available_at = op.wall
            self._tasks[task.id] = task
            self._counts[TaskStatus.PENDING] += 1
            self._pending.append(task)
            op.ready += 1
            return task.snapshot()

    def dequeue(self, lease_seconds: float | None = None) -> Task | None:
        lease = lease_seconds or self.policy.lease_seconds
        with self._operation() as op:
            task = self._pending.pop()
            if task is None:
                return None
            self._grant_lease(task, lease, op.wall, op.now)
            return task.snapshot()

    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        lease = lease_seconds or self.policy.lease_seconds
        with self._operation() as op:
            task = self._leased_task(task_id, "heartbeat", lease_id)
            task.lease_deadline = op.now + lease
            task.lease_expires_at = op.wall + lease
            self._push_lease(task)
            return task.snapshot()

    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        with self._operation() as op:
            task = self._leased_task(task_id, "complete", lease_id)
            self._end_lease(task)
            task.result = result
            self._finish(task, TaskStatus.COMPLETED, op.wall, op.now)
            return task.snapshot()

    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
    ) -> Task:
        with self._operation() as op:
            task = self._leased_task(task_id, "fail", lease_id)
            self._end_lease(task)
            task.error = error
            if retry and task.attempts < task.max_attempts:
                op.ready += self._schedule_retry(task, op.wall, op.now)
            else:
                self._finish(task, TaskStatus.FAILED, op.wall, op.now)
            return task.snapshot()

    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        with self._operation() as op:
            task = self._leased_task(task_id, "release", lease_id)
            self._end_lease(task)
            self._put_back(task)
            op.ready += 1
            return task.snapshot()

    def retry(self, task_id: str) -> Task:
        with self._operation() as op:
            task = self._known_task(task_id)
            if task.status is not TaskStatus.FAILED:
                raise InvalidTransition(
                    f"cannot retry task '{task_id}': it is {task.status.value}; "
                    "only failed tasks can be retried"
                )
            task.attempts = 0
            task.error = task.finished_at = task.forget_at = task.result = task.started_at = None
            task.available_at = op.wall
            self._move(task, TaskStatus.PENDING)
            self._pending.append(task)
            op.ready += 1
            return task.snapshot()

    def delete(self, task_id: str) -> None:
        with self._operation():
            task = self._known_task(task_id)
            if task.status is TaskStatus.PROCESSING:
                raise InvalidTransition(
                    f"cannot delete task '{task_id}': it is processing; complete or fail it, "
                    "or wait for its lease to expire"
                )
            del self._tasks[task_id]
            self._counts[task.status] -= 1
            if task.status is TaskStatus.PENDING:
                self._pending.discard()

    def reap(self) -> None:
        with self._operation():
            pass

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._operation():
            task = self._tasks.get(task_id)
            return None if task is None else task.snapshot()

    def view(self, limit: int, offset: int = 0) -> tuple[list[Task], int]:
        with self._operation():
            page = islice(self._pending.in_order(), offset, offset + limit)
            return [task.snapshot() for task in page], self._counts[TaskStatus.PENDING]

    def stats(self) -> dict[TaskStatus, int]:
        with self._operation():
            return dict(self._counts)

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def _operation(self) -> _Operation:
        return _Operation(self)

    # -- internals: every method below runs with the lock held -------------------------------

    def _reap(self, wall: float, now: float) -> int:
        """Apply expired leases, due retries and retention; return how many tasks became ready."""
        ready = 0
        if self._leases.due(now):
            for deadline, task_id in self._leases.pop_due(now):
                if self._is_lease_entry(deadline, task_id):
                    ready += self._expire_lease(self._tasks[task_id], wall, now)
        if self._schedule.due(now):
            for due, task_id in self._schedule.pop_due(now):
                if self._is_scheduled_entry(due, task_id):
                    task = self._tasks[task_id]
                    task.due = None
                    self._move(task, TaskStatus.PENDING)
                    self._pending.append(task)
                    ready += 1
        if self._retention.due(now):
            for forget_at, task_id in self._retention.pop_due(now):
                if self._is_retention_entry(forget_at, task_id):
                    task = self._tasks.pop(task_id)
                    self._counts[task.status] -= 1
        return ready

    def _expire_lease(self, task: Task, wall: float, now: float) -> int:
        self._end_lease(task)
        if task.attempts >= task.max_attempts:
            task.error = "lease expired"
            self._finish(task, TaskStatus.FAILED, wall, now)
            return 0
        self._put_back(task)
        return 1

    def _grant_lease(self, task: Task, lease: float, wall: float, now: float) -> None:
        self._move(task, TaskStatus.PROCESSING)
        task.attempts += 1
        task.lease_id = os.urandom(12).hex()
        task.started_at = wall
        task.lease_deadline = now + lease
        task.lease_expires_at = wall + lease
        self._push_lease(task)

    def _push_lease(self, task: Task) -> None:
        assert task.lease_deadline is not None
        processing = self._counts[TaskStatus.PROCESSING]
        self._leases.push(task.lease_deadline, task.id, processing, self._is_lease_entry)

    # Whether a heap entry still stands for its task's current deadline.
    def _is_lease_entry(self, deadline: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.lease_deadline == deadline

    def _is_scheduled_entry(self, due: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.status is TaskStatus.SCHEDULED and task.due == due

    def _is_retention_entry(self, forget_at: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.status in FINISHED and task.forget_at == forget_at

    def _end_lease(self, task: Task) -> None:
        # The heap entry stays behind; it no longer matches `lease_deadline` and is skipped.
        task.lease_id = task.lease_deadline = task.lease_expires_at = None

    def _schedule_retry(self, task: Task, wall: float, now: float) -> int:
        """Send a failed attempt to wait out its backoff; return 1 if it is ready at once."""
        backoff = self.policy.backoff(task.attempts)
        task.started_at = None
        if backoff <= 0:
            task.available_at = wall
            self._move(task, TaskStatus.PENDING)
            self._pending.append(task)
            return 1
        task.due = now + backoff
        task.available_at = wall + backoff
        self._move(task, TaskStatus.SCHEDULED)
        self._schedule.push(
            task.due, task.id, self._counts[TaskStatus.SCHEDULED], self._is_scheduled_entry
        )
        return 0

    def _finish(self, task: Task, status: TaskStatus, wall: float, now: float) -> None:
        self._move(task, status)
        task.finished_at = wall
        task.forget_at = now + self.policy.retention_seconds
        finished = self._counts[TaskStatus.COMPLETED] + self._counts[TaskStatus.FAILED]
        self._retention.push(task.forget_at, task.id, finished, self._is_retention_entry)

    def _known_task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def _leased_task(self, task_id: str, action: str, lease_id: str | None) -> Task:
        """The live task if it is processing under `lease_id` (when given); raises otherwise."""
        task = self._known_task(task_id)
        if lease_id is not None and task.lease_id != lease_id:
            raise LeaseLost(
                f"cannot {action} task '{task_id}': lease '{lease_id[:64]}' was lost "
                f"(the lease expired or the task moved on; it is {task.status.value} now)"
            )
        if task.status is not TaskStatus.PROCESSING:
            raise InvalidTransition(
                f"cannot {action} task '{task_id}': it is {task.status.value}, not processing"
            )
        return task

    def _move(self, task: Task, status: TaskStatus) -> None:
        """Change a task's state and the per-state counters together."""
        self._counts[task.status] -= 1
        self._counts[status] += 1
        task.status = status

    def _put_back(self, task: Task) -> None:
        """A task handed out but not finished goes back to its place at the front."""
        task.started_at = None
        self._move(task, TaskStatus.PENDING)
        self._pending.put_back(task)

    def _notify_ready(self, count: int) -> None:
        # Called after the lock is released; the list is replaced, never mutated, so reading
        # it without the lock is safe.
        if count:
            for listener in self._listeners:
                listener(count)


class _Operation:
    """One store operation: holds the lock with the clocks read and due work applied, and tells
    ready listeners afterwards (outside the lock), whether the operation returned or raised."""

    __slots__ = ("now", "ready", "store", "wall")

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def __enter__(self) -> _Operation:
        store = self.store
        store._lock.acquire()
        try:
            # Clocks are read under the lock so timestamps agree with the order of operations.
            self.wall, self.now = store._clock.time(), store._clock.monotonic()
            self.ready = store._reap(self.wall, self.now)
        except BaseException:
            store._lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.store._lock.release()
        self.store._notify_ready(self.ready)
