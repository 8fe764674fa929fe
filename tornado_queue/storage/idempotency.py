"""IdempotencyKeys: which task each recent Idempotency-Key created, and with what request."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tornado_queue.storage.deadlines import DeadlineHeap


@dataclass(slots=True)
class Remembered:
    task_id: str
    fingerprint: bytes
    forget_at: float


class IdempotencyKeys:
    """Keys remembered for a while (the retention period), then forgotten in deadline order.

    Not thread-safe by itself: the owning store calls it under its lock.
    """

    __slots__ = ("_expiry", "_keys")

    def __init__(self) -> None:
        self._keys: dict[str, Remembered] = {}
        self._expiry = DeadlineHeap()

    def __len__(self) -> int:
        return len(self._keys)

    def first_deadline(self) -> float | None:
        """When the earliest key may be forgotten (possibly a stale entry), or None."""
        return self._expiry.first()

    def get(self, key: str) -> Remembered | None:
        return self._keys.get(key)

    def remember(self, key: str, task_id: str, fingerprint: bytes, forget_at: float) -> None:
        self._keys[key] = Remembered(task_id, fingerprint, forget_at)
        self._expiry.push(forget_at, key, len(self._keys), self._is_current)

    def forget_due(self, now: float, keep_until: Callable[[str, float], float | None]) -> None:
        """Forget keys whose time is up, unless `keep_until(task_id, now)` names a later time: a
        key lives at least as long as its task, so a retry can never create a duplicate."""
        if self._expiry.due(now):
            for forget_at, key in self._expiry.pop_due(now):
                if not self._is_current(forget_at, key):
                    continue
                remembered = self._keys[key]
                later = keep_until(remembered.task_id, now)
                if later is not None and later > now:
                    self.remember(key, remembered.task_id, remembered.fingerprint, later)
                else:
                    del self._keys[key]

    def _is_current(self, forget_at: float, key: str) -> bool:
        remembered = self._keys.get(key)
        return remembered is not None and remembered.forget_at == forget_at
