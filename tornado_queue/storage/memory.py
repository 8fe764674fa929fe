"""MemoryStore: a deque of ids, a dict of tasks and one lock. The default and fastest store."""

from __future__ import annotations

import os
import threading
import uuid
from collections import deque
from itertools import islice

from ..clock import Clock, SystemClock
from ..errors import InvalidTransition, LeaseLost, TaskNotFound
from ..models import FINISHED, NewTask, Task, TaskStatus
from .base import Policy, ReadyListener, Store
from .deadlines import DeadlineHeap

COMPACT_AFTER = 1024
"""Deleted ids left in the pending deque before it may be rebuilt without them."""


class MemoryStore(Store):
    """Tasks in process memory; lost on restart, shared only by threads of one process.

    State, all guarded by `_lock`:
    - `_tasks`: every known task by id;
    - `_pending`: ids of pending tasks in dequeue order, sorted by `Task.seq` (a task that goes
      back after a lost lease is put at its original place, so the order holds). A deleted
      pending task leaves its id behind ("stale"); readers skip it and the deque is rebuilt
      once stale ids outnumber live ones, so a delete is O(1) amortized;
    - `_counts`: tasks per state, so stats are O(1);
    - three `DeadlineHeap`s: leases by expiry, scheduled retries by due time, finished tasks by
      the time they are forgotten. Entries are checked against the task when they fall due.
    Every operation first applies what is due (`_reap`); callers only ever get snapshots.
    """

    blocking = False

    def __init__(self, policy: Policy | None = None, clock: Clock | None = None) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._pending: deque[str] = deque()
        self._stale_pending = 0
        self._next_seq = 0
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
        with self._lock:
            # Clocks are read under the lock so timestamps agree with the order of operations.
            wall, now = self._clock.time(), self._clock.monotonic()
            task.created_at = task.available_at = wall
            ready = self._reap(wall, now) + 1
            self._tasks[task.id] = task
            self._counts[TaskStatus.PENDING] += 1
            self._append_pending(task)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def dequeue(self, lease_seconds: float | None = None) -> Task | None:
        lease = lease_seconds or self.policy.lease_seconds
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._pop_pending()
            if task is not None:
                self._grant_lease(task, lease, wall, now)
                task = task.snapshot()
        self._notify_ready(ready)
        return task

    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        lease = lease_seconds or self.policy.lease_seconds
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._leased_task(task_id, "heartbeat", lease_id)
            task.lease_deadline = now + lease
            task.lease_expires_at = wall + lease
            self._leases.push(task.lease_deadline, task.id)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._leased_task(task_id, "complete", lease_id)
            self._end_lease(task)
            task.result = result
            self._finish(task, TaskStatus.COMPLETED, wall, now)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
    ) -> Task:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._leased_task(task_id, "fail", lease_id)
            self._end_lease(task)
            task.error = error
            if retry and task.attempts < task.max_attempts:
                ready += self._schedule_retry(task, wall, now)
            else:
                self._finish(task, TaskStatus.FAILED, wall, now)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now) + 1
            task = self._leased_task(task_id, "release", lease_id)
            self._end_lease(task)
            self._move(task, TaskStatus.PENDING)
            self._return_to_place(task)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def retry(self, task_id: str) -> Task:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now) + 1
            task = self._known_task(task_id)
            if task.status is not TaskStatus.FAILED:
                raise InvalidTransition(
                    f"cannot retry task '{task_id}': it is {task.status.value}; "
                    "only failed tasks can be retried"
                )
            task.attempts = 0
            task.error = task.finished_at = task.forget_at = task.result = task.started_at = None
            task.available_at = wall
            self._move(task, TaskStatus.PENDING)
            self._append_pending(task)
            snapshot = task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def delete(self, task_id: str) -> None:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._known_task(task_id)
            if task.status is TaskStatus.PROCESSING:
                raise InvalidTransition(
                    f"cannot delete task '{task_id}': it is processing; complete or fail it, "
                    "or wait for its lease to expire"
                )
            del self._tasks[task_id]
            self._counts[task.status] -= 1
            if task.status is TaskStatus.PENDING:
                self._stale_pending += 1
                self._compact_pending()
        self._notify_ready(ready)

    def reap(self) -> None:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
        self._notify_ready(ready)

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            task = self._tasks.get(task_id)
            snapshot = None if task is None else task.snapshot()
        self._notify_ready(ready)
        return snapshot

    def view(self, limit: int, offset: int = 0) -> tuple[list[Task], int]:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            live = (self._tasks.get(task_id) for task_id in self._pending)
            page = islice((task for task in live if task is not None), offset, offset + limit)
            snapshots = [task.snapshot() for task in page]
            total = self._counts[TaskStatus.PENDING]
        self._notify_ready(ready)
        return snapshots, total

    def stats(self) -> dict[TaskStatus, int]:
        with self._lock:
            wall, now = self._clock.time(), self._clock.monotonic()
            ready = self._reap(wall, now)
            counts = dict(self._counts)
        self._notify_ready(ready)
        return counts

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    # -- internals: every method below runs with the lock held -------------------------------

    def _reap(self, wall: float, now: float) -> int:
        """Apply expired leases, due retries and retention; return how many tasks became ready."""
        ready = 0
        if self._leases.due(now):
            for deadline, task_id in self._leases.pop_due(now):
                task = self._tasks.get(task_id)
                if task is not None and task.lease_deadline == deadline:
                    ready += self._expire_lease(task, wall, now)
        if self._schedule.due(now):
            for due, task_id in self._schedule.pop_due(now):
                task = self._tasks.get(task_id)
                if task is not None and task.status is TaskStatus.SCHEDULED and task.due == due:
                    task.due = None
                    self._move(task, TaskStatus.PENDING)
                    self._append_pending(task)
                    ready += 1
        if self._retention.due(now):
            for forget_at, task_id in self._retention.pop_due(now):
                task = self._tasks.get(task_id)
                if task is not None and task.status in FINISHED and task.forget_at == forget_at:
                    del self._tasks[task_id]
                    self._counts[task.status] -= 1
        return ready

    def _expire_lease(self, task: Task, wall: float, now: float) -> int:
        self._end_lease(task)
        if task.attempts >= task.max_attempts:
            task.error = "lease expired"
            self._finish(task, TaskStatus.FAILED, wall, now)
            return 0
        self._move(task, TaskStatus.PENDING)
        self._return_to_place(task)
        return 1

    def _grant_lease(self, task: Task, lease: float, wall: float, now: float) -> None:
        self._move(task, TaskStatus.PROCESSING)
        task.attempts += 1
        task.lease_id = os.urandom(12).hex()
        task.started_at = wall
        task.lease_deadline = now + lease
        task.lease_expires_at = wall + lease
        self._leases.push(task.lease_deadline, task.id)

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
            self._append_pending(task)
            return 1
        task.due = now + backoff
        task.available_at = wall + backoff
        self._move(task, TaskStatus.SCHEDULED)
        self._schedule.push(task.due, task.id)
        return 0

    def _finish(self, task: Task, status: TaskStatus, wall: float, now: float) -> None:
        self._move(task, status)
        task.finished_at = wall
        task.forget_at = now + self.policy.retention_seconds
        self._retention.push(task.forget_at, task.id)

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

    def _append_pending(self, task: Task) -> None:
        task.seq = self._next_seq
        self._next_seq += 1
        self._pending.append(task.id)

    def _pop_pending(self) -> Task | None:
        while self._pending:
            task = self._tasks.get(self._pending.popleft())
            if task is not None:
                return task
            self._stale_pending -= 1
        return None

    def _return_to_place(self, task: Task) -> None:
        """Put a task back into the pending deque at the place its `seq` gives it.

        Only tasks that came back the same way can be older than it, and they sit at the very
        front, so this walks just past them: O(1) in the usual case.
        """
        older: list[str] = []
        while self._pending:
            head = self._tasks.get(self._pending[0])
            if head is not None and head.seq > task.seq:
                break
            head_id = self._pending.popleft()
            if head is None:
                self._stale_pending -= 1
            else:
                older.append(head_id)
        task.started_at = None
        self._pending.appendleft(task.id)
        self._pending.extendleft(reversed(older))

    def _compact_pending(self) -> None:
        if self._stale_pending > COMPACT_AFTER and self._stale_pending * 2 > len(self._pending):
            self._pending = deque(task_id for task_id in self._pending if task_id in self._tasks)
            self._stale_pending = 0

    def _notify_ready(self, count: int) -> None:
        # Called after the lock is released; the list is replaced, never mutated, so reading
        # it without the lock is safe.
        if count:
            for listener in self._listeners:
                listener(count)
