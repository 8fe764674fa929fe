"""The task model: its states and the record a store keeps for each task."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from tornado_queue.errors import QueueError


class TaskStatus(StrEnum):
    """A task's state; the values are the strings on the wire."""

    PENDING = "pending"
    SCHEDULED = "scheduled"
    WAITING = "waiting"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


FINISHED = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED})
LISTED = (
    TaskStatus.PENDING,
    TaskStatus.SCHEDULED,
    TaskStatus.WAITING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
)
"""The states whose tasks a store can list in order (`Store.view`): every state, each kept in
its own per-queue order so that a page never scans."""
PURGEABLE = (
    TaskStatus.PENDING,
    TaskStatus.SCHEDULED,
    TaskStatus.WAITING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
)
"""The states a queue's tasks can be deleted in, in bulk (`Store.purge`): a processing task
is held by a consumer and is never purged."""


class Event(StrEnum):
    """What a store counts per queue from the start (never going down), for throughput and
    metrics: tasks created, tasks completed, tasks that became `failed`, leases that ran out
    (whether the task then went back to its queue or failed), tasks moved to the queue's
    dead-letter queue instead of failing, and tasks that expired undelivered."""

    ENQUEUED = "enqueued"
    COMPLETED = "completed"
    FAILED = "failed"
    LEASE_EXPIRED = "lease_expired"
    DEAD_LETTERED = "dead_lettered"
    EXPIRED = "expired"


class Happened(StrEnum):
    """What a task's history records (and the event stream reports), one per change."""

    ENQUEUED = "enqueued"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    FAILED = "failed"
    """An attempt failed and a retry follows."""
    DEAD = "dead"
    """The task became `failed` (its last attempt failed, or a parent of it did)."""
    LEASE_EXPIRED = "lease_expired"
    RETRIED = "retried"
    """Back from `failed`, by an operator."""
    DEAD_LETTERED = "dead_lettered"
    EXPIRED = "expired"
    DELETED = "deleted"
    WAITING = "waiting"
    RELEASED = "released"
    """Its last parent completed: it stops waiting."""


class HistoryEntry(NamedTuple):
    """One change in a task's life: when (epoch seconds), what, under which lease, by which
    worker (as its consumer named itself) and with which error, where they apply."""

    at: float
    event: str
    lease_id: str | None = None
    worker: str | None = None
    error: str | None = None


HISTORY_LENGTH = 20
"""A task keeps its last so many history entries."""


DEFAULT_QUEUE = "default"


