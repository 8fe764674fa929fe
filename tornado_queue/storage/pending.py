"""PendingQueue: the order in which one queue's pending tasks are handed out."""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain

from tornado_queue.models import Task, TaskStatus

COMPACT_AFTER = 1024
"""Deleted entries a priority level tolerates before it may be rebuilt without them."""

Lookup = Callable[[str], Task | None]

_PENDING = TaskStatus.PENDING  # a global read instead of an enum class attribute per task


class PendingQueue:
    """Pending tasks of one queue in dequeue order: highest priority first, then oldest first by
    `Task.seq`, the number a task gets each time it joins the tail (or its group's tail: see
    `take_seq`).

    Each priority has a `_Level`; a max-heap of the priorities that have pending tasks finds the
    next one in O(log P). Levels that empty are dropped, so P counts only priorities in use.
    Not thread-safe by itself: the owning store calls it under its lock.
    """

    __slots__ = ("_levels", "_lookup", "_next_seq", "_order")

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._levels: dict[int, _Level] = {}
        self._order: list[int] = []  # negated priorities of levels with pending tasks
        self._next_seq = 0

    def __len__(self) -> int:
        """Entries held, stale ones included (what compaction keeps bounded)."""
        return sum(len(level) for level in self._levels.values())

    def append(self, task: Task) -> None:
        """Put a task at the tail of its priority."""
        task.seq = self._next_seq
        self._next_seq += 1
        level = self._levels.get(task.priority)
        if level is None:
            level = self._level(task.priority)
        # `_Level.append` spelled out: this runs for every task.
        level.fifo.append(task.id)
        level.live += 1

    def take_seq(self, task: Task) -> None:
        """Give a task its place in line without making it deliverable: a task waiting behind
        its group's head keeps the place it joined at, and `put_back` makes it deliverable
        there when its turn comes."""
        task.seq = self._next_seq
        self._next_seq += 1

    def put_back(self, task: Task) -> None:
        """Make a task deliverable at its place by `seq`: one handed out and returned, or a
        group's next task whose turn came."""
        self._level(task.priority).put_back(task)

    def pop(self) -> Task | None:
        """Remove and return the first pending task, or None."""
        order = self._order
        while order:
            priority = -order[0]
            level = self._levels.get(priority)
            if level is not None and level.live:
                if not level.returned and not level.discarded:
                    # The common case, `_Level.pop` spelled out: a task that joined the tail.
                    fifo, lookup = level.fifo, self._lookup
                    while fifo:
                        task = lookup(fifo.popleft())
                        if task is not None and task.status is _PENDING:
                            level.live -= 1
                            return task
                        level.stale -= 1
                return level.pop()
            # A level dropped by `discard`, or one whose entries are all stale.
            heapq.heappop(order)
            if level is not None:
                del self._levels[priority]
        return None

    def discard(self, task: Task) -> None:
        """Note that a pending task left the order other than by `pop` (deleted, expired): its
        entry is now stale, and a level left with no pending task is dropped at once (so views
        and memory never pay for it)."""
        level = self._levels[task.priority]
        level.discard(task)
        if not level.live:
            del self._levels[task.priority]

    def in_order(self) -> Iterator[Task]:
        """The pending tasks in dequeue order: O(P log P) to sort the levels, then lazily."""
        priorities = sorted((p for p, level in self._levels.items() if level.live), reverse=True)
        return chain.from_iterable(self._levels[priority].in_order() for priority in priorities)

    def _level(self, priority: int) -> _Level:
        level = self._levels.get(priority)
        if level is None:
            # A priority dropped earlier may still be in `_order`: `pop` skips the extra entry.
            level = self._levels[priority] = _Level(self._lookup)
            heapq.heappush(self._order, -priority)
        return level


