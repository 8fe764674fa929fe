"""The memory store's schedules: a dict by name and a heap of their next runs."""

from __future__ import annotations

from tornado_queue.schedules import Schedule
from tornado_queue.storage.deadlines import DeadlineHeap


class ScheduleBook:
    """Schedules by name, with a min-heap of (next_run_at, name) so that finding the due ones
    costs O(log n) each. A heap entry is live while its schedule's `next_run_at` is still its
    deadline; others (replaced, deleted, fired or paused since) are dropped when reached.
    Not thread-safe: the store's lock guards it."""

    __slots__ = ("_by_name", "_runs")

    def __init__(self) -> None:
        self._by_name: dict[str, Schedule] = {}
        self._runs = DeadlineHeap()

    def __len__(self) -> int:
        return len(self._by_name)

    def get(self, name: str) -> Schedule | None:
        return self._by_name.get(name)

    def sorted(self) -> list[Schedule]:
        return [self._by_name[name] for name in sorted(self._by_name)]

    def put(self, schedule: Schedule) -> None:
        self._by_name[schedule.name] = schedule
        if schedule.next_run_at is not None:
            self._runs.push(schedule.next_run_at, schedule.name, len(self._by_name), self._live)

    def delete(self, name: str) -> bool:
        return self._by_name.pop(name, None) is not None

    def pop_due(self, now: float) -> Schedule | None:
        """The earliest schedule due at `now`, its heap entry removed; None when none is."""
        while self._runs.due(now):
            deadline, name = next(self._runs.pop_due(now))
            if self._live(deadline, name):
                return self._by_name[name]
        return None

    def next_due(self) -> float | None:
        """The earliest live next run (stale entries on top are dropped on the way)."""
        while (first := self._runs.first()) is not None:
            if self._live(first, self._runs.peek_key()):
                return first
            next(self._runs.pop_due(first))
        return None

    def _live(self, deadline: float, name: str) -> bool:
        schedule = self._by_name.get(name)
        return schedule is not None and schedule.next_run_at == deadline
