"""Request documents checked field by field and turned into store inputs. No HTTP here."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from tornado_queue import codec
from tornado_queue.errors import TokenError, ValidationError, printable
from tornado_queue.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MAX_BATCH,
    MAX_CRON_CHARS,
    MAX_DELAY_SECONDS,
    MAX_ERROR_CHARS,
    MAX_EVERY_SECONDS,
    MAX_EXPIRY_SECONDS,
    MAX_GROUP_CHARS,
    MAX_KEY_CHARS,
    MAX_LEASE_ID_CHARS,
    MAX_LEASE_SECONDS,
    MAX_PARENTS,
    MAX_PRIORITY,
    MAX_PROCESSING,
    MAX_PROGRESS_BYTES,
    MAX_PUSH_HEADER_NAME_CHARS,
    MAX_PUSH_HEADER_VALUE_CHARS,
    MAX_PUSH_HEADERS,
    MAX_PUSH_TIMEOUT_SECONDS,
    MAX_PUSH_URL_CHARS,
    MAX_RATE_SECONDS,
    MAX_RATE_TASKS,
    MAX_TOKEN_CHARS,
    MIN_EVERY_SECONDS,
    MIN_EXPIRY_SECONDS,
    MIN_LEASE_SECONDS,
    MIN_PUSH_TIMEOUT_SECONDS,
    MIN_TOKEN_CHARS,
    PUSH_RESERVED_HEADERS,
)
from tornado_queue.models import (
    DEFAULT_QUEUE,
    Completion,
    NewTask,
    PushTarget,
    QueueSettings,
    RateLimit,
)
from tornado_queue.schedules import DEFAULT_TIMEZONE, Schedule, check_cron, timezones

QUEUE_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
IDEMPOTENCY_KEY = re.compile(rf"[\x21-\x7e]{{1,{MAX_KEY_CHARS}}}")
# A group is the client's own text (a customer id, an order number): any characters but
# control characters, so it shows and logs as it was sent.
GROUP = re.compile(rf"[^\x00-\x1f\x7f]{{1,{MAX_GROUP_CHARS}}}")
# A parent in `after`: a task id as the server writes them (visible ASCII, bounded), or in a
# batch "#<index>" of an earlier item.
PARENT_ID = re.compile(r"[\x21-\x7e]{1,64}")
BATCH_REFERENCE = re.compile(r"#(0|[1-9][0-9]{0,5})")

EMPTY_BODY: Any = object()
"""Stands for a request without a body (distinct from a body that is JSON `null`)."""

NEW_TASK_FIELDS = frozenset(
    {"payload", "max_attempts", "queue", "priority", "delay", "group", "expires_in", "after"}
)
BATCH_ITEM_FIELDS = NEW_TASK_FIELDS | {"idempotency_key"}
BATCH_FIELDS = frozenset({"tasks"})
COMPLETE_FIELDS = frozenset({"result", "lease_id"})
COMPLETE_ITEM_FIELDS = frozenset({"id", "result", "lease_id"})
FAIL_FIELDS = frozenset({"error", "retry", "lease_id"})
HEARTBEAT_FIELDS = frozenset({"lease_id"})
PROGRESS_FIELDS = frozenset({"progress", "lease_id"})


@dataclass(frozen=True, slots=True)
class Progress:
    value: bytes
    """The progress, serialized JSON."""
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


def new_task(
    document: Any,
    idempotency_key: str | None = None,
    what: str = "request body",
    allowed: frozenset[str] = NEW_TASK_FIELDS,
    index: int | None = None,
) -> NewTask:
    """Validate a `POST /tasks` body (or item `index` of a batch, named `what` in errors):
    `{"payload": {...}, "queue"?, "priority"?, "delay"?, "max_attempts"?, "group"?,
    "expires_in"?, "after"?}`."""
    body = require_object(document, what, allowed)
    if "payload" not in body:
        raise ValidationError(f"{_field(what, 'payload')} is required")
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise ValidationError(
            f"{_field(what, 'payload')} must be a JSON object, got {_json_type(payload)}"
        )
    max_attempts = body.get("max_attempts")
    if max_attempts is not None:
        max_attempts = _bounded_int(max_attempts, _field(what, "max_attempts"), 1, MAX_ATTEMPTS)
    if "idempotency_key" in body:
        key = idempotency_key_value(body["idempotency_key"], _field(what, "idempotency_key"))
    elif idempotency_key is not None:
        key = idempotency_key_value(idempotency_key, "header Idempotency-Key")
    else:
        key = None
    # Absent fields take their defaults without a check (most tasks name only a payload).
    queue, priority, delay = DEFAULT_QUEUE, 0, 0.0
    if "queue" in body:
        queue = queue_name(body["queue"], _field(what, "queue"))
    if "priority" in body:
        label = _field(what, "priority")
        priority = _bounded_int(body["priority"], label, -MAX_PRIORITY, MAX_PRIORITY)
    if "delay" in body:
        delay = _bounded_number(body["delay"], _field(what, "delay"), 0, MAX_DELAY_SECONDS)
    group = expires_in = None
    if body.get("group") is not None:
        group = group_name(body["group"], _field(what, "group"))
    if body.get("expires_in") is not None:
        label = _field(what, "expires_in")
        expires_in = _bounded_number(
            body["expires_in"], label, MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS
        )
    after = None
    if body.get("after") is not None:
        after = parents(body["after"], _field(what, "after"), index)
    return NewTask(
        payload=codec.encode_json(payload, "payload"),
        max_attempts=max_attempts,
        queue=queue,
        priority=priority,
        delay=delay,
        idempotency_key=key,
        fingerprint=_fingerprint(body) if key is not None else b"",
        group=group,
        expires_in=expires_in,
        after=after,
    )


def parents(value: Any, what: str, index: int | None) -> tuple[str | int, ...]:
    """`after`: 1 to 100 distinct task ids; in item `index` of a batch also "#k", an earlier
    item k of the same batch (returned as the int k)."""
    if not isinstance(value, list):
        raise ValidationError(f"{what} must be a list of task ids, got {_json_type(value)}")
    if not 1 <= len(value) <= MAX_PARENTS:
        raise ValidationError(f"{what} must name 1 to {MAX_PARENTS} tasks, got {len(value)}")
    chosen: list[str | int] = []
    for position, parent in enumerate(value):
        label = f"{what}[{position}]"
        if not isinstance(parent, str) or not PARENT_ID.fullmatch(parent):
            shown = printable(parent[:80]) if isinstance(parent, str) else _json_type(parent)
            raise ValidationError(f"{label} must be a task id, got '{shown}'")
        reference = BATCH_REFERENCE.fullmatch(parent)
        if reference is not None:
            if index is None:
                raise ValidationError(
                    f"{label} is '{parent}': '#<index>' names an item of the same batch, "
                    "so it is only for POST /tasks/batch"
                )
            earlier = int(reference.group(1))
            if earlier >= index:
                raise ValidationError(
                    f"{label} is '{parent}': an item may only wait for an earlier item "
                    f"of its batch (#0 to #{index - 1})"
                    if index
                    else f"{label} is '{parent}': the first item of a batch has no earlier "
                    "item to wait for"
                )
            chosen.append(earlier)
        elif parent.startswith("#"):
            raise ValidationError(f"{label} is '{printable(parent)}': not '#<index>' nor a task id")
        else:
            chosen.append(parent)
        if chosen[-1] in chosen[:-1]:
            raise ValidationError(f"{label} names '{printable(parent)}' a second time")
    return tuple(chosen)


def new_task_batch(document: Any) -> list[NewTask]:
    """Validate a `POST /tasks/batch` body: `{"tasks": [<a POST /tasks body>, ...]}`."""
    items = _batch_items(document)
    return [
        new_task(item, what=f"tasks[{index}]", allowed=BATCH_ITEM_FIELDS, index=index)
        for index, item in enumerate(items)
    ]


def completion_batch(document: Any) -> list[Completion]:
    """Validate a `POST /tasks/complete/batch` body:
    `{"tasks": [{"id", "lease_id"?, "result"?}, ...]}`."""
    items = _batch_items(document)
    completions = []
    for index, item in enumerate(items):
        what = f"tasks[{index}]"
        body = require_object(item, what, COMPLETE_ITEM_FIELDS)
        task_id = body.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise ValidationError(f"{_field(what, 'id')} must be a task id string")
        result = codec.encode_json(body["result"], "result") if "result" in body else None
        completions.append(Completion(task_id, lease_id(body, None), result))
    return completions


def queue_name(value: Any, what: str = "queue") -> str:
    """A queue name: 1 to 64 of A-Z a-z 0-9 _ . -"""
    if not isinstance(value, str) or not QUEUE_NAME.fullmatch(value):
        shown = printable(value[:80]) if isinstance(value, str) else _json_type(value)
        raise ValidationError(
            f"{what} must be 1 to 64 characters from A-Z a-z 0-9 _ . - ; got '{shown}'"
        )
    return value


def group_name(value: Any, what: str = "group") -> str:
    """A task's ordering group: 1 to 128 characters, none of them a control character."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be a string, got {_json_type(value)}")
    if not GROUP.fullmatch(value):
        raise ValidationError(
            f"{what} must be 1 to {MAX_GROUP_CHARS} characters without control characters"
        )
    return value