class _Level:
    """One priority's tasks: a deque of ids in the order they joined the tail, and a min-heap
    of (seq, id) for tasks made deliverable at an earlier place (one that came back unfinished
    after a lost lease or a release, or a group's next task).

    `pop` takes whichever of the two heads has the lower seq, so every task comes out at its
    place. An entry whose task is gone or no longer pending is "stale": readers skip it, and
    the level is rebuilt once stale entries outnumber live ones (O(1) amortized). A heap entry
    carries its seq, so it is also stale once its task left and came back under another. A
    deque entry carries only the id (a tuple per task would cost 64 bytes each), so the ids of
    discarded tasks whose stale entry is in the deque are kept in `discarded`: that entry is
    skipped even if the task is pending again by then (an expired task an operator retried),
    and its newer entry further back is the one that counts. `in_heap` holds the seq of each
    live heap entry, so that a discard knows which of the two holds the task's entry.
    """

    __slots__ = ("_lookup", "discarded", "fifo", "in_heap", "live", "returned", "stale")

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self.fifo: deque[str] = deque()
        self.returned: list[tuple[int, str]] = []
        self.in_heap: dict[str, int] = {}
        self.discarded: set[str] = set()
        self.live = 0
        self.stale = 0

    def __len__(self) -> int:
        return len(self.fifo) + len(self.returned)

    def append(self, task: Task) -> None:
        self.fifo.append(task.id)
        self.live += 1

    def put_back(self, task: Task) -> None:
        heapq.heappush(self.returned, (task.seq, task.id))
        self.in_heap[task.id] = task.seq
        self.live += 1

    def pop(self) -> Task | None:
        returned = self.returned
        while True:
            head = self._fifo_head()
            if returned and (head is None or returned[0][0] < head.seq):
                seq, task_id = heapq.heappop(returned)
                if self.in_heap.get(task_id) == seq:
                    del self.in_heap[task_id]
                    task = self._lookup(task_id)
                    if task is not None and task.status is _PENDING and task.seq == seq:
                        self.live -= 1
                        return task
                self.stale -= 1
            elif head is not None:
                self.fifo.popleft()
                self.live -= 1
                return head
            else:
                return None

    def _fifo_head(self) -> Task | None:
        """The task of the first live deque entry, dropping stale ones before it."""
        fifo, discarded = self.fifo, self.discarded
        while fifo:
            task_id = fifo[0]
            if discarded and task_id in discarded:
                discarded.remove(task_id)
            else:
                task = self._lookup(task_id)
                if task is not None and task.status is _PENDING:
                    return task
            fifo.popleft()
            self.stale -= 1
        return None

    def discard(self, task: Task) -> None:
        if self.in_heap.get(task.id) == task.seq:
            del self.in_heap[task.id]  # its heap entry is stale now: its status says so
        else:
            self.discarded.add(task.id)
        self.live -= 1
        self.stale += 1
        if self.stale > COMPACT_AFTER and self.stale > self.live:
            self._compact()

    def _compact(self) -> None:
        lookup, skip = self._lookup, set(self.discarded)
        kept: deque[str] = deque()
        for task_id in self.fifo:
            if task_id in skip:
                skip.remove(task_id)  # its first entry is the stale one
                continue
            task = lookup(task_id)
            if task is not None and task.status is _PENDING:
                kept.append(task_id)
        self.fifo = kept
        self.returned = [entry for entry in self.returned if self.in_heap.get(entry[1]) == entry[0]]
        heapq.heapify(self.returned)
        self.discarded.clear()
        self.stale = 0

    def in_order(self) -> Iterator[Task]:
        heap = (
            task
            for seq, task_id in _heap_in_order(self.returned)
            if self.in_heap.get(task_id) == seq and (task := self._lookup(task_id)) is not None
        )
        return heapq.merge(heap, self._fifo_in_order(), key=_seq_of)

    def _fifo_in_order(self) -> Iterator[Task]:
        skip, lookup = set(self.discarded), self._lookup
        for task_id in self.fifo:
            if task_id in skip:
                skip.remove(task_id)
                continue
            task = lookup(task_id)
            if task is not None and task.status is _PENDING:
                yield task


def _seq_of(task: Task) -> int:
    return task.seq


def _heap_in_order(heap: list[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """A heap's entries in ascending order, lazily: the first k cost O(k log k), not a sort of
    the whole heap (a page of a long list of returned tasks stays cheap)."""
    if not heap:
        return
    frontier = [(heap[0], 0)]
    while frontier:
        entry, index = heapq.heappop(frontier)
        yield entry
        for child in (2 * index + 1, 2 * index + 2):
            if child < len(heap):
                heapq.heappush(frontier, (heap[child], child))
