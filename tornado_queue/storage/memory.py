"""MemoryStore: a deque of ids, a dict of tasks and one lock. The default and fastest store."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from itertools import islice

from ..errors import InvalidTransition, TaskNotFound
from ..models import NewTask, Task, TaskStatus
from .base import ReadyListener, Store


class MemoryStore(Store):
    """Tasks in process memory; lost on restart, shared only by threads of one process.

    `_pending` holds ids in dequeue order, `_tasks` every task by id, and `_counts` the number of
    tasks per state, so enqueue, dequeue, get, complete and stats are O(1). Every read and write
    of these three happens under `_lock`; callers get snapshots, never the live records.
    """

    blocking = False

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._pending: deque[str] = deque()
        self._tasks: dict[str, Task] = {}
        self._counts: dict[TaskStatus, int] = dict.fromkeys(TaskStatus, 0)
        self._listeners: list[ReadyListener] = []

    def enqueue(self, new_task: NewTask) -> Task:
        # uuid4 and the record are built before taking the lock to keep the critical section short.
        task = Task(str(uuid.uuid4()), new_task.payload, self._clock())
        with self._lock:
            self._tasks[task.id] = task
            self._pending.append(task.id)
            self._counts[TaskStatus.PENDING] += 1
            snapshot = task.snapshot()
        self._notify_ready(1)
        return snapshot

    def dequeue(self) -> Task | None:
        now = self._clock()
        with self._lock:
            if not self._pending:
                return None
            task = self._tasks[self._pending.popleft()]
            self._move(task, TaskStatus.PROCESSING)
            task.attempts += 1
            task.started_at = now
            return task.snapshot()

    def get(self, task_id: str) -> Task | None:
        with self._lock:
            task = self._tasks.get(task_id)
            return None if task is None else task.snapshot()

    def complete(self, task_id: str) -> Task:
        now = self._clock()
        with self._lock:
            task = self._processing_task(task_id, "complete")
            self._move(task, TaskStatus.COMPLETED)
            task.finished_at = now
            return task.snapshot()

    def release(self, task_id: str) -> Task:
        with self._lock:
            task = self._processing_task(task_id, "release")
            self._move(task, TaskStatus.PENDING)
            task.started_at = None
            self._pending.appendleft(task.id)
            snapshot = task.snapshot()
        self._notify_ready(1)
        return snapshot

    def view(self, limit: int, offset: int = 0) -> tuple[list[Task], int]:
        with self._lock:
            ids = islice(self._pending, offset, offset + limit)
            return [self._tasks[task_id].snapshot() for task_id in ids], len(self._pending)

    def stats(self) -> dict[TaskStatus, int]:
        with self._lock:
            return dict(self._counts)

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def _processing_task(self, task_id: str, action: str) -> Task:
        """The live task if it is processing; raises otherwise. Call with the lock held."""
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        if task.status is not TaskStatus.PROCESSING:
            raise InvalidTransition(
                f"cannot {action} task '{task_id}': it is {task.status.value}, not processing"
            )
        return task

    def _move(self, task: Task, status: TaskStatus) -> None:
        """Change a task's state and the per-state counters together. Call with the lock held."""
        self._counts[task.status] -= 1
        self._counts[status] += 1
        task.status = status

    def _notify_ready(self, count: int) -> None:
        # The list is replaced, never mutated, so reading it without the lock is safe.
        for listener in self._listeners:
            listener(count)