@dataclass(slots=True)
class NewTask:
    """What a producer asks for. `payload` is the task's JSON object, already serialized;
    `max_attempts` None means the store's default; `delay` is seconds before it is ready.

    With an `idempotency_key`, `fingerprint` identifies the request's content: the same key
    with the same fingerprint returns the first task, with another one is refused.

    Not to be changed once made. It is not frozen: a frozen dataclass sets each of its dozen
    fields through `object.__setattr__`, which cost 1.5 µs of every enqueue."""

    payload: bytes
    max_attempts: int | None = None
    queue: str = DEFAULT_QUEUE
    priority: int = 0
    delay: float = 0.0
    idempotency_key: str | None = None
    fingerprint: bytes = b""
    group: str | None = None
    """Tasks of one queue with the same group are delivered one at a time, in order."""
    expires_in: float | None = None
    """Seconds after which the task is never delivered (None: the queue's `ttl_seconds`)."""
    after: tuple[str | int, ...] | None = None
    """The tasks this one waits for (`waiting` until each is completed): their ids, or, in a
    batch, the index of an earlier item of the same batch."""
    schedule: str | None = None
    fire_time: float | None = None
    """The schedule enqueuing it and the occurrence it stands for (never from a client)."""


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The outcome of one enqueue: the task's id, the task (None only when an idempotency key
    matched a task since deleted or forgotten), and whether this call created it."""

    task_id: str
    task: Task | None
    created: bool


@dataclass(frozen=True, slots=True)
class RateLimit:
    """At most `tasks` deliveries in any window of `seconds` (a sliding window)."""

    tasks: int
    seconds: float

    def document(self) -> dict[str, object]:
        return {"tasks": self.tasks, "seconds": self.seconds}


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where the servers deliver a push queue's tasks: each is POSTed to `url`, signed with
    `secret` (and, until `rotated_at` + `limits.PUSH_ROTATION_OVERLAP_SECONDS`, also with
    `previous_secret`), given up after `timeout_seconds`. `headers` are sent with every push,
    as (name, value) pairs in the order given."""

    url: str
    timeout_seconds: float = 30.0
    headers: tuple[tuple[str, str], ...] = ()
    secret: str = ""
    previous_secret: str | None = None
    rotated_at: float | None = None
    """Epoch seconds of the last secret rotation (None: never rotated)."""

    def document(self) -> dict[str, object]:
        """The target as the API shows it: never a secret."""
        return {
            "url": self.url,
            "timeout_seconds": self.timeout_seconds,
            "headers": dict(self.headers),
            "secret_rotated_at": (
                None if self.rotated_at is None else datetime.fromtimestamp(self.rotated_at, UTC)
            ),
        }

    def stored(self) -> dict[str, object]:
        """Everything, secrets included, as JSON-ready data for a store."""
        return {
            "url": self.url,
            "timeout_seconds": self.timeout_seconds,
            "headers": [list(pair) for pair in self.headers],
            "secret": self.secret,
            "previous_secret": self.previous_secret,
            "rotated_at": self.rotated_at,
        }

    @classmethod
    def from_stored(cls, value: dict[str, object]) -> PushTarget:
        headers = value.get("headers") or []
        return cls(
            url=str(value["url"]),
            timeout_seconds=float(value.get("timeout_seconds", 30.0)),  # type: ignore[arg-type]
            headers=tuple((str(name), str(text)) for name, text in headers),  # type: ignore[union-attr]
            secret=str(value.get("secret") or ""),
            previous_secret=value.get("previous_secret"),  # type: ignore[arg-type]
            rotated_at=value.get("rotated_at"),  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """A queue's own settings; None means unset (the server's default applies). A queue with
    any setting is kept (and listed) when it holds no task."""

    paused: bool | None = None
    """Tasks are still accepted, but none is delivered: a dequeue answers as if it were empty."""
    max_processing: int | None = None
    """At most this many of the queue's tasks are processing at once."""
    rate_limit: RateLimit | None = None
    """At most so many deliveries from the queue in any window of so many seconds."""
    lease_seconds: float | None = None
    """The lease of a dequeue (and the extension of a heartbeat) that names none."""
    max_attempts: int | None = None
    """The attempts of a task enqueued without `max_attempts`."""
    retry_backoff: float | None = None
    """The backoff base of tasks enqueued from now on."""
    dead_letter_queue: str | None = None
    """Where a task that would become failed goes instead, as pending."""
    ttl_seconds: float | None = None
    """The `expires_in` of a task enqueued without one."""
    push: PushTarget | None = None
    """While set, the servers deliver the queue's tasks to this URL and consumers cannot
    dequeue from it."""

    NAMES = (
        "paused",
        "max_processing",
        "rate_limit",
        "lease_seconds",
        "max_attempts",
        "retry_backoff",
        "dead_letter_queue",
        "ttl_seconds",
        "push",
    )
    DELIVERY = ("paused", "max_processing", "rate_limit", "push")
    """The settings a dequeue obeys at once (the others shape tasks as they are enqueued or
    fail)."""

    def is_default(self) -> bool:
        return all(getattr(self, name) is None for name in self.NAMES)

    def document(self) -> dict[str, object]:
        """The settings as the API shows them (every name, None where unset)."""
        shown: dict[str, object] = {name: getattr(self, name) for name in self.NAMES}
        if self.rate_limit is not None:
            shown["rate_limit"] = self.rate_limit.document()
        if self.push is not None:
            shown["push"] = self.push.document()
        return shown

    @staticmethod
    def stored(value: object) -> object:
        """A setting's value as JSON-ready data, for stores that keep settings as JSON."""
        if isinstance(value, RateLimit):
            return value.document()
        if isinstance(value, PushTarget):
            return value.stored()
        return value

    @classmethod
    def from_stored(cls, values: dict[str, object]) -> QueueSettings:
        """Settings from stored JSON values by name; a name this version does not know
        (written by a newer server sharing the store) is ignored."""
        known: dict[str, object] = {}
        for name, value in values.items():
            if name == "rate_limit" and isinstance(value, dict):
                known[name] = RateLimit(int(value["tasks"]), float(value["seconds"]))
            elif name == "push" and isinstance(value, dict):
                known[name] = PushTarget.from_stored(value)
            elif name in cls.NAMES:
                known[name] = value
        return cls(**known)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Completion:
    """One item of a batch complete: the task, its lease and its result (serialized JSON)."""

    task_id: str
    lease_id: str | None = None
    result: bytes | None = None


@dataclass(frozen=True, slots=True)
class ItemOutcome:
    """How one item of a batch went: the task on success, else the error it raised."""

    task_id: str
    task: Task | None = None
    error: QueueError | None = None


@dataclass(slots=True)
class Extras:
    """The fields most tasks never have, kept apart from `Task`'s own slots so that a task
    without any pays for one empty slot only (a million pending tasks are 8 MB a slot).

    `after` are the parents a task was enqueued to wait for, `waiting_on` how many of them are
    not completed yet, `hold` its delay, applied when the last one completes; `dependents` are
    the tasks enqueued to wait for this one (in the order they were enqueued); `progress` is
    what its worker last reported (serialized JSON); `schedule` and `fire_time` name the
    schedule that enqueued it and the occurrence it stands for; `dead_lettered_from` the queue
    it was dead-lettered from."""

    after: tuple[str, ...] = ()
    dependents: list[str] | None = None
    waiting_on: int = 0
    hold: float = 0.0
    progress: bytes | None = None
    schedule: str | None = None
    fire_time: float | None = None
    dead_lettered_from: str | None = None

    def copy(self) -> Extras:
        dependents = None if self.dependents is None else list(self.dependents)
        return Extras(
            self.after,
            dependents,
            self.waiting_on,
            self.hold,
            self.progress,
            self.schedule,
            self.fire_time,
            self.dead_lettered_from,
        )


def _extra(name: str, doc: str) -> property:
    """A field of `Task.extras` read and written as if it were the task's own (None while the
    task has no extras)."""

    def read(task: Task) -> object:
        extras = task.extras
        return None if extras is None else getattr(extras, name)

    def write(task: Task, value: object) -> None:
        if task.extras is None:
            if value is None:
                return
            task.extras = Extras()
        setattr(task.extras, name, value)

    return property(read, write, doc=doc)


_new_object = object.__new__  # `Task.__new__` without looking it up on the class each time


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
        "group",
        "expires_at",
        "history",
        "extras",
        # Internal bookkeeping, never written out: queue position, backoff base and deadlines.
        "seq",
        "backoff",
        "lease_deadline",
        "due",
        "forget_at",
        "closed_lease",
        "expiry",
    )

    def __init__(
        self,
        task_id: str,
        payload: bytes,
        created_at: float,
        max_attempts: int = 3,
        *,
        queue: str = DEFAULT_QUEUE,
        priority: int = 0,
    ) -> None:
        self.id = task_id
        self.queue = queue
        self.payload = payload
        self.status = TaskStatus.PENDING
        self.priority = priority
        self.attempts = 0
        self.max_attempts = max_attempts
        self.created_at = created_at
        self.available_at = created_at
        self.lease_id: str | None = None
        self.lease_expires_at: float | None = None
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.result: bytes | None = None
        # The worker's last report (serialized JSON), kept through redeliveries.
        self.error: str | None = None
        self.group: str | None = None
        self.expires_at: float | None = None
        # Its changes after its enqueue, oldest first (see `history_of`): a tuple, never changed
        # in place, so that snapshots share it.
        self.history: tuple[HistoryEntry, ...] | None = None
        self.extras: Extras | None = None
        self.seq = 0
        # The base of its retry backoff, fixed when it was enqueued (None: the store's policy).
        self.backoff: float | None = None
        self.lease_deadline: float | None = None
        self.due: float | None = None
        self.forget_at: float | None = None
        # The lease a fenced complete or fail last ended, so that a consumer repeating that
        # command (its first answer lost) is answered as the first time, not told it lost it.
        self.closed_lease: str | None = None
        # `expires_at` on the store's monotonic clock (memory store), for its deadline heap.
        self.expiry: float | None = None

    def snapshot(self) -> Task:
        """A copy that callers may read while the store goes on changing the original."""
        # Spelled out: about 4x faster than a loop over __slots__ with getattr/setattr.
        copy = _new_object(Task)
        copy.id = self.id
        copy.queue = self.queue
        copy.payload = self.payload
        copy.status = self.status
        copy.priority = self.priority
        copy.attempts = self.attempts
        copy.max_attempts = self.max_attempts
        copy.created_at = self.created_at
        copy.available_at = self.available_at
        copy.lease_id = self.lease_id
        copy.lease_expires_at = self.lease_expires_at
        copy.started_at = self.started_at
        copy.finished_at = self.finished_at
        copy.result = self.result
        copy.error = self.error
        copy.group = self.group
        copy.expires_at = self.expires_at
        copy.history = self.history
        extras = self.extras
        copy.extras = None if extras is None else extras.copy()
        copy.seq = self.seq
        copy.backoff = self.backoff
        copy.lease_deadline = self.lease_deadline
        copy.due = self.due
        copy.forget_at = self.forget_at
        copy.closed_lease = self.closed_lease
        copy.expiry = self.expiry
        return copy

    progress = _extra("progress", "What its worker last reported (serialized JSON), or None.")
    schedule = _extra("schedule", "The schedule that enqueued it, or None.")
    fire_time = _extra("fire_time", "The occurrence of its schedule it stands for, or None.")
    dead_lettered_from = _extra("dead_lettered_from", "The queue it was dead-lettered from.")

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, status={self.status.value!r})"


