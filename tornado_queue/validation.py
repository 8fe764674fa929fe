"""Request documents checked field by field and turned into store inputs. No HTTP here."""

from __future__ import annotations

from typing import Any

from . import codec
from .errors import ValidationError
from .models import NewTask

NEW_TASK_FIELDS = frozenset({"payload"})
COMPLETE_FIELDS: frozenset[str] = frozenset()


def require_object(document: Any, what: str, allowed: frozenset[str]) -> dict[str, Any]:
    """`document` as a JSON object holding only `allowed` fields."""
    if not isinstance(document, dict):
        raise ValidationError(f"{what} must be a JSON object, got {_json_type(document)}")
    unknown = sorted(document.keys() - allowed)
    if unknown:
        known = ", ".join(sorted(allowed)) or "none"
        raise ValidationError(
            f"{what} has unknown field '{unknown[0][:64]}' (known fields: {known})"
        )
    return document


def new_task(document: Any) -> NewTask:
    """Validate a `POST /tasks` body: `{"payload": {...}}`."""
    body = require_object(document, "request body", NEW_TASK_FIELDS)
    if "payload" not in body:
        raise ValidationError("field 'payload' is required")
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise ValidationError(f"field 'payload' must be a JSON object, got {_json_type(payload)}")
    return NewTask(payload=codec.encode_payload(payload))


def complete_request(document: Any) -> None:
    """Validate a `PUT /tasks/{id}/complete` body: none, or an empty object."""
    if document is not None:
        require_object(document, "request body", COMPLETE_FIELDS)


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