def idempotency_key_value(value: Any, what: str = "Idempotency-Key") -> str:
    """An idempotency key: 1 to 255 visible ASCII characters."""
    if not isinstance(value, str) or not IDEMPOTENCY_KEY.fullmatch(value):
        raise ValidationError(f"{what} must be 1 to {MAX_KEY_CHARS} visible ASCII characters")
    return value


def completion(document: Any, query_lease_id: str | None, task_id: str) -> Completion:
    """Validate a `PUT /tasks/{id}/complete` body: `{"result"?: any, "lease_id"?: str}`."""
    body = optional_object(document, COMPLETE_FIELDS)
    result = codec.encode_json(body["result"], "result") if "result" in body else None
    return Completion(task_id, lease_id(body, query_lease_id), result)


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


def progress(document: Any, query_lease_id: str | None) -> Progress:
    """Validate a `PUT /tasks/{id}/progress` body: `{"progress": any, "lease_id"?: str}`, the
    progress at most `MAX_PROGRESS_BYTES` as JSON."""
    body = require_object(document, "request body", PROGRESS_FIELDS)
    if "progress" not in body:
        raise ValidationError("field 'progress' is required")
    value = codec.encode_json(body["progress"], "progress")
    if len(value) > MAX_PROGRESS_BYTES:
        raise ValidationError(
            f"field 'progress' is {len(value)} bytes as JSON; the limit is "
            f"{MAX_PROGRESS_BYTES} bytes"
        )
    return Progress(value, lease_id(body, query_lease_id))


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


