"""`Task`: a task as the server sent it, typed, with its payload and result parsed (and its
`history`); `Worker`: a consumer as `GET /workers` lists it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado_queue.models import TaskStatus


def _time(value: Any) -> datetime | None:
    # Python 3.11's fromisoformat reads the server's "...Z" timestamps.
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def _text(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class HistoryEntry:
    """One change in a task's life (see docs/api.md, History): when, what (`enqueued`,
    `delivered`, `completed`, …), and the lease, worker and error where they apply."""

    at: datetime
    event: str
    lease_id: str | None = None
    worker: str | None = None
    error: str | None = None

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> HistoryEntry:
        return cls(
            at=datetime.fromisoformat(document["at"]),
            event=document["event"],
            lease_id=document.get("lease_id"),
            worker=document.get("worker"),
            error=document.get("error"),
        )

    def to_document(self) -> dict[str, Any]:
        """The wire form again: the keys that apply, no nulls."""
        document: dict[str, Any] = {"at": _text(self.at), "event": self.event}
        for name in ("lease_id", "worker", "error"):
            value = getattr(self, name)
            if value is not None:
                document[name] = value
        return document


@dataclass(frozen=True)
class Worker:
    """A consumer that names itself (`worker_id`): when the server last heard from it, the
    tasks it holds now, and how many it completed and failed (attempts) so far."""

    id: str
    last_seen: datetime
    tasks: list[str]
    completed: int = 0
    failed: int = 0

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Worker:
        return cls(
            id=document["id"],
            last_seen=datetime.fromisoformat(document["last_seen"]),
            tasks=list(document.get("tasks", [])),
            completed=document.get("completed", 0),
            failed=document.get("failed", 0),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "last_seen": _text(self.last_seen),
            "tasks": list(self.tasks),
            "completed": self.completed,
            "failed": self.failed,
        }


@dataclass(frozen=True)
class Task:
    """One task (see docs/api.md, The task). A dequeued task carries its `lease_id`, which the
    client passes back on complete, fail and heartbeat."""

    id: str
    queue: str
    payload: dict[str, Any]
    status: TaskStatus
    priority: int = 0
    attempts: int = 0
    max_attempts: int = 0
    created_at: datetime | None = None
    available_at: datetime | None = None
    lease_id: str | None = None
    lease_expires_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: Any = None
    progress: Any = None
    error: str | None = None
    group: str | None = None
    expires_at: datetime | None = None
    dead_lettered_from: str | None = None
    after: list[str] | None = None
    dependents: list[str] | None = None
    schedule: str | None = None
    fire_time: datetime | None = None
    history: list[HistoryEntry] | None = None
    """Its last changes, oldest first (None from a server that does not send them)."""

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> Task:
        """Build from the server's JSON; fields a newer server adds are ignored."""
        return cls(
            id=document["id"],
            queue=document["queue"],
            payload=document["payload"],
            status=TaskStatus(document["status"]),
            priority=document.get("priority", 0),
            attempts=document.get("attempts", 0),
            max_attempts=document.get("max_attempts", 0),
            created_at=_time(document.get("created_at")),
            available_at=_time(document.get("available_at")),
            lease_id=document.get("lease_id"),
            lease_expires_at=_time(document.get("lease_expires_at")),
            started_at=_time(document.get("started_at")),
            finished_at=_time(document.get("finished_at")),
            result=document.get("result"),
            progress=document.get("progress"),
            error=document.get("error"),
            group=document.get("group"),
            expires_at=_time(document.get("expires_at")),
            dead_lettered_from=document.get("dead_lettered_from"),
            after=document.get("after"),
            dependents=document.get("dependents"),
            schedule=document.get("schedule"),
            fire_time=_time(document.get("fire_time")),
            history=_history(document.get("history")),
        )

    def to_document(self) -> dict[str, Any]:
        """The wire form again (timestamps as ISO-8601 with a `Z`), e.g. to print as JSON."""
        document: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = _text(value)
            elif isinstance(value, TaskStatus):
                value = value.value
            elif name == "history" and value is not None:
                value = [entry.to_document() for entry in value]
            document[name] = value
        return document


def _history(entries: Any) -> list[HistoryEntry] | None:
    if not isinstance(entries, list):
        return None
    return [HistoryEntry.from_document(entry) for entry in entries]
