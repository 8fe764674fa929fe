"""Domain errors. Nothing here knows about HTTP; handlers map these to status codes."""

from __future__ import annotations

import re


class QueueError(Exception):
    """Root of every error the queue raises on purpose."""


class TaskNotFound(QueueError):
    """Raised when no task has the given id."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"no task with id '{_clip(task_id)}'")
        self.task_id = task_id


class InvalidTransition(QueueError):
    """Raised when a task is not in a state that allows the requested change."""


class LeaseLost(InvalidTransition):
    """Raised when a command names a lease the task no longer holds (it expired, or the task
    was handed to another consumer or finished since)."""


class ScheduleNotFound(QueueError):
    """Raised when no schedule has the given name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no schedule named '{_clip(name)}'")
        self.name = name


class TooManySchedules(QueueError):
    """Raised when a new schedule would pass `limits.MAX_SCHEDULES` (nothing changes)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"cannot create another schedule: the store holds {limit}, the most it keeps; "
            "delete one first"
        )


class PushQueue(InvalidTransition):
    """Raised when a consumer dequeues from a queue the servers push (its `push` setting is
    set): nothing is delivered (the answer is 409)."""

    def __init__(self, queue: str) -> None:
        super().__init__(
            f"queue '{_clip(queue)}' is a push queue: the server delivers its tasks to its "
            "push URL, so consumers cannot dequeue from it (clear its 'push' setting to pull)"
        )
        self.queue = queue


class IdempotencyConflict(QueueError):
    """Raised when an idempotency key is reused with a different request."""


class QueueFull(QueueError):
    """Raised when an enqueue would pass `--max-pending` or `--max-tasks`: nothing was added,
    and the producer should try again later (the answer is 503 with Retry-After)."""


class ValidationError(QueueError):
    """Raised when a request's content breaks a rule (a field, a type, a limit)."""


class TokenError(ValueError):
    """A configured token or tokens file is unusable; the message never holds the token."""


class StoreFailure(Exception):
    """The store's disk or server failed: not the caller's fault, and not a `QueueError`
    (the API answers 503 with Retry-After). `cause` is the store's own error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class StoreUnavailable(StoreFailure):
    """The store could not be used, and the operation was not applied: trying again is safe."""


class OutcomeUnknown(StoreFailure):
    """The store failed while the operation was on its way (a Redis reply lost, an SQLite
    commit that failed): it may have been applied or not."""


CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def printable(text: str) -> str:
    """Client text with its control characters written out (`\\x00`), so that a message
    shows what was sent instead of an invisible or mangled character."""
    return CONTROL_CHARACTERS.sub(lambda match: f"\\x{ord(match.group()):02x}", text)


def _clip(text: str, limit: int = 100) -> str:
    """Keep client-supplied text short and visible when it is echoed back in a message."""
    return printable(text if len(text) <= limit else text[:limit] + "…")


# The refusals every store words the same way.


def lease_lost(action: str, task_id: str, lease_id: str, status: str) -> LeaseLost:
    return LeaseLost(
        f"cannot {action} task '{_clip(task_id)}': lease '{_clip(lease_id, 64)}' was lost "
        f"(the lease expired or the task moved on; it is {status} now)"
    )


def not_processing(action: str, task_id: str, status: str) -> InvalidTransition:
    return InvalidTransition(
        f"cannot {action} task '{_clip(task_id)}': it is {status}, not processing"
    )


def not_failed(task_id: str, status: str) -> InvalidTransition:
    return InvalidTransition(
        f"cannot retry task '{_clip(task_id)}': it is {status}; only failed tasks can be retried"
    )


def still_processing(task_id: str) -> InvalidTransition:
    return InvalidTransition(
        f"cannot delete task '{_clip(task_id)}': it is processing; complete or fail it, "
        "or wait for its lease to expire"
    )


def queue_full(queue: str, waiting: int, adding: int, limit: int) -> QueueFull:
    return QueueFull(
        f"queue '{queue}' is full: {waiting} tasks waiting (pending or scheduled) and "
        f"{adding} more would pass --max-pending {limit}; try again later"
    )


def store_full(held: int, adding: int, limit: int) -> QueueFull:
    return QueueFull(
        f"the server is full: it holds {held} tasks and {adding} more would pass "
        f"--max-tasks {limit}; try again later"
    )


def too_many_queues(in_use: int, new: str, limit: int) -> QueueFull:
    return QueueFull(
        f"cannot start queue '{new}': {in_use} queues hold tasks and --max-queues is {limit}; "
        "use an existing queue or try again when one has emptied"
    )


def key_conflict(key: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"Idempotency-Key '{_clip(key, 64)}' was already used with a different request"
    )


def _after_field(item: int | None) -> str:
    return "field 'after'" if item is None else f"tasks[{item}].after"


def parent_unknown(item: int | None, parent: str) -> ValidationError:
    return ValidationError(
        f"{_after_field(item)} names task '{_clip(parent)}', which does not exist (never "
        "created, deleted, or forgotten after its retention)"
    )


def parent_failed(item: int | None, parent: str) -> ValidationError:
    return ValidationError(
        f"{_after_field(item)} names task '{_clip(parent)}', which has failed: a task waiting "
        "for it would never run (retry the parent first)"
    )


def parent_twice(item: int | None, parent: str) -> ValidationError:
    return ValidationError(f"{_after_field(item)} names task '{_clip(parent)}' twice")


def too_many_dependents(item: int | None, parent: str, limit: int) -> ValidationError:
    return ValidationError(
        f"{_after_field(item)} names task '{_clip(parent)}', which already has {limit} "
        "dependents, the most a task may have"
    )


def parent_failed_error(parent: str) -> str:
    """The `error` of a waiting task failed because its (direct) parent failed."""
    return f"parent task '{parent}' failed"


def parent_deleted_error(parent: str) -> str:
    """The `error` of a waiting task failed because its (direct) parent was deleted."""
    return f"parent task '{parent}' was deleted"
