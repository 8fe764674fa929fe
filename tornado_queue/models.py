"""The task model: its states and the record a store keeps for each task."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TaskStatus(StrEnum):
    """A task's state; the values are the strings on the wire."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a producer asks for. `payload` is the task's JSON object, already serialized."""

    payload: bytes


class Task:
    """One task as a store keeps it.

    Only atomic values live here (str, bytes, float, int, None) so that millions of tasks add
    little work for the garbage collector: the payload stays as its validated JSON bytes and
    timestamps are epoch seconds, formatted only when a task is written out.
    """

    __slots__ = (
        "id",
        "queue",
        "payload",
        "status",
        "priority",
        "attempts",
        "max_attempts",
        "created_at",
        "available_at",
        "lease_id",
        "lease_expires_at",
        "started_at",
        "finished_at",
        "result",
        "error",
    )

    def __init__(self, task_id: str, payload: bytes, created_at: float) -> None:
        self.id = task_id
        self.queue = "default"
        self.payload = payload
        self.status = TaskStatus.PENDING
        self.priority = 0
        self.attempts = 0
        self.max_attempts = 3
        self.created_at = created_at
        self.available_at = created_at
        self.lease_id: str | None = None
        self.lease_expires_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.result: bytes | None = None
        self.error: str | None = None

    def snapshot(self) -> Task:
        """A copy that callers may read while the store goes on changing the original."""
        copy = Task.__new__(Task)
        for name in Task.__slots__:
            setattr(copy, name, getattr(self, name))
        return copy

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, status={self.status.value!r})"
