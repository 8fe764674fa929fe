"""JSON in and out, with orjson: strict parsing and tasks written without re-encoding payloads."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from tornado_queue.errors import ValidationError
from tornado_queue.models import Happened, Task, history_of


def parse_json(body: bytes) -> Any:
    """Parse a request body as strict JSON.

    orjson refuses NaN/Infinity, numbers that overflow a double, invalid UTF-8, lone surrogates
    and nesting deeper than 1024, which is exactly the set of inputs the API answers with 400.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ValidationError(f"request body is not valid JSON: {exc}") from None


def dumps(document: Any) -> bytes:
    """Serialize a response document (datetimes in UTC as ISO-8601 with a `Z`)."""
    return orjson.dumps(document, option=orjson.OPT_UTC_Z)


MAX_ENCODE_DEPTH = 254
"""orjson writes at most this many nested levels; a deeper value is refused with a 400."""


def encode_json(value: Any, field: str) -> bytes:
    """Serialize a validated field (a payload, a result) once, to be stored and spliced into
    responses as is."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        # The only way a parsed JSON value can fail to encode is by nesting too deeply.
        raise ValidationError(
            f"field '{field}' is nested too deeply: at most {MAX_ENCODE_DEPTH} levels"
        ) from None


def format_time(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO-8601 in UTC with a `Z`, or None."""
    if timestamp is None:
        return None
    # isoformat() is the fastest formatter (about 3x strftime); it ends in "+00:00" for UTC and
    # leaves out the fraction when it is exactly zero, both of which ISO-8601 allows.
    return datetime.fromtimestamp(timestamp, UTC).isoformat()[:-6] + "Z"


def _utc(timestamp: float | None) -> datetime | None:
    # orjson writes a datetime in C, as `format_time` would (microseconds only when non-zero),
    # at a fraction of the cost of isoformat() and slicing.
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def task_document(task: Task) -> dict[str, Any]:
    """The wire form of a task (see docs/api.md, The task), for `dumps`."""
    created = _utc(task.created_at)
    started = _utc(task.started_at)
    extras = task.extras
    available = created if task.available_at == task.created_at else _utc(task.available_at)
    document = {
        "id": task.id,
        "queue": task.queue,
        "payload": orjson.Fragment(task.payload),
        "status": task.status.value,
        "priority": task.priority,
        "attempts": task.attempts,
        "max_attempts": task.max_attempts,
        "created_at": created,
        "available_at": available,
        "lease_id": task.lease_id,
        "lease_expires_at": _utc(task.lease_expires_at),
        "started_at": started,
        "finished_at": _utc(task.finished_at),
        "result": None if task.result is None else orjson.Fragment(task.result),
        "progress": None,
        "error": task.error,
        "group": task.group,
        "expires_at": _utc(task.expires_at),
        "dead_lettered_from": task.dead_lettered_from,
        "after": None,
        "dependents": None,
        "schedule": None,
        "fire_time": None,
        "history": None,
    }
    if task.history is None:
        # Only its enqueue happened (`models.history_of`): no list of entries to walk.
        document["history"] = [{"at": created, "event": _ENQUEUED}]
    else:
        document["history"] = _history(history_of(task), task, created, started)
    if extras is None:  # most tasks: no progress, workflow or schedule either
        return document
    if extras.progress is not None:
        document["progress"] = orjson.Fragment(extras.progress)
    if extras.after:
        document["after"] = list(extras.after)
    document["dependents"] = extras.dependents
    document["schedule"] = extras.schedule
    document["fire_time"] = _utc(extras.fire_time)
    return document


_ENQUEUED = Happened.ENQUEUED.value


def _history(
    entries: Sequence[Any], task: Task, created: datetime | None, started: datetime | None
) -> list[dict[str, Any]]:
    """The history on the wire: each entry's time, event and only the keys that apply. The
    enqueue and the last delivery happened at `created_at` and `started_at`, whose datetimes
    are made already (a dequeued task's whole history, most often)."""
    shown = []
    for at, event, lease_id, worker, error in entries:
        if at == task.created_at:
            when = created
        elif at == task.started_at:
            when = started
        else:
            when = _utc(at)
        entry: dict[str, Any] = {"at": when, "event": event}
        if lease_id is not None:
            entry["lease_id"] = lease_id
        if worker is not None:
            entry["worker"] = worker
        if error is not None:
            entry["error"] = error
        shown.append(entry)
    return shown
