"""What each client call sends and how its answer is read, shared by `Client` and
`AsyncClient` so that the two differ only in how bytes travel.

A `Call` is one HTTP request plus the function that turns a 2xx answer into the call's result;
`check` turns any other answer into the matching `TaskQueueError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import orjson

from tornado_queue.client.errors import (
    BY_STATUS,
    LeaseLost,
    OutcomeUnknown,
    ServerError,
    TaskQueueError,
    TooManyRequests,
    Unavailable,
)
from tornado_queue.client.items import BatchItem
from tornado_queue.client.task import Task, Worker
from tornado_queue.limits import MAX_WAIT_SECONDS, MAX_WORKER_ID_CHARS

T = TypeVar("T")
TaskRef = Task | str
"""A task, or just its id. Passing the `Task` from dequeue also passes its lease id."""

JSON = "application/json"
DETAIL_CHARS = 500
"""How much of a non-JSON error body is kept as `detail` (a proxy's HTML page, say)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request. `retry`: safe to send again after no answer or a 503 (the server either
    never applied it, or applying it twice changes nothing). `wait`: seconds the server may
    hold it (long-poll), added to the client's timeout. `fenced`: a 409 means the lease was
    lost. `names_worker`: a consumer's call, sent with the client's `X-Worker-Id`."""

    method: str
    path: str
    decode: Callable[[Response], T]
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    retry: bool = True
    wait: float = 0.0
    fenced: bool = False
    names_worker: bool = False


def _query(path: str, **params: Any) -> str:
    given = {name: value for name, value in params.items() if value is not None}
    return f"{path}?{urlencode(given)}" if given else path


def _id(task: TaskRef) -> str:
    return quote(task.id if isinstance(task, Task) else task, safe="")


def _json(document: Any) -> bytes:
    return orjson.dumps(document)


def _body(response: Response) -> Any:
    return orjson.loads(response.body)


def _task(response: Response) -> Task:
    return Task.from_document(_body(response))


def _nothing(_response: Response) -> None:
    return None


def new_key() -> str:
    """A fresh idempotency key, so that a retried enqueue cannot create a second task."""
    return f"tq-{uuid.uuid4().hex}"


def _new_task(payload: dict[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
    given = {name: v for name, v in options.items() if v is not None}
    after = given.get("after")
    if after is not None and not isinstance(after, str):  # a lone id: the server says why
        given["after"] = list(after)  # any sequence of ids, as the JSON list the server takes
    return {"payload": payload} | given


def _batch_item(entry: dict[str, Any] | BatchItem, options: Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(entry, BatchItem):
        return _new_task(entry.payload, {**options, **entry.given()})
    return _new_task(entry, options)


# --- producers ---------------------------------------------------------------------------


def enqueue(payload: dict[str, Any], key: str | None, **options: Any) -> Call[str]:
    return Call(
        "POST",
        "/tasks",
        lambda response: _body(response)["id"],
        _json(_new_task(payload, options)),
        {"Content-Type": JSON, "Idempotency-Key": key or new_key()},
    )


def enqueue_many(entries: Iterable[dict[str, Any] | BatchItem], **options: Any) -> Call[list[str]]:
    # Each item carries its own key (the header is refused on a batch): a retried batch
    # replays every item instead of creating any twice, and its "#k" still name the same tasks.
    items = [_batch_item(entry, options) | {"idempotency_key": new_key()} for entry in entries]
    return Call(
        "POST",
        "/tasks/batch",
        lambda response: _body(response)["ids"],
        _json({"tasks": items}),
        {"Content-Type": JSON},
    )


# --- consumers ---------------------------------------------------------------------------


def dequeue_many(
    count: int, queue: str | None, wait: float, lease: float | None
) -> Call[list[Task]]:
    # Never retried: if the answer is lost, the tasks it leased stay leased to nobody until
    # their leases expire. The batch route is used for single dequeues too, because it answers
    # an empty queue with 200 and an empty list, leaving 404 to mean a wrong URL.
    return Call(
        "POST",
        _query("/tasks/dequeue/batch", count=count, queue=queue, wait=wait or None, lease=lease),
        lambda response: [Task.from_document(item) for item in _body(response)["tasks"]],
        retry=False,
        wait=wait,
        names_worker=True,
    )


def complete(task: TaskRef, result: Any) -> Call[Task]:
    return _fenced("complete", task, {"result": result})


def fail(task: TaskRef, error: str | None, retry: bool) -> Call[Task]:
    return _fenced("fail", task, {"error": error, "retry": retry})


def heartbeat(task: TaskRef, lease: float | None) -> Call[Task]:
    return _fenced(_query("heartbeat", lease=lease), task, {})


def progress(task: TaskRef, value: Any) -> Call[Task]:
    return _fenced("progress", task, {"progress": value})


def _fenced(action: str, task: TaskRef, body: dict[str, Any]) -> Call[Task]:
    # Retrying is safe: with the lease id a repeat is the same change or a refusal, never a
    # change made on someone else's lease.
    lease_id = task.lease_id if isinstance(task, Task) else None
    if lease_id is not None:
        body = body | {"lease_id": lease_id}
    return Call(
        "PUT",
        f"/tasks/{_id(task)}/{action}",
        _task,
        _json(body),
        {"Content-Type": JSON},
        # Only a fenced command is safe to repeat after a lost answer: unfenced, the repeat
        # could act on a lease another consumer was given meanwhile.
        retry=lease_id is not None,
        fenced=lease_id is not None,
        names_worker=True,
    )


# --- reading and operating ---------------------------------------------------------------


def get(task: TaskRef, wait: float | None = None) -> Call[Task]:
    # With a wait the server may hold the request that long (until the task finishes).
    wait = wait or None
    return Call("GET", _query(f"/tasks/{_id(task)}", wait=wait), _task, wait=wait or 0.0)


def result_wait(remaining: float) -> float | None:
    """The `wait` of the next `get` of a `wait_for` with `remaining` seconds left: as long as
    the server allows, none once the time is up (then a plain read)."""
    if remaining <= 0:
        return None
    return round(min(remaining, MAX_WAIT_SECONDS), 3) or None


def timed_out(task: Task, timeout: float) -> TimeoutError:
    return TimeoutError(f"task {task.id} is still {task.status.value} after {timeout:g} s")


def retry(task: TaskRef) -> Call[Task]:
    # Retrying after a lost answer gives 409 (the task is no longer failed), never a double.
    return Call("POST", f"/tasks/{_id(task)}/retry", _task)


def queue(name: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/queues/{quote(name, safe='')}", _body)


def configure_queue(name: str, settings: Mapping[str, Any]) -> Call[dict[str, Any]]:
    # The values are absolute (None clears): setting them twice changes nothing, so a repeat
    # is safe.
    path = f"/queues/{quote(name, safe='')}"
    return Call("PATCH", path, _body, _json(dict(settings)), {"Content-Type": JSON})


def purge_queue(name: str, status: str) -> Call[int]:
    # A repeat after a lost answer deletes only what is left in that state (its count says
    # only what the repeat deleted).
    path = _query(f"/queues/{quote(name, safe='')}/tasks", status=status)
    return Call("DELETE", path, _deleted)


def _deleted(response: Response) -> int:
    return int(_body(response)["deleted"])


def put_schedule(name: str, definition: Mapping[str, Any]) -> Call[dict[str, Any]]:
    # A PUT sets the whole definition: sending it twice leaves the same schedule.
    body = {field: value for field, value in definition.items() if value is not None}
    path = f"/schedules/{quote(name, safe='')}"
    return Call("PUT", path, _body, _json(body), {"Content-Type": JSON})


def get_schedule(name: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/schedules/{quote(name, safe='')}", _body)


def schedules() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/schedules", _body)


def delete_schedule(name: str) -> Call[None]:
    # As a task's DELETE: a repeat after a lost answer finds it gone (404).
    return Call("DELETE", f"/schedules/{quote(name, safe='')}", _nothing)


def view(queue: str, status: str, limit: int | None, offset: int | None) -> Call[list[Task]]:
    path = _query("/queue/view", queue=queue, status=status, limit=limit, offset=offset)
    return Call("GET", path, _tasks)


def _tasks(response: Response) -> list[Task]:
    return [Task.from_document(item) for item in _body(response)]


def retry_queue(queue: str) -> Call[int]:
    # A repeat after a lost answer retries only what is still failed.
    return Call("POST", f"/queues/{quote(queue, safe='')}/retry", _retried)


def _retried(response: Response) -> int:
    return int(_body(response)["retried"])


def delete(task: TaskRef) -> Call[None]:
    return Call("DELETE", f"/tasks/{_id(task)}", _nothing)


def stats(queue: str | None) -> Call[dict[str, int]]:
    return Call("GET", _query("/queue/stats", queue=queue), _body)


def totals(queue: str | None) -> Call[dict[str, int]]:
    return Call("GET", _query("/queue/totals", queue=queue), _body)


def queues() -> Call[list[dict[str, Any]]]:
    return Call("GET", "/queues", _body)


def workers() -> Call[list[Worker]]:
    return Call("GET", "/workers", _workers)


def _workers(response: Response) -> list[Worker]:
    return [Worker.from_document(item) for item in _body(response)]


def worker_headers(worker_id: str | None) -> dict[str, str]:
    """The `X-Worker-Id` header a client with this `worker_id` sends on its consumer calls;
    `ValueError` for one the server would refuse (1 to 128 visible ASCII characters)."""
    if worker_id is None:
        return {}
    if not (
        isinstance(worker_id, str)
        and 1 <= len(worker_id) <= MAX_WORKER_ID_CHARS
        and all("!" <= char <= "~" for char in worker_id)
    ):
        raise ValueError(
            f"worker_id must be 1 to {MAX_WORKER_ID_CHARS} visible ASCII characters "
            f"(no spaces), got {worker_id!r}"
        )
    return {"X-Worker-Id": worker_id}


# --- retries and answers ---------------------------------------------------------------


MAX_BACKOFF_SECONDS = 5.0
STORE_UNAVAILABLE = "urn:tornado-queue:problem:store-unavailable"
OUTCOME_UNKNOWN = "urn:tornado-queue:problem:outcome-unknown"


def backoff(attempt: int, base: float) -> float:
    """Seconds to wait before retry number `attempt` (0, 1, …): doubling, capped."""
    return min(MAX_BACKOFF_SECONDS, base * 2**attempt)


def retry_pause(
    call: Call[Any], response: Response | None, attempt: int, retries: int, base: float
) -> float | None:
    """Seconds to wait before sending `call` again, or None to stop here.

    Sent again, up to `retries` times: a call that is safe to repeat (`call.retry`) after no
    answer (`response` None) or a 503; and any call after a 503 of type store-unavailable,
    which says nothing was applied. A 503 waits at least its `Retry-After` (capped)."""
    if attempt >= retries:
        return None
    if response is None:
        return backoff(attempt, base) if call.retry else None
    if response.status != 503:
        return None
    if not call.retry and _problem_type(response) != STORE_UNAVAILABLE:
        return None
    after = _retry_after(response.headers.get("retry-after")) or 0.0
    return max(backoff(attempt, base), min(after, MAX_BACKOFF_SECONDS))


def check(call: Call[T], response: Response) -> T:
    """The call's result for a 2xx answer; the matching `TaskQueueError` otherwise."""
    if 200 <= response.status < 300:
        return call.decode(response)
    raise error_for(call, response)


