"""The consumers that name themselves (X-Worker-Id), for a store in this process (memory,
SQLite): when each was last seen, what it holds, what it completed and failed."""

from __future__ import annotations

from tornado_queue import limits
from tornado_queue.models import WorkerInfo


class _Worker:
    __slots__ = ("completed", "failed", "held", "last_seen")

    def __init__(self, last_seen: float) -> None:
        self.last_seen = last_seen
        self.held: dict[str, None] = {}
        self.completed = 0
        self.failed = 0


class WorkerBook:
    """Workers by id, with the store's lock held for every call. A worker not seen for
    `limits.WORKER_SEEN_SECONDS` is forgotten once it holds nothing (a listing drops it), and
    at most `limits.MAX_WORKERS` are kept (the one seen longest ago goes first)."""

    def __init__(self) -> None:
        self._workers: dict[str, _Worker] = {}

    def seen(self, worker_id: str, at: float) -> None:
        self._worker(worker_id, at).last_seen = at

    def took(self, worker_id: str, task_id: str, at: float) -> None:
        """A task was delivered to the worker."""
        worker = self._worker(worker_id, at)
        worker.last_seen = at
        worker.held[task_id] = None

    def let_go(self, worker_id: str, task_id: str, outcome: str | None) -> None:
        """The worker's task stopped processing: `completed`, `failed` (an attempt failed),
        or None (its lease ran out, or it was released)."""
        worker = self._workers.get(worker_id)
        if worker is None:
            return
        worker.held.pop(task_id, None)
        if outcome == "completed":
            worker.completed += 1
        elif outcome == "failed":
            worker.failed += 1

    def listing(self, now: float) -> list[WorkerInfo]:
        """The workers seen in the last `limits.WORKER_SEEN_SECONDS`, the latest seen first."""
        since = now - limits.WORKER_SEEN_SECONDS
        shown = []
        for worker_id, worker in list(self._workers.items()):
            if worker.last_seen >= since:
                shown.append(
                    WorkerInfo(
                        worker_id,
                        worker.last_seen,
                        tuple(worker.held),
                        worker.completed,
                        worker.failed,
                    )
                )
            elif not worker.held:
                del self._workers[worker_id]
        shown.sort(key=lambda info: (-info.last_seen, info.id))
        return shown

    def _worker(self, worker_id: str, at: float) -> _Worker:
        worker = self._workers.get(worker_id)
        if worker is None:
            if len(self._workers) >= limits.MAX_WORKERS:
                oldest = min(self._workers, key=lambda known: self._workers[known].last_seen)
                del self._workers[oldest]
            worker = self._workers[worker_id] = _Worker(at)
        return worker
