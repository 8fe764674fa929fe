"""The Store contract every backend implements.

Threading and the IOLoop
------------------------
A store is synchronous and thread-safe: HTTP handlers on the IOLoop and worker threads call it
concurrently, and each state change (dequeue = take the oldest ready task *and* mark it
processing; complete = check the state *and* mark it completed) is one atomic operation inside
the store, so no caller can observe or cause a half-done transition.

How handlers call it is decided by `blocking`:
- a store whose calls finish in microseconds without I/O (`MemoryStore`) sets `blocking = False`
  and is called inline on the IOLoop: a thread-pool hop would cost more than the call itself;
- a store that does I/O (SQLite, Redis) sets `blocking = True` and handlers run its calls in an
  executor (`ApiHandler.call_store`), so a slow disk or network never stalls other requests.

Return values are snapshots: a `Task` returned by a store is a copy the caller may read freely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import ClassVar

from ..models import NewTask, Task, TaskStatus

ReadyListener = Callable[[int], None]
"""Called with a count after that many tasks became ready to dequeue. It runs on the thread
that made them ready, outside the store's lock, so it must be quick and thread-safe."""


class Store(ABC):
    """A queue of tasks. See the module docstring for the threading rules."""

    blocking: ClassVar[bool] = True

    @abstractmethod
    def enqueue(self, new_task: NewTask) -> Task:
        """Add a task at the tail of the queue as `pending` and return it."""

    @abstractmethod
    def dequeue(self) -> Task | None:
        """Take the oldest pending task, mark it `processing` and return it; None when empty."""

    @abstractmethod
    def get(self, task_id: str) -> Task | None:
        """Return the task with this id, or None."""

    @abstractmethod
    def complete(self, task_id: str) -> Task:
        """Mark a `processing` task `completed` and return it.

        Raises TaskNotFound for an unknown id, InvalidTransition when it is not processing.
        """

    @abstractmethod
    def release(self, task_id: str) -> Task:
        """Give a `processing` task back: it becomes `pending` again at the head of the queue.

        Used by a consumer that stops before finishing. Raises as `complete` does.
        """

    @abstractmethod
    def view(self, limit: int, offset: int = 0) -> tuple[list[Task], int]:
        """Up to `limit` pending tasks in dequeue order from `offset`, and the pending total."""

    @abstractmethod
    def stats(self) -> dict[TaskStatus, int]:
        """Return the number of tasks in each state (every state present, zeros included)."""

    @abstractmethod
    def add_ready_listener(self, listener: ReadyListener) -> None:
        """Call `listener(n)` whenever n tasks become ready to dequeue."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release what the store holds (files, connections). The store is unusable afterwards."""
