"""PendingQueue: the order in which pending tasks are handed out."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain

from ..models import Task, TaskStatus

COMPACT_AFTER = 1024
"""Deleted entries tolerated before the queue may be rebuilt without them."""


class PendingQueue:
    """Pending tasks in dequeue order: oldest first by `Task.seq`, the number a task gets each
    time it joins the tail.

    Two parts keep every operation O(1) or O(log n):
    - `_fifo`, a deque of ids in the order they joined the tail;
    - `_returned`, a min-heap of (seq, id) for tasks that came back unfinished (a lost lease, a
      release). They go back to their original place, ahead of everything that joined later.
      Every returned task was dequeued from the head at some point, so its seq is below every
      seq in `_fifo`, and the heap is always served first.
    A deleted task leaves its entry behind ("stale"); readers skip it, and both parts are rebuilt
    once stale entries outnumber live ones, so a delete is O(1) amortized.
    Not thread-safe by itself: the owning store calls it under its lock.
    """

    def __init__(self, lookup: Callable[[str], Task | None]) -> None:
        self._lookup = lookup
        self._fifo: deque[str] = deque()
        self._returned: list[tuple[int, str]] = []
        self._stale = 0
        self._next_seq = 0

    def __len__(self) -> int:
        """Entries held, stale ones included (what compaction keeps bounded)."""
        return len(self._fifo) + len(self._returned)

    def append(self, task: Task) -> None:
        """Put a task at the tail."""
        task.seq = self._next_seq
        self._next_seq += 1
        self._fifo.append(task.id)

    def put_back(self, task: Task) -> None:
        """Return a task that was handed out to its original place (by its seq)."""
        heapq.heappush(self._returned, (task.seq, task.id))

    def pop(self) -> Task | None:
        """Remove and return the first pending task, or None."""
        while self._returned:
            seq, task_id = heapq.heappop(self._returned)
            task = self._live(task_id, seq)
            if task is not None:
                return task
            self._stale -= 1
        while self._fifo:
            task = self._live(self._fifo.popleft())
            if task is not None:
                return task
            self._stale -= 1
        return None

    def discard(self) -> None:
        """Note that a pending task was deleted: its entry is now stale."""
        self._stale += 1
        entries = len(self._fifo) + len(self._returned)
        if self._stale > COMPACT_AFTER and self._stale * 2 > entries:
            self._fifo = deque(task_id for task_id in self._fifo if self._live(task_id))
            self._returned = [entry for entry in self._returned if self._live(entry[1], entry[0])]
            heapq.heapify(self._returned)
            self._stale = 0

    def in_order(self) -> Iterator[Task]:
        """The pending tasks in dequeue order (returned ones sorted first: O(r log r) for r)."""
        returned = (self._live(task_id, seq) for seq, task_id in sorted(self._returned))
        fifo = (self._live(task_id) for task_id in self._fifo)
        return (task for task in chain(returned, fifo) if task is not None)

    def _live(self, task_id: str, seq: int | None = None) -> Task | None:
        """The task an entry stands for, if it is still pending there (else the entry is stale)."""
        task = self._lookup(task_id)
        if task is None or task.status is not TaskStatus.PENDING:
            return None
        if seq is not None and task.seq != seq:
            return None
        return task
