"""Ordered groups for the memory store: per queue and group, the task whose turn it is and the
tasks waiting behind it. The durable stores keep the same two things in their own form
(SQLite: a `groups` table and a `blocked` flag; Redis: a hash of heads and a list per group)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from tornado_queue.models import Task, TaskStatus

Lookup = Callable[[str], Task | None]


class Group:
    """One group of one queue. `head` is the task whose turn it is (pending in the queue's
    pending order, processing, or scheduled for its retry), None between turns; `waiting`
    holds (seq, id) of the tasks behind it in the order they joined (entries of tasks that
    left since are skipped when reached); `members` counts the live ones."""

    __slots__ = ("head", "members", "waiting")

    def __init__(self) -> None:
        self.head: str | None = None
        self.waiting: deque[tuple[int, str]] = deque()
        self.members = 0


class Groups:
    """Every group of every queue, and per queue the ids of the tasks waiting behind a head
    (ordered by when they joined), so that listing or purging a queue's pending tasks never
    scans the others. Not thread-safe by itself: the store calls it under its lock."""

    __slots__ = ("_by_queue", "_lookup", "waiting")

    def __init__(self, lookup: Lookup) -> None:
        self._lookup = lookup
        self._by_queue: dict[str, dict[str, Group]] = {}
        self.waiting: dict[str, dict[str, None]] = {}
        """Per queue, the ids of its tasks waiting behind their group's head, oldest first."""

    def join(self, task: Task) -> bool:
        """A pending task of a group joins it (its `seq` already given): True when it is the
        group's turn now (it became the head, or was the head already), False when it waits."""
        assert task.group is not None
        groups = self._by_queue.setdefault(task.queue, {})
        group = groups.get(task.group)
        if group is None:
            group = groups[task.group] = Group()
        if group.head is None or group.head == task.id:
            group.head = task.id
            return True
        group.waiting.append((task.seq, task.id))
        group.members += 1
        self.waiting.setdefault(task.queue, {})[task.id] = None
        return False

    def is_waiting(self, task: Task) -> bool:
        """Whether a pending task waits behind its group's head (it is not deliverable)."""
        waiting = self.waiting.get(task.queue)
        return waiting is not None and task.id in waiting

    def leave(self, task: Task) -> Task | None:
        """A task of a group ends its turn or leaves the group (completed, dead, moved to a
        dead-letter queue, expired, deleted); returns the task whose turn it is now, if one
        became the head. Call it while `task.queue` is still the task's old queue."""
        groups = self._by_queue.get(task.queue)
        group = groups.get(task.group) if groups is not None and task.group is not None else None
        if group is None:
            return None
        promoted = None
        if group.head == task.id:
            group.head = None
            promoted = self._next(task.queue, group)
        elif self.is_waiting(task):
            self._unwait(task.queue, task.id, group)
        if group.head is None and not group.members:
            del groups[task.group]  # type: ignore[arg-type]
            if not groups:
                del self._by_queue[task.queue]
        return promoted

    def _next(self, queue: str, group: Group) -> Task | None:
        waiting = self.waiting.get(queue, {})
        while group.waiting:
            seq, task_id = group.waiting.popleft()
            task = self._lookup(task_id)
            if task is None or task_id not in waiting or task.seq != seq:
                continue  # it left the group since (or left and joined again, further back)
            if task.status is not TaskStatus.PENDING:
                continue
            self._unwait(queue, task_id, group)
            group.head = task_id
            return task
        return None

    def _unwait(self, queue: str, task_id: str, group: Group) -> None:
        waiting = self.waiting[queue]
        del waiting[task_id]
        if not waiting:
            del self.waiting[queue]
        group.members -= 1