def _bounded_int(value: Any, label: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{label} must be an integer, got {_json_type(value)}")
    if not low <= value <= high:
        raise ValidationError(f"{label} must be from {low} to {high}, got {value}")
    return value


def _bounded_number(value: Any, label: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"{label} must be a number, got {_json_type(value)}")
    if not low <= value <= high:
        raise ValidationError(
            f"{label} must be from {number_text(low)} to {number_text(high)}, got {value}"
        )
    return float(value)


def number_text(number: float) -> str:
    """A bound as people write it: 31536000, not 3.1536e+07; 0.5 stays 0.5."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _batch_items(document: Any) -> list[Any]:
    body = require_object(document, "request body", BATCH_FIELDS)
    items = body.get("tasks")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        size = f"{len(items)} items" if isinstance(items, list) else _json_type(items)
        raise ValidationError(
            f"field 'tasks' must be an array of 1 to {MAX_BATCH} items, got {size}"
        )
    return items


def _fingerprint(body: dict[str, Any]) -> bytes:
    """What makes two requests "the same" for an idempotency key: their content, key order and
    whitespace aside."""
    content = {name: value for name, value in body.items() if name != "idempotency_key"}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).digest()


def _field(what: str, name: str) -> str:
    """How an error names a field: `field 'x'` in a body, `tasks[3].x` in a batch item."""
    return f"field '{name}'" if what == "request body" else f"{what}.{name}"


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


def check_token(token: str, where: str) -> None:
    """A bearer token the server can be given (`--auth-token`, a tokens file line); raises
    `TokenError` naming `where`, never the token."""
    if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
        raise TokenError(
            f"{where}: a token must be {MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} characters, "
            f"this one has {len(token)}"
        )
    if not TOKEN.fullmatch(token):
        raise TokenError(
            f"{where}: a token may hold only A-Z a-z 0-9 - . _ ~ + / (and = at the end), "
            "as a bearer token must"
        )


SETTINGS = frozenset(QueueSettings.NAMES)
RATE_LIMIT_FIELDS = frozenset({"tasks", "seconds"})


def queue_settings_changes(document: Any, queue: str) -> dict[str, object]:
    """A PATCH of `queue`'s settings: a JSON object of setting → value, null clearing one;
    values come back as the store keeps them (`QueueSettings` field types)."""
    changes = require_object(document, "the settings", SETTINGS)
    checked: dict[str, object] = {}
    for name, value in changes.items():
        checked[name] = None if value is None else _SETTING_CHECKS[name](value, queue)
    return checked


def _paused_setting(value: Any, _queue: str) -> bool:
    if not isinstance(value, bool):
        raise ValidationError(
            f"setting 'paused' must be true, false or null, got {_json_type(value)}"
        )
    return value


def _setting_object(value: Any, label: str, example: str, allowed: frozenset[str]) -> None:
    """Refuse a setting's value unless it is an object holding only `allowed` fields."""
    if not isinstance(value, dict):
        raise ValidationError(
            f"{label} must be an object like {example} or null, got {_json_type(value)}"
        )
    unknown = sorted(value.keys() - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise ValidationError(
            f"{label} has unknown field '{printable(unknown[0][:64])}' (known fields: {known})"
        )


def _rate_limit_setting(value: Any, _queue: str) -> RateLimit:
    label = "setting 'rate_limit'"
    _setting_object(value, label, '{"tasks": 10, "seconds": 1}', RATE_LIMIT_FIELDS)
    missing = sorted(RATE_LIMIT_FIELDS - value.keys())
    if missing:
        raise ValidationError(f"{label} needs field '{missing[0]}'")
    tasks = _bounded_int(value["tasks"], "setting 'rate_limit.tasks'", 1, MAX_RATE_TASKS)
    seconds_label = "setting 'rate_limit.seconds'"
    seconds = _bounded_number(value["seconds"], seconds_label, 0, MAX_RATE_SECONDS)
    if seconds <= 0:
        raise ValidationError(f"{seconds_label} must be more than 0, got {value['seconds']}")
    return RateLimit(tasks, seconds)


PUSH_FIELDS = frozenset({"url", "timeout_seconds", "headers"})
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
HEADER_VALUE = re.compile(r"[\x20-\x7e]*")


def _push_setting(value: Any, _queue: str) -> PushTarget:
    """A push target as a client gives it (no secret yet: the server adds it). The URL's
    form and whether --push-allow admits it are checked by the server (`push_allow`)."""
    label = "setting 'push'"
    _setting_object(value, label, '{"url": "https://example.com/tasks"}', PUSH_FIELDS)
    url = value.get("url")
    if url is None:
        raise ValidationError(f"{label} needs field 'url'")
    if not isinstance(url, str):
        raise ValidationError(f"setting 'push.url' must be a string, got {_json_type(url)}")
    if not 0 < len(url) <= MAX_PUSH_URL_CHARS:
        raise ValidationError(
            f"setting 'push.url' must be 1 to {MAX_PUSH_URL_CHARS} characters, got {len(url)}"
        )
    timeout = 30.0
    if value.get("timeout_seconds") is not None:
        timeout = _bounded_number(
            value["timeout_seconds"],
            "setting 'push.timeout_seconds'",
            MIN_PUSH_TIMEOUT_SECONDS,
            MAX_PUSH_TIMEOUT_SECONDS,
        )
    return PushTarget(url=url, timeout_seconds=timeout, headers=_push_headers(value.get("headers")))


def _push_headers(value: Any) -> tuple[tuple[str, str], ...]:
    label = "setting 'push.headers'"
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValidationError(
            f'{label} must be an object of header names to values, like {{"Authorization": '
            f'"Bearer …"}}, got {_json_type(value)}'
        )
    if len(value) > MAX_PUSH_HEADERS:
        raise ValidationError(
            f"{label} may hold at most {MAX_PUSH_HEADERS} headers, got {len(value)}"
        )
    headers, seen = [], set()
    for name, text in value.items():
        shown = printable(name[:64])
        if not (0 < len(name) <= MAX_PUSH_HEADER_NAME_CHARS and HEADER_NAME.fullmatch(name)):
            raise ValidationError(
                f"{label} has a bad header name '{shown}': 1 to {MAX_PUSH_HEADER_NAME_CHARS} "
                "letters, digits or !#$%&'*+.^_`|~-"
            )
        lowered = name.lower()
        if lowered in PUSH_RESERVED_HEADERS:
            raise ValidationError(f"{label} cannot set '{shown}': the server sets it on every push")
        if lowered in seen:
            raise ValidationError(f"{label} names '{shown}' twice")
        seen.add(lowered)
        if not isinstance(text, str):
            raise ValidationError(
                f"setting 'push.headers.{shown}' must be a string, got {_json_type(text)}"
            )
        if len(text) > MAX_PUSH_HEADER_VALUE_CHARS or not HEADER_VALUE.fullmatch(text):
            raise ValidationError(
                f"setting 'push.headers.{shown}' must be at most "
                f"{MAX_PUSH_HEADER_VALUE_CHARS} visible ASCII characters or spaces"
            )
        headers.append((name, text))
    return tuple(headers)


def _dead_letter_setting(value: Any, queue: str) -> str:
    name = queue_name(value, "setting 'dead_letter_queue'")
    if name == queue:
        raise ValidationError(
            f"setting 'dead_letter_queue' must name another queue, not '{queue}' itself"
        )
    return name


def _int_setting(name: str, low: int, high: int) -> Any:
    return lambda value, _queue: _bounded_int(value, f"setting '{name}'", low, high)


def _number_setting(name: str, low: float, high: float) -> Any:
    return lambda value, _queue: _bounded_number(value, f"setting '{name}'", low, high)


_SETTING_CHECKS = {
    "paused": _paused_setting,
    "max_processing": _int_setting("max_processing", 1, MAX_PROCESSING),
    "rate_limit": _rate_limit_setting,
    "lease_seconds": _number_setting("lease_seconds", MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
    "max_attempts": _int_setting("max_attempts", 1, MAX_ATTEMPTS),
    "retry_backoff": _number_setting("retry_backoff", 0, MAX_BACKOFF_SECONDS),
    "dead_letter_queue": _dead_letter_setting,
    "ttl_seconds": _number_setting("ttl_seconds", MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS),
    "push": _push_setting,
}
"""How each setting's value is checked (None, which clears it, is never passed)."""


SCHEDULE_FIELDS = frozenset(
    {"queue", "payload", "cron", "every", "timezone", "priority", "max_attempts", "paused"}
)


def schedule(document: Any, name: str) -> Schedule:
    """Validate a `PUT /schedules/{name}` body: `{"queue", "payload", "cron" | "every",
    "timezone"?, "priority"?, "max_attempts"?, "paused"?}`; the schedule it defines (its
    `next_run_at` is the store's to set)."""
    body = require_object(document, "request body", SCHEDULE_FIELDS)
    for required in ("queue", "payload"):
        if required not in body:
            raise ValidationError(f"field '{required}' is required")
    queue = queue_name(body["queue"], "field 'queue'")
    payload = body["payload"]
    if not isinstance(payload, dict):
        raise ValidationError(f"field 'payload' must be a JSON object, got {_json_type(payload)}")
    timezone = body.get("timezone", DEFAULT_TIMEZONE)
    if not isinstance(timezone, str) or timezone not in timezones():
        shown = printable(timezone[:80]) if isinstance(timezone, str) else _json_type(timezone)
        raise ValidationError(
            f"field 'timezone' must be an IANA timezone name like 'Europe/Berlin' or 'UTC'; "
            f"got '{shown}'"
        )
    cron, every = body.get("cron"), body.get("every")
    if (cron is None) == (every is None):
        raise ValidationError(
            "give exactly one of field 'cron' (a cron expression) and field 'every' (seconds)"
        )
    if cron is not None:
        cron = _cron_expression(cron, timezone)
    if every is not None:
        every = _bounded_number(every, "field 'every'", MIN_EVERY_SECONDS, MAX_EVERY_SECONDS)
    priority = 0
    if "priority" in body:
        priority = _bounded_int(body["priority"], "field 'priority'", -MAX_PRIORITY, MAX_PRIORITY)
    max_attempts = body.get("max_attempts")
    if max_attempts is not None:
        max_attempts = _bounded_int(max_attempts, "field 'max_attempts'", 1, MAX_ATTEMPTS)
    paused = body.get("paused", False)
    if not isinstance(paused, bool):
        raise ValidationError(f"field 'paused' must be true or false, got {_json_type(paused)}")
    return Schedule(
        name=name,
        queue=queue,
        payload=codec.encode_json(payload, "payload"),
        cron=cron,
        every=every,
        timezone=timezone,
        priority=priority,
        max_attempts=max_attempts,
        paused=paused,
    )


def _cron_expression(value: Any, timezone: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"field 'cron' must be a string, got {_json_type(value)}")
    if len(value) > MAX_CRON_CHARS:
        raise ValidationError(f"field 'cron' is over {MAX_CRON_CHARS} characters")
    try:
        check_cron(value, timezone)
    except ValueError as error:
        raise ValidationError(
            f"field 'cron' is not a cron expression like '*/5 * * * *' ({error}); "
            f"got '{printable(value[:80])}'"
        ) from None
    return value