def error_for(call: Call[Any], response: Response) -> TaskQueueError:
    status, detail = response.status, _detail(response)
    if status in (429, 503):
        kind = TooManyRequests if status == 429 else Unavailable
        if status == 503 and _problem_type(response) == OUTCOME_UNKNOWN:
            kind = OutcomeUnknown
        return kind(status, detail, _retry_after(response.headers.get("retry-after")))
    if status == 409 and call.fenced:
        return LeaseLost(status, detail)
    if status >= 500:
        return ServerError(status, detail)
    return BY_STATUS.get(status, TaskQueueError)(status, detail)


def _problem(response: Response) -> dict[str, Any]:
    try:
        problem = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        return {}
    return problem if isinstance(problem, dict) else {}


def _problem_type(response: Response) -> str | None:
    kind = _problem(response).get("type")
    return kind if isinstance(kind, str) else None


def _detail(response: Response) -> str:
    problem = _problem(response)
    if isinstance(problem.get("detail"), str):
        return problem["detail"]
    text = response.body.decode("utf-8", "replace").strip()[:DETAIL_CHARS]
    return text or f"HTTP {response.status}"


def _retry_after(value: str | None) -> float | None:
    # Only the delay-seconds form; an HTTP-date is rare from an API and treated as absent.
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None