def history_of(task: Task) -> list[HistoryEntry]:
    """A task's last `HISTORY_LENGTH` changes, oldest first. A store keeps the changes after
    its enqueue (`Task.history`; None while there were none, as for most pending tasks), and
    the enqueue is told from `created_at`."""
    enqueued = HistoryEntry(task.created_at, Happened.ENQUEUED)
    history = task.history
    if history is None:
        return [enqueued]
    if len(history) >= HISTORY_LENGTH:
        return list(history[-HISTORY_LENGTH:])
    return [enqueued, *history]


def add_history(task: Task, change: HistoryEntry) -> None:
    """Record a change in a task's history, keeping the last `HISTORY_LENGTH`."""
    history = task.history
    if history is None:
        task.history = (change,)
    elif len(history) < HISTORY_LENGTH:
        task.history = (*history, change)
    else:
        task.history = (*history[1:], change)


def holder(task: Task) -> str | None:
    """The worker a processing task was delivered to (as its consumer named itself), if any:
    nothing is recorded while a task is processing, so its last change is its delivery."""
    history = task.history
    return history[-1][3] if history else None


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A consumer that named itself (X-Worker-Id): when it was last seen (epoch seconds), the
    tasks it holds now, and how many it completed and failed (attempts) so far."""

    id: str
    last_seen: float
    tasks: tuple[str, ...]
    completed: int
    failed: int
