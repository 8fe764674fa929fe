"""DeadlineHeap: entries that fall due in deadline order, checked lazily against their task."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from heapq import heappush

COMPACT_SLACK = 1024
"""Stale entries tolerated beyond the live ones before the heap is rebuilt without them."""


class DeadlineHeap:
    """A min-heap of (deadline, task id) pairs.

    An entry is never removed early: when a task's deadline changes (a heartbeat, a completion)
    the old entry stays and is recognised as stale when it falls due, by comparing it with the
    task's current deadline. Push and pop are O(log n). So that stale entries cannot pile up
    (a consumer heartbeating every second on a 12-hour lease), `push` rebuilds the heap from its
    live entries once it holds more than twice the live count plus a slack: O(1) amortized.
    """

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[float, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def push(
        self,
        deadline: float,
        task_id: str,
        live_count: int,
        is_live: Callable[[float, str], bool],
    ) -> None:
        """Add an entry; `live_count` and `is_live` say which entries still matter."""
        heap = self._heap
        heappush(heap, (deadline, task_id))
        if len(heap) > 2 * live_count + COMPACT_SLACK:
            self._heap = [entry for entry in self._heap if is_live(*entry)]
            heapq.heapify(self._heap)

    def first(self) -> float | None:
        """The earliest deadline held (possibly a stale one), or None."""
        return self._heap[0][0] if self._heap else None

    def peek_key(self) -> str:
        """The key of the earliest entry (the heap must not be empty)."""
        return self._heap[0][1]

    def due(self, now: float) -> bool:
        """Whether any entry is due at `now` (cheap: one peek)."""
        return bool(self._heap) and self._heap[0][0] <= now

    def pop_due(self, now: float) -> Iterator[tuple[float, str]]:
        """Yield and remove every entry whose deadline is at or before `now`, earliest first."""
        heap = self._heap
        while heap and heap[0][0] <= now:
            yield heapq.heappop(heap)

    def clear(self) -> None:
        self._heap.clear()
