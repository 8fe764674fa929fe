"""The client's exceptions: one root carrying the server's status and `detail`, one class per
kind of answer a caller handles differently."""

from __future__ import annotations


class TaskQueueError(Exception):
    """Root of every error the client raises. `status` is the HTTP status (None when no answer
    came) and `detail` the server's sentence saying what was wrong."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail


class BadRequest(TaskQueueError):
    """Raised when the server refused the request's content (400, 413, 415, 422)."""


class Unauthorized(TaskQueueError):
    """Raised on 401: no token, or a wrong one."""


class Forbidden(TaskQueueError):
    """Raised on 403: the token may not do this."""


class NotFound(TaskQueueError):
    """Raised on 404: no such task (unknown, malformed, or forgotten after retention)."""


class Conflict(TaskQueueError):
    """Raised on 409: the task is not in a state that allows this (e.g. retrying a task that
    is not failed, deleting one that is processing)."""


class LeaseLost(Conflict):
    """Raised on 409 from complete, fail or heartbeat: this consumer no longer holds the task
    (its lease expired and it went to someone else, or it was finished already)."""


class Throttled(TaskQueueError):
    """Raised when the server asks the client to come back later; `retry_after` is the
    `Retry-After` header in seconds, or None."""

    def __init__(self, status: int, detail: str, retry_after: float | None) -> None:
        super().__init__(status, detail)
        self.retry_after = retry_after


class TooManyRequests(Throttled):
    """Raised on 429."""


class Unavailable(Throttled):
    """Raised on 503: the server (or its store) cannot answer now; nothing was changed."""


class OutcomeUnknown(Unavailable):
    """Raised on a 503 saying the store failed while applying the call: it may have been
    applied. Calls that are safe to repeat are sent again before this is raised; for a
    dequeue, a task it may have leased returns to the queue when its lease expires."""


class ServerError(TaskQueueError):
    """Raised on any other 5xx: a bug in the server (its log has the traceback)."""


class ConnectionFailed(TaskQueueError):
    """Raised when no answer came: the server could not be reached, the connection broke, or
    the request timed out (after the retries an idempotent call is given)."""

    def __init__(self, detail: str) -> None:
        super().__init__(None, detail)


BY_STATUS: dict[int, type[TaskQueueError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
}
