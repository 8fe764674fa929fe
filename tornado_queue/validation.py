"""Request documents checked field by field and turned into store inputs. No HTTP here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import codec
from .errors import ValidationError
from .models import NewTask

MAX_ATTEMPTS_LIMIT = 1000
MAX_ERROR_CHARS = 10_000
MAX_LEASE_ID_CHARS = 64

EMPTY_BODY: Any = object()
"""Stands for a request without a body (distinct from a body that is JSON `null`)."""

NEW_TASK_FIELDS = frozenset({"payload", "max_attempts"})
COMPLETE_FIELDS = frozenset({"result", "lease_id"})
FAIL_FIELDS = frozenset({"error", "retry", "lease_id"})
HEARTBEAT_FIELDS = frozenset({"lease_id"})


@dataclass(frozen=True, slots=True)
class Completion:
    result: bytes | None
    lease_id: str | None


@dataclass(frozen=True, slots=True)
class Failure:
    error: str | None
    retry: bool
    lease_id: str | None


def require_object(document: Any, what: str, allowed: frozenset[str]) -> dict[str, Any]:
    """`document` as a JSON object holding only `allowed` fields."""
    if document is EMPTY_BODY:
        raise ValidationError(f"{what} is empty; expected a JSON object")
    if not isinstance(document, dict):
        raise ValidationError(f"{what} must be a JSON object, got {_json_type(document)}")
    unknown = sorted(document.keys() - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValidationError(
            f"{what} has unknown field '{unknown[0][:64]}' (known fields: {known})"
        )
    return document


def optional_object(document: Any, allowed: frozenset[str]) -> dict[str, Any]:
    """An optional request body: no body reads as `{}`."""
    if document is EMPTY_BODY:
        return {}
    return require_object(document, "request body", allowed)


def new_task(document: Any) -> NewTask:
    """Validate a `POST /tasks` body: `{"payload": {...}, "max_attempts"?: int}`."""
    body = require_object(document, "request body", NEW_TASK_FIELDS)
    if "payload" not in body:
        raise ValidationError("field 'payload' is required")
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise ValidationError(f"field 'payload' must be a JSON object, got {_json_type(payload)}")
    max_attempts = body.get("max_attempts")
    if max_attempts is not None:
        max_attempts = _bounded_int(max_attempts, "max_attempts", 1, MAX_ATTEMPTS_LIMIT)
    return NewTask(payload=codec.encode_json(payload, "payload"), max_attempts=max_attempts)


def completion(document: Any, query_lease_id: str | None) -> Completion:
    """Validate a `PUT /tasks/{id}/complete` body: `{"result"?: any, "lease_id"?: str}`."""
    body = optional_object(document, COMPLETE_FIELDS)
    result = codec.encode_json(body["result"], "result") if "result" in body else None
    return Completion(result=result, lease_id=lease_id(body, query_lease_id))


def failure(document: Any, query_lease_id: str | None) -> Failure:
    """Validate a `PUT /tasks/{id}/fail` body: `{"error"?: str, "retry"?: bool, "lease_id"?}`."""
    body = optional_object(document, FAIL_FIELDS)
    error = body.get("error")
    if error is not None and not isinstance(error, str):
        raise ValidationError(f"field 'error' must be a string, got {_json_type(error)}")
    if error is not None and len(error) > MAX_ERROR_CHARS:
        raise ValidationError(f"field 'error' is over {MAX_ERROR_CHARS} characters")
    retry = body.get("retry", True)
    if not isinstance(retry, bool):
        raise ValidationError(f"field 'retry' must be true or false, got {_json_type(retry)}")
    return Failure(error=error, retry=retry, lease_id=lease_id(body, query_lease_id))


def heartbeat(document: Any, query_lease_id: str | None) -> str | None:
    """Validate a `PUT /tasks/{id}/heartbeat` body: `{"lease_id"?: str}`; return the lease id."""
    return lease_id(optional_object(document, HEARTBEAT_FIELDS), query_lease_id)


def lease_id(body: dict[str, Any], query_lease_id: str | None) -> str | None:
    """The lease id from the body or the query string; 400 if both are given and differ."""
    from_body = body.get("lease_id")
    if from_body is not None and not isinstance(from_body, str):
        raise ValidationError(f"field 'lease_id' must be a string, got {_json_type(from_body)}")
    for candidate in (from_body, query_lease_id):
        if candidate is not None and not 0 < len(candidate) <= MAX_LEASE_ID_CHARS:
            raise ValidationError(f"lease_id must be 1 to {MAX_LEASE_ID_CHARS} characters")
    if from_body is not None and query_lease_id is not None and from_body != query_lease_id:
        raise ValidationError("lease_id in the query string and in the body differ")
    return from_body if from_body is not None else query_lease_id


def _bounded_int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"field '{name}' must be an integer, got {_json_type(value)}")
    if not low <= value <= high:
        raise ValidationError(f"field '{name}' must be from {low} to {high}, got {value}")
    return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
