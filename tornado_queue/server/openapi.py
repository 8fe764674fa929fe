"""The OpenAPI 3.1 description of the HTTP API, served at `/openapi.json`.

Written by hand from what the handlers and `validation.py` really do; the bounds come from the
same constants the server checks with, so a limit changed there changes here. Tests keep it
true: the document validates, its paths and methods equal the route table both ways, and
schemathesis runs every operation against a real server (`tests/server/test_schemathesis.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from tornado_queue import codec, limits, validation
from tornado_queue.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MAX_EXPIRY_SECONDS,
    MAX_GROUP_CHARS,
    MAX_LEASE_SECONDS,
    MAX_PROCESSING,
    MAX_RATE_SECONDS,
    MAX_RATE_TASKS,
    MAX_WAIT_SECONDS,
    MIN_EXPIRY_SECONDS,
    MIN_LEASE_SECONDS,
    VIEW_DEFAULT_LIMIT,
    VIEW_MAX_LIMIT,
    VIEW_MAX_OFFSET,
)
from tornado_queue.models import (
    DEFAULT_QUEUE,
    HISTORY_LENGTH,
    LISTED,
    PURGEABLE,
    Event,
    Happened,
    QueueSettings,
    TaskStatus,
)
from tornado_queue.server.auth import describe
from tornado_queue.server.event_hub import KEEPALIVE_SECONDS, RETRY_MS
from tornado_queue.server.handlers.base import PROBLEM_TYPES, route_template
from tornado_queue.server.metrics import CONTENT_TYPE as PROMETHEUS_MEDIA_TYPE
from tornado_queue.server.metrics import EVENT_HELP
from tornado_queue.storage.base import EXPIRED_ERROR

Json = dict[str, Any]
Routes = Sequence[tuple[Any, ...]]
"""A route table: (pattern, handler class[, handler arguments]), as `app.ROUTES`."""

OPENAPI_VERSION = "3.1.0"
API_VERSION = "0.1.0"

PROBLEM_MEDIA_TYPE = "application/problem+json"
JSON_MEDIA_TYPE = "application/json"
EVENT_STREAM_MEDIA_TYPE = "text/event-stream"


def ref(kind: str, name: str) -> Json:
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> Json:
    return ref("schemas", name)


def nullable(schema: Json) -> Json:
    """A schema that also allows JSON null (OpenAPI 3.1 spells it as a type list)."""
    return {"anyOf": [schema, {"type": "null"}]}


# --- Schemas ------------------------------------------------------------------------------------

QUEUE_NAME_PATTERN = "^" + validation.QUEUE_NAME.pattern + "$"
HAPPENED = [happened.value for happened in Happened]
IDEMPOTENCY_KEY_PATTERN = "^" + validation.IDEMPOTENCY_KEY.pattern + "$"
WORKER_ID_PATTERN = f"^[\\x21-\\x7e]{{1,{limits.MAX_WORKER_ID_CHARS}}}$"
GROUP_PATTERN = "^" + validation.GROUP.pattern + "$"
TIMESTAMP: Json = {
    "type": "string",
    "format": "date-time",
    "description": "ISO-8601 in UTC, ending in `Z`.",
    "examples": ["2026-11-28T05:22:23.719141Z"],
}
LEASE_ID: Json = {
    "type": "string",
    "minLength": 1,
    "maxLength": limits.MAX_LEASE_ID_CHARS,
    "description": "The `lease_id` a dequeue returned; a command carrying an older one is "
    "refused with 409.",
}
PRIORITY: Json = {
    "type": "integer",
    "minimum": -limits.MAX_PRIORITY,
    "maximum": limits.MAX_PRIORITY,
    "description": "Higher is served first; FIFO within a priority. Written without a fraction "
    "(`5`, not `5.0`).",
}
NEW_TASK_PROPERTIES: Json = {
    "payload": {
        "type": "object",
        "description": "Any JSON object, nested at most "
        f"{codec.MAX_ENCODE_DEPTH} levels deep; stored and returned as given.",
        "examples": [{"job": "send_email", "to": "user@example.com"}],
    },
    "queue": schema_ref("QueueName"),
    "priority": {**PRIORITY, "default": 0},
    "delay": {
        "type": "number",
        "minimum": 0,
        "maximum": limits.MAX_DELAY_SECONDS,
        "default": 0,
        "description": "Seconds before the task is ready; until then it is `scheduled`.",
    },
    "max_attempts": nullable(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": limits.MAX_ATTEMPTS,
            "description": "Deliveries before the task is failed for good; null or absent: "
            "the queue's `max_attempts`, else the server's `--max-attempts` (default 3).",
        }
    ),
    "group": nullable(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_GROUP_CHARS,
            "pattern": GROUP_PATTERN,
            "description": f"1 to {MAX_GROUP_CHARS} characters, no control characters. Tasks "
            "of one queue with the same group are delivered one at a time, in the order they "
            "became ready; null or absent: no group.",
            "examples": ["order-7"],
        }
    ),
    "expires_in": nullable(
        {
            "type": "number",
            "minimum": MIN_EXPIRY_SECONDS,
            "maximum": MAX_EXPIRY_SECONDS,
            "description": "Seconds after enqueue (`expires_at`) past which the task is never "
            "delivered: it becomes `failed` as expired. Null or absent: the queue's "
            "`ttl_seconds`, else no expiry.",
        }
    ),
    "after": nullable(
        {
            "type": "array",
            "minItems": 1,
            "maxItems": limits.MAX_PARENTS,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1, "maxLength": 64},
            "description": f"1 to {limits.MAX_PARENTS} ids of tasks this one waits for: it is "
            "`waiting` until every one is `completed`, then `pending` (or `scheduled` for its "
            "`delay`). A parent that fails or is deleted fails it. In `POST /tasks/batch`, "
            '`"#0"`, `"#1"`, … name earlier items of the same batch. An unknown or failed '
            "parent is a 400.",
            "examples": [["1f0e4c52-5b7a-4d8e-9a43-0c6a4d1e2b11"]],
        }
    ),
}

SCHEDULE_PROPERTIES: Json = {
    "queue": schema_ref("QueueName"),
    "payload": NEW_TASK_PROPERTIES["payload"],
    "cron": nullable(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": limits.MAX_CRON_CHARS,
            "description": "A cron expression (`minute hour day month weekday`, or six fields "
            "with seconds first), read in `timezone`; null or absent with `every`.",
            "examples": ["*/5 * * * *"],
        }
    ),
    "every": nullable(
        {
            "type": "number",
            "minimum": limits.MIN_EVERY_SECONDS,
            "maximum": limits.MAX_EVERY_SECONDS,
            "description": "Seconds between runs, the first one interval after the PUT; null "
            "or absent with `cron`.",
        }
    ),
    "timezone": {
        "type": "string",
        "default": "UTC",
        "description": "An IANA timezone name the cron is read in.",
        "examples": ["Europe/Berlin"],
    },
    "priority": {**PRIORITY, "default": 0},
    "max_attempts": NEW_TASK_PROPERTIES["max_attempts"],
    "paused": {
        "type": "boolean",
        "default": False,
        "description": "A paused schedule never fires; a PUT with false resumes it from its "
        "next occurrence after now, with no catch-up.",
    },
}
"""The fields of a schedule a PUT gives (and a GET shows, with the rest)."""

STATS_STATES = ("pending", "processing", "completed", "failed", "scheduled", "waiting")


def counts_schema(description: str, extra: Json | None = None) -> Json:
    properties: Json = dict(extra or {})
    properties.update({state: {"type": "integer", "minimum": 0} for state in STATS_STATES})
    return {
        "type": "object",
        "description": description,
        "required": list(properties),
        "additionalProperties": False,
        "properties": properties,
    }


SETTING_SCHEMAS: Json = {
    "paused": {
        "type": ["boolean", "null"],
        "description": "While true the queue accepts tasks but delivers none: a dequeue "
        "answers as if it were empty; clearing it wakes parked consumers.",
    },
    "max_processing": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": MAX_PROCESSING,
        "description": "At most this many of the queue's tasks `processing` at once, across "
        "all servers: a dequeue beyond it answers as if the queue were empty, a batch dequeue "
        "gets at most the free slots.",
    },
    "rate_limit": {
        **nullable(schema_ref("RateLimit")),
        "description": "At most `tasks` deliveries in any window of `seconds`: beyond it a "
        "dequeue answers as if the queue were empty, and a long-poll gets the next task when "
        "the window allows.",
    },
    "lease_seconds": {
        "type": ["number", "null"],
        "minimum": MIN_LEASE_SECONDS,
        "maximum": MAX_LEASE_SECONDS,
        "description": "The lease of a dequeue, and the extension of a heartbeat, that names "
        "none (from the next dequeue on).",
    },
    "max_attempts": {
        "type": ["integer", "null"],
        "minimum": 1,
        "maximum": MAX_ATTEMPTS,
        "description": "The attempts of a task enqueued without `max_attempts` (tasks enqueued "
        "before keep theirs).",
    },
    "retry_backoff": {
        "type": ["number", "null"],
        "minimum": 0,
        "maximum": MAX_BACKOFF_SECONDS,
        "description": "The retry backoff base in seconds (doubled per attempt, capped at "
        f"{MAX_BACKOFF_SECONDS}) of tasks enqueued after it is set; tasks enqueued before keep "
        "theirs. Unset: the server's `--retry-backoff`.",
    },
    "dead_letter_queue": {
        "type": ["string", "null"],
        "pattern": QUEUE_NAME_PATTERN,
        "description": "Another queue (not this one: 400). A task of this queue that would "
        "become `failed` moves there instead, keeping its id and `error`, as `pending` with "
        "`attempts` 0 and `dead_lettered_from` set. An expired task is not moved.",
    },
    "ttl_seconds": {
        "type": ["number", "null"],
        "minimum": MIN_EXPIRY_SECONDS,
        "maximum": MAX_EXPIRY_SECONDS,
        "description": "The `expires_in` of tasks enqueued without one after it is set.",
    },
    "push": {
        **nullable(schema_ref("PushTarget")),
        "description": "While set, the servers POST each of the queue's tasks to its `url` as a "
        "signed webhook (Standard Webhooks) and consumers cannot dequeue from it (409). Its "
        "`secret` is shown only in the answer of the PATCH that turned push on.",
    },
}
"""Each queue setting's schema as a queue document shows it, in the order `QueueSettings.NAMES`
gives (and GET shows)."""

PATCH_SETTING_SCHEMAS: Json = {
    **SETTING_SCHEMAS,
    "push": {
        **nullable(schema_ref("PushTargetSettings")),
        "description": "Deliver the queue's tasks by POSTing each to `url` (the server must run "
        "with `--push-allow` listing its host, else 400); `null` turns push off and discards "
        "its secret. Setting it on a queue without push makes a secret, shown once in the "
        "answer; changing it keeps the secret.",
    },
}
"""The settings a PATCH gives: as shown, but `push` without what the server adds to it."""

PUSH_URL_PATTERN = "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#@\\s]+([/?][^#\\s]*)?$"
"""http or https, a host (no `user:password@`), no fragment."""
HTTP_TOKEN_PATTERN = f"^[!#$%&'*+.^_`|~0-9A-Za-z-]{{1,{limits.MAX_PUSH_HEADER_NAME_CHARS}}}$"
PUSH_SECRET: Json = {
    "type": "string",
    "pattern": "^whsec_[A-Za-z0-9+/]{32}$",
    "description": "`whsec_` and the base64 of 24 random bytes: the Standard Webhooks signing "
    "key (sign with its base64-decoded part after `whsec_`).",
    "examples": ["whsec_ZbjsKVyXWqOAcRtnSpsmWgDqLhYZ0t7l"],
}
PUSH_TIMEOUT: Json = {
    "type": "number",
    "minimum": limits.MIN_PUSH_TIMEOUT_SECONDS,
    "maximum": limits.MAX_PUSH_TIMEOUT_SECONDS,
    "description": "Seconds a push may take, connecting included; longer is a failed attempt "
    "(retried). The task's lease is this plus 5 s.",
}

SCHEMAS: Json = {
    "QueueName": {
        "type": "string",
        "pattern": QUEUE_NAME_PATTERN,
        "default": DEFAULT_QUEUE,
        "description": "1 to 64 characters from `A-Z a-z 0-9 _ . -`.",
        "examples": ["emails"],
    },
    "Task": {
        "type": "object",
        "description": "A task as the server keeps it.",
        "required": [
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
            "progress",
            "error",
            "group",
            "expires_at",
            "dead_lettered_from",
            "after",
            "dependents",
            "schedule",
            "fire_time",
            "history",
        ],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "queue": schema_ref("QueueName"),
            "payload": {"type": "object"},
            "status": {
                "type": "string",
                "enum": [status.value for status in TaskStatus],
                "description": "`pending` (ready) → `processing` (leased) → `completed` or "
                "`failed`; `scheduled` is not ready yet (a delay or a retry backoff); "
                "`waiting` waits for the tasks in its `after` to complete. A task "
                "of a queue with a `dead_letter_queue` moves there as `pending` instead of "
                "becoming `failed`; a task is never delivered after its `expires_at`: it becomes "
                "`failed`.",
            },
            "priority": PRIORITY,
            "attempts": {"type": "integer", "minimum": 0},
            "max_attempts": {
                "type": "integer",
                "minimum": 1,
                "maximum": limits.MAX_ATTEMPTS,
            },
            "created_at": TIMESTAMP,
            "available_at": TIMESTAMP,
            "lease_id": nullable({"type": "string"}),
            "lease_expires_at": nullable(TIMESTAMP),
            "started_at": nullable(TIMESTAMP),
            "finished_at": nullable(TIMESTAMP),
            "result": {"description": "Any JSON value given on completion, else null."},
            "progress": {
                "description": "The last JSON value a worker reported with `PUT "
                "/tasks/{id}/progress` (at most "
                f"{limits.MAX_PROGRESS_BYTES} bytes), else null. Kept through redeliveries, "
                "dead-lettering and after the task finishes; an operator's retry clears it."
            },
            "error": nullable(
                {
                    "type": "string",
                    "description": "What the last `fail` said; `lease expired` when the last "
                    f"lease ran out; `{EXPIRED_ERROR}` for an expired task.",
                }
            ),
            "group": nullable(
                {
                    "type": "string",
                    "description": "Its ordering group: tasks of one queue with the same "
                    "group are delivered one at a time.",
                }
            ),
            "expires_at": nullable(
                {
                    **TIMESTAMP,
                    "description": "After this the task is never delivered (`created_at` + "
                    "`expires_in`, or the queue's `ttl_seconds`); an operator's retry clears "
                    "it.",
                }
            ),
            "dead_lettered_from": nullable(
                {
                    "type": "string",
                    "pattern": QUEUE_NAME_PATTERN,
                    "description": "The queue whose dead-letter queue this task was moved to, "
                    "when it failed there for good.",
                }
            ),
            "after": nullable(
                {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "The tasks it was enqueued to wait for (`after`), as ids.",
                }
            ),
            "dependents": nullable(
                {
                    "type": "array",
                    "items": {"type": "string"},
                    "maxItems": limits.MAX_DEPENDENTS,
                    "description": "The tasks enqueued to wait for this one, oldest first (some "
                    "may since be gone).",
                }
            ),
            "schedule": nullable(
                {
                    "type": "string",
                    "pattern": QUEUE_NAME_PATTERN,
                    "description": "The schedule that enqueued this task; null for others.",
                }
            ),
            "fire_time": nullable(
                {
                    **TIMESTAMP,
                    "description": "The occurrence of its schedule this task stands for (at "
                    "most one task per schedule and fire time); null for others.",
                }
            ),
            "history": {
                "type": "array",
                "minItems": 1,
                "maxItems": HISTORY_LENGTH,
                "items": schema_ref("HistoryEntry"),
                "description": f"Its last {HISTORY_LENGTH} changes, oldest first (the "
                "first is its enqueue until more than that have happened).",
            },
        },
    },
    "HistoryEntry": {
        "type": "object",
        "description": "One change in a task's life; `lease_id`, `worker` and `error` are "
        "there only where they apply.",
        "required": ["at", "event"],
        "additionalProperties": False,
        "properties": {
            "at": TIMESTAMP,
            "event": {
                "type": "string",
                "enum": HAPPENED,
                "description": "What happened (docs/api.md, History, says when each is recorded).",
            },
            "lease_id": {
                "type": "string",
                "description": "The lease given (`delivered`) or ended by it.",
            },
            "worker": {
                "type": "string",
                "description": "The `X-Worker-Id` of the consumer it was delivered to.",
            },
            "error": {"type": "string", "description": "The error it recorded."},
        },
    },
    "StreamEvent": {
        "type": "object",
        "description": "One event of `GET /events`, as an SSE client reads it: `event` is "
        "what happened (a history event name, or `resync`), `data` one line of JSON, `id` "
        "what to send back as `Last-Event-ID` (a `resync` has none).",
        "required": ["event", "data"],
        "properties": {
            "id": {"type": "string", "minLength": 1, "maxLength": 128},
            "event": {
                "type": "string",
                "enum": [*(happened.value for happened in Happened), "resync"],
            },
            "data": {
                "type": "string",
                "contentMediaType": JSON_MEDIA_TYPE,
                "contentSchema": {"anyOf": [schema_ref("StreamEventData"), schema_ref("Resync")]},
            },
            "retry": {"type": "integer", "const": RETRY_MS},
        },
    },
    "StreamEventData": {
        "type": "object",
        "description": "The task a change was made to, as it is after the change, and what "
        "changed where it applies.",
        "required": ["id", "queue", "status", "at", "attempts"],
        "additionalProperties": False,
        "properties": {
            "id": {"type": "string"},
            "queue": schema_ref("QueueName"),
            "status": {"type": "string", "enum": [status.value for status in TaskStatus]},
            "at": TIMESTAMP,
            "attempts": {"type": "integer", "minimum": 0},
            "lease_id": {"type": "string"},
            "worker": {"type": "string"},
            "error": {"type": "string"},
        },
    },
    "Resync": {
        "type": "object",
        "description": "The events after `Last-Event-ID` cannot be replayed: read the state "
        "afresh; the live events follow.",
        "required": ["reason"],
        "additionalProperties": False,
        "properties": {"reason": {"type": "string"}},
    },
    "Worker": {
        "type": "object",
        "description": "A consumer that names itself with `X-Worker-Id`.",
        "required": ["id", "last_seen", "tasks", "completed", "failed"],
        "additionalProperties": False,
        "properties": {
            "id": {
                "type": "string",
                "pattern": WORKER_ID_PATTERN,
                "description": "Its `X-Worker-Id`.",
            },
            "last_seen": {
                **TIMESTAMP,
                "description": "When it last dequeued (a task or nothing) or sent a command "
                "on a lease.",
            },
            "tasks": {
                "type": "array",
                "items": {"type": "string"},
                "description": "The tasks delivered to it that are still `processing` under "
                "that delivery.",
            },
            "completed": {
                "type": "integer",
                "minimum": 0,
                "description": "Tasks it completed.",
            },
            "failed": {
                "type": "integer",
                "minimum": 0,
                "description": "Attempts it failed (a retry following or not).",
            },
        },
    },
    "ReplayedId": {
        "type": "object",
        "description": "An idempotent replay whose task has since been deleted or forgotten.",
        "required": ["id"],
        "additionalProperties": False,
        "properties": {"id": {"type": "string"}},
    },
    "NewTask": {
        "type": "object",
        "required": ["payload"],
        "additionalProperties": False,
        "properties": NEW_TASK_PROPERTIES,
    },
    "NewTaskBatch": {
        "type": "object",
        "description": "All or nothing: one bad item refuses the batch with a 400 naming "
        "`tasks[i]`.",
        "required": ["tasks"],
        "additionalProperties": False,
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.MAX_BATCH,
                "items": {
                    "type": "object",
                    "required": ["payload"],
                    "additionalProperties": False,
                    "properties": {
                        **NEW_TASK_PROPERTIES,
                        "idempotency_key": {
                            "type": "string",
                            "pattern": IDEMPOTENCY_KEY_PATTERN,
                            "description": "As the `Idempotency-Key` header of `POST /tasks`, "
                            "for this item.",
                        },
                    },
                },
            }
        },
    },
    "TaskIds": {
        "type": "object",
        "required": ["ids"],
        "additionalProperties": False,
        "properties": {
            "ids": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.MAX_BATCH,
                "items": {"type": "string"},
                "description": "One id per item, in the order given.",
            }
        },
    },
    "TaskList": {
        "type": "object",
        "required": ["tasks"],
        "additionalProperties": False,
        "properties": {
            "tasks": {
                "type": "array",
                "maxItems": limits.MAX_BATCH,
                "items": schema_ref("Task"),
            }
        },
    },
    "Completion": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "result": {"description": "Any JSON value, stored on the task."},
            "lease_id": nullable(LEASE_ID),
        },
    },
    "Failure": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "error": nullable({"type": "string", "maxLength": limits.MAX_ERROR_CHARS}),
            "retry": {
                "type": "boolean",
                "default": True,
                "description": "false: failed for good now, whatever attempts are left.",
            },
            "lease_id": nullable(LEASE_ID),
        },
    },
    "Heartbeat": {
        "type": "object",
        "additionalProperties": False,
        "properties": {"lease_id": nullable(LEASE_ID)},
    },
    "Progress": {
        "type": "object",
        "required": ["progress"],
        "additionalProperties": False,
        "properties": {
            "progress": {
                "description": f"Any JSON value, at most {limits.MAX_PROGRESS_BYTES} bytes "
                "as JSON: replaces the task's `progress`."
            },
            "lease_id": nullable(LEASE_ID),
        },
    },
    "CompletionBatch": {
        "type": "object",
        "required": ["tasks"],
        "additionalProperties": False,
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.MAX_BATCH,
                "items": {
                    "type": "object",
                    "required": ["id"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "minLength": 1},
                        "lease_id": nullable(LEASE_ID),
                        "result": {"description": "Any JSON value, stored on the task."},
                    },
                },
            }
        },
    },
    "CompletionResults": {
        "type": "object",
        "required": ["results"],
        "additionalProperties": False,
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "status"],
                    "additionalProperties": False,
                    "properties": {
                        "id": {"type": "string", "description": "At most 100 characters."},
                        "status": {
                            "type": "integer",
                            "enum": [200, 404, 409],
                            "description": "As the single `PUT /tasks/{id}/complete` would answer.",
                        },
                        "detail": {"type": "string", "description": "Why, when not 200."},
                    },
                },
            }
        },
    },
    "Counts": counts_schema("How many tasks are in each state."),
    "QueueCounts": counts_schema("One queue and its counts.", {"name": schema_ref("QueueName")}),
    "Totals": {
        "type": "object",
        "description": "Events since the store began.",
        "required": [event.value for event in Event],
        "additionalProperties": False,
        "properties": {
            event.value: {"type": "integer", "minimum": 0, "description": EVENT_HELP[event]}
            for event in Event
        },
    },
    "RateLimit": {
        "type": "object",
        "description": "At most `tasks` deliveries (first deliveries and redeliveries) in any "
        "window of `seconds` (a sliding window), across all servers.",
        "required": ["tasks", "seconds"],
        "additionalProperties": False,
        "properties": {
            "tasks": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_RATE_TASKS,
                "description": "Written without a fraction (`10`, not `10.0`).",
            },
            "seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_RATE_SECONDS},
        },
        "examples": [{"tasks": 10, "seconds": 1}],
    },
    "QueueSettings": {
        "type": "object",
        "description": "A queue's settings, every one in this order; `null` where unset (the "
        "server's default applies).",
        "required": list(QueueSettings.NAMES),
        "additionalProperties": False,
        "properties": SETTING_SCHEMAS,
    },
    "QueueSettingsPatch": {
        "type": "object",
        "description": "Settings to set; `null` clears one. Unknown names or bad values are "
        "400 and change nothing.",
        "additionalProperties": False,
        "properties": PATCH_SETTING_SCHEMAS,
        "examples": [{"max_processing": 20, "rate_limit": {"tasks": 10, "seconds": 1}}],
    },
    "PushTargetSettings": {
        "type": "object",
        "description": "Where to push the queue's tasks. Every refusal is a 400 naming the "
        "field (`setting 'push.timeout_seconds' must be …`); a URL whose host `--push-allow` "
        "does not list is a 400 too.",
        "required": ["url"],
        "additionalProperties": False,
        "properties": {
            "url": {
                "type": "string",
                "minLength": 1,
                "maxLength": limits.MAX_PUSH_URL_CHARS,
                "pattern": PUSH_URL_PATTERN,
                "description": "An `http` or `https` URL with a host that `--push-allow` "
                "lists, no `user:password@` and no fragment. Redirects are never followed.",
                "examples": ["https://receiver.internal/tasks"],
            },
            "timeout_seconds": {
                **PUSH_TIMEOUT,
                "type": ["number", "null"],
                "default": 30,
                "description": PUSH_TIMEOUT["description"] + " `null`: the default, 30.",
            },
            "headers": {
                "type": ["object", "null"],
                "maxProperties": limits.MAX_PUSH_HEADERS,
                "propertyNames": {"pattern": HTTP_TOKEN_PATTERN},
                "additionalProperties": {
                    "type": "string",
                    "maxLength": limits.MAX_PUSH_HEADER_VALUE_CHARS,
                    "pattern": "^[ -~]*$",
                },
                "description": f"At most {limits.MAX_PUSH_HEADERS} headers sent with every push: "
                f"names are HTTP tokens of at most {limits.MAX_PUSH_HEADER_NAME_CHARS} characters, "
                "values visible ASCII or spaces, at most "
                f"{limits.MAX_PUSH_HEADER_VALUE_CHARS}; `null`: none. These names are refused, in "
                "any case: "
                + ", ".join(f"`{name}`" for name in limits.PUSH_RESERVED_HEADERS)
                + ".",
                "examples": [{"Authorization": "Bearer receiver-token"}],
            },
        },
    },
    "PushTarget": {
        "type": "object",
        "description": "A queue's push target as the server shows it: never a secret, except "
        "`secret` in the answer of the PATCH that turned push on.",
        "required": ["url", "timeout_seconds", "headers", "secret_rotated_at"],
        "additionalProperties": False,
        "properties": {
            "url": {"type": "string"},
            "timeout_seconds": PUSH_TIMEOUT,
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "The headers sent with every push.",
            },
            "secret_rotated_at": nullable(
                {**TIMESTAMP, "description": "When the secret was last rotated."}
            ),
            "secret": {
                **PUSH_SECRET,
                "description": "Present only in the answer of the PATCH that turned push on "
                "(push was null before): keep it, it is never shown again. "
                + PUSH_SECRET["description"],
            },
        },
    },
    "PushStatus": {
        "type": "object",
        "description": "This server's pushes of the queue since it started (each server "
        "counts its own).",
        "required": [
            "in_flight",
            "pushed",
            "failed",
            "last_success_at",
            "last_error",
            "last_error_at",
        ],
        "additionalProperties": False,
        "properties": {
            "in_flight": {
                "type": "integer",
                "minimum": 0,
                "description": "Pushes waiting for their answer now.",
            },
            "pushed": {
                "type": "integer",
                "minimum": 0,
                "description": "Pushes answered with a 2xx: the task completed.",
            },
            "failed": {
                "type": "integer",
                "minimum": 0,
                "description": "Pushes that failed (retried or not).",
            },
            "last_success_at": nullable(TIMESTAMP),
            "last_error": nullable(
                {"type": "string", "description": "The error of the last failed push."}
            ),
            "last_error_at": nullable(TIMESTAMP),
        },
    },
    "PushSecret": {
        "type": "object",
        "description": "The new signing secret; pushes carry both signatures, the new one "
        "first, until `previous_secret_valid_until`.",
        "required": ["secret", "previous_secret_valid_until"],
        "additionalProperties": False,
        "properties": {
            "secret": PUSH_SECRET,
            "previous_secret_valid_until": {
                **TIMESTAMP,
                "description": f"{limits.PUSH_ROTATION_OVERLAP_SECONDS // 3600} h after the "
                "rotation: until then pushes are signed with the previous secret too.",
            },
        },
    },
    "Queue": {
        **counts_schema(
            "One queue: its counts, its settings and (for a push queue) this server's pushes.",
            {
                "name": schema_ref("QueueName"),
                "settings": schema_ref("QueueSettings"),
                "push_status": {
                    **nullable(schema_ref("PushStatus")),
                    "description": "Null when the queue has no `push` setting.",
                },
            },
        ),
    },
    "ScheduleDefinition": {
        "type": "object",
        "description": "A schedule: exactly one of `cron` and `every`. Unknown fields or bad "
        "values are 400 naming the field, and change nothing.",
        "required": ["queue", "payload"],
        "additionalProperties": False,
        "properties": SCHEDULE_PROPERTIES,
        "examples": [
            {
                "queue": "reports",
                "payload": {"report": "daily"},
                "cron": "0 6 * * *",
                "timezone": "Europe/Berlin",
            },
            {"queue": "pings", "payload": {}, "every": 60},
        ],
    },
    "Schedule": {
        "type": "object",
        "description": "A schedule as stored, with its name and runs.",
        "required": ["name", *SCHEDULE_PROPERTIES, "next_run_at", "last_run_at"],
        "additionalProperties": False,
        "properties": {
            "name": schema_ref("QueueName"),
            **SCHEDULE_PROPERTIES,
            "next_run_at": nullable(
                {
                    **TIMESTAMP,
                    "description": "The occurrence fired next; null while paused.",
                }
            ),
            "last_run_at": nullable(
                {
                    **TIMESTAMP,
                    "description": "The fire time of the last task it enqueued; null before "
                    "the first.",
                }
            ),
        },
    },
    "Retried": {
        "type": "object",
        "description": "How many failed tasks went back to `pending`.",
        "required": ["retried"],
        "additionalProperties": False,
        "properties": {"retried": {"type": "integer", "minimum": 0}},
    },
    "Purged": {
        "type": "object",
        "description": "How many tasks were deleted.",
        "required": ["deleted"],
        "additionalProperties": False,
        "properties": {"deleted": {"type": "integer", "minimum": 0}},
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "additionalProperties": False,
        "properties": {"status": {"const": "ok"}},
    },
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details; `detail` names what was wrong.",
        "required": ["type", "title", "status", "detail"],
        "additionalProperties": False,
        "properties": {
            "type": {
                "type": "string",
                "enum": ["about:blank", *PROBLEM_TYPES.values()],
                "description": "`about:blank` (the status says it all), or for a 503: "
                f"`{PROBLEM_TYPES['store-unavailable']}` (nothing was changed; try again) or "
                f"`{PROBLEM_TYPES['outcome-unknown']}` (the store failed mid-operation: it "
                "may have been applied; `detail` says how to retry safely).",
            },
            "title": {"type": "string", "description": "The status's reason phrase."},
            "status": {"type": "integer", "minimum": 400, "maximum": 599},
            "detail": {"type": "string", "minLength": 1},
        },
    },
}

# --- Parameters and headers -----------------------------------------------------------------


def query(name: str, schema: Json, description: str) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PARAMETERS: Json = {
    "TaskId": {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "minLength": 1},
        "description": "A task id (the server makes UUIDs); an unknown or malformed one is 404.",
    },
    "QueueNamePath": {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": schema_ref("QueueName"),
        "description": "The queue; a name that is not a queue name is 400.",
    },
    "ScheduleNamePath": {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": schema_ref("QueueName"),
        "description": "The schedule: a name by the rules of a queue name (else 400).",
    },
    "Queue": query(
        "queue",
        schema_ref("QueueName"),
        f"The queue; absent means `{DEFAULT_QUEUE}`.",
    ),
    "QueueOrAll": query(
        "queue",
        {"type": "string", "pattern": QUEUE_NAME_PATTERN},
        "One queue; absent means the sum over every queue.",
    ),
    "Lease": query(
        "lease",
        {"type": "number", "minimum": MIN_LEASE_SECONDS, "maximum": MAX_LEASE_SECONDS},
        "Lease length in seconds, written in plain ASCII digits with optional decimals and "
        "exponent (`30`, `2.5`, `1e3`); absent means the server's `--lease-seconds` (default 30).",
    ),
    "Wait": query(
        "wait",
        {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
        "Long-poll: seconds to wait for a task when none is ready, written in plain ASCII "
        "digits with optional decimals and exponent (`0`, `2.5`, `1e-05`).",
    ),
    "ResultWait": query(
        "wait",
        {"type": "number", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
        "Seconds to wait for the task to become `completed` or `failed`, written as the "
        "dequeue's `wait` (`0`, `2.5`, `1e-05`). 0 or absent: answer at once.",
    ),
    "LeaseIdQuery": query(
        "lease_id", LEASE_ID, "The lease being acted on; if the body has one too they must match."
    ),
    "Limit": query(
        "limit",
        {"type": "integer", "minimum": 0, "maximum": VIEW_MAX_LIMIT, "default": VIEW_DEFAULT_LIMIT},
        "Page size (plain digits).",
    ),
    "Offset": query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": VIEW_MAX_OFFSET, "default": 0},
        "Tasks to skip (plain digits).",
    ),
    "Count": query(
        "count",
        {"type": "integer", "minimum": 1, "maximum": limits.MAX_BATCH, "default": 1},
        "Most tasks to lease (plain digits).",
    ),
    "ViewStatus": query(
        "status",
        {
            "type": "string",
            "enum": [status.value for status in LISTED],
            "default": TaskStatus.PENDING.value,
        },
        "Which tasks: `pending` in dequeue order (those waiting behind their group's head "
        "after the deliverable ones); the other states most recent first, by when they "
        "entered it.",
    ),
    "PurgeStatus": {
        "name": "status",
        "in": "query",
        "required": True,
        "schema": {"type": "string", "enum": [status.value for status in PURGEABLE]},
        "description": "Which tasks to delete; `processing` tasks are never purged (400).",
    },
    "RequestId": {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "Echoed in the answer and the access log when it is 1-128 visible ASCII "
        "characters; otherwise a fresh id is used.",
    },
    "WorkerId": {
        "name": "X-Worker-Id",
        "in": "header",
        "required": False,
        "schema": {
            "type": "string",
            "minLength": 1,
            "maxLength": limits.MAX_WORKER_ID_CHARS,
            "pattern": WORKER_ID_PATTERN,
        },
        "description": f"The consumer's name for itself: 1 to {limits.MAX_WORKER_ID_CHARS} "
        "visible ASCII characters (`\\x21`-`\\x7e`), given once, else 400 and nothing "
        "changes. Recorded with each delivery in the task's history; `GET /workers` lists it.",
        "examples": {"runner": {"value": "build-3/4127/0"}},
    },
    "EventsQueue": query(
        "queue",
        {"type": "string", "pattern": QUEUE_NAME_PATTERN},
        "Only this queue's events; absent means every queue's.",
    ),
    "LastEventId": {
        "name": "Last-Event-ID",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 128},
        "description": "The id of the last event the client saw (an EventSource sends it "
        "when it reconnects): the stream starts with the events after it, or with a `resync` "
        "event when they are no longer kept. Empty or absent: live only.",
    },
    "LastEventIdQuery": query(
        "last_event_id",
        {"type": "string", "maxLength": 128},
        "As `Last-Event-ID`, for a client that cannot set headers; the header wins.",
    ),
    "IdempotencyKey": {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
        "description": "The same key with the same body returns the first task (200) and creates "
        "nothing; with another body, 422. Given at most once.",
    },
}

HEADERS: Json = {
    "X-Request-ID": {
        "description": "The client's request id, or a fresh one.",
        "schema": {"type": "string"},
    },
    "X-Total-Count": {
        "description": "How many tasks the queue has in the listed state, over all pages.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Location": {"description": "The task's URL.", "schema": {"type": "string"}},
    "Allow": {"description": "The methods this route answers.", "schema": {"type": "string"}},
    "WWW-Authenticate": {
        "description": 'The challenge: `Bearer realm="tornado_queue"`, with '
        '`error="invalid_token"` for an unknown token or `error="insufficient_scope"` on 403.',
        "schema": {"type": "string"},
    },
}

REQUEST_ID_HEADER = {"X-Request-ID": ref("headers", "X-Request-ID")}

# --- Responses --------------------------------------------------------------------------------

PROBLEMS: dict[int, tuple[str, str]] = {
    400: ("BadRequest", "A malformed request: a bad query parameter, body, field or header."),
    401: (
        "Unauthorized",
        "Auth is on and the request has no bearer token, or one the server does not know.",
    ),
    403: ("Forbidden", "The token's role may not call this operation (see its description)."),
    404: ("NotFound", "No such task or schedule (or nothing to dequeue)."),
    405: ("MethodNotAllowed", "The route does not answer this method; see `Allow`."),
    409: (
        "Conflict",
        "The task is not in a state that allows this, the lease was lost, the store holds "
        "the most schedules it keeps, the queue is a push queue (a dequeue), or it has no push "
        "setting (a secret rotation).",
    ),
    413: ("ContentTooLarge", "The body is over `--max-body-bytes` (default 1 MiB)."),
    415: ("UnsupportedMediaType", "A body declared as other than JSON, or compressed."),
    422: ("UnprocessableContent", "The Idempotency-Key was used with a different request."),
    429: (
        "TooManyRequests",
        "Over `--rate-limit` for this token (or address, with auth off): nothing was done; try "
        "again after `Retry-After` seconds.",
    ),
    503: (
        "ServiceUnavailable",
        "The store is not answering (its disk or server fails), or an enqueue would pass "
        "`--max-pending`, `--max-tasks` or `--max-queues`, or (long-poll) `--max-waiters` "
        f"consumers already wait, or (`GET /events`) {limits.MAX_EVENT_CLIENTS} streams are "
        "open: nothing was changed; try again after `Retry-After` seconds. "
        "Only a problem of type `urn:tornado-queue:problem:outcome-unknown` may have been "
        "applied (the store failed mid-operation; fenced commands and keyed enqueues are "
        "re-applied by the server first, so they get it only when the store stays down).",
    ),
}


def problem_response(status: int) -> Json:
    description = PROBLEMS[status][1]
    headers = dict(REQUEST_ID_HEADER)
    if status == 405:
        headers["Allow"] = ref("headers", "Allow")
    if status in (401, 403):
        headers["WWW-Authenticate"] = ref("headers", "WWW-Authenticate")
    if status in (429, 503):
        headers["Retry-After"] = {
            "description": "Seconds to wait before trying again.",
            "schema": {"type": "integer", "minimum": 0},
        }
    # A plain reference, so client generators read every error as one Problem type; the
    # response's own status code already says which status the body carries.
    return {
        "description": description,
        "headers": headers,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": schema_ref("Problem")}},
    }


def head_problem(status: int) -> Json:
    """A problem response to HEAD: the same headers, no body (so written out, not a `$ref`)."""
    response = problem_response(status)
    del response["content"]
    return response


RESPONSES: Json = {PROBLEMS[status][0]: problem_response(status) for status in PROBLEMS}


def problem_ref(status: int) -> Json:
    return ref("responses", PROBLEMS[status][0])


def problems(*statuses: int) -> Json:
    return {str(status): problem_ref(status) for status in statuses}


def json_response(
    description: str, schema: Json, headers: Json | None = None, links: tuple[str, ...] = ()
) -> Json:
    response = {
        "description": description,
        "headers": {**REQUEST_ID_HEADER, **(headers or {})},
        "content": {JSON_MEDIA_TYPE: {"schema": schema}},
    }
    if links:
        response["links"] = {name: ref("links", name) for name in links}
    return response


def task_link(operation_id: str, description: str, *, with_lease: bool = False) -> Json:
    """A link from an answer holding a task to a command on that task (and its lease)."""
    parameters = {"path.id": "$response.body#/id"}
    if with_lease:
        parameters["query.lease_id"] = "$response.body#/lease_id"
    return {"operationId": operation_id, "parameters": parameters, "description": description}


# How the answers lead to the next call: they show the workflow in the docs and let
# schemathesis's stateful runs chain enqueue → dequeue → complete/fail/heartbeat → retry.
LINKS: Json = {
    "GetTask": task_link("getTask", "Read this task."),
    "DeleteTask": task_link("deleteTask", "Remove this task."),
    "RetryTask": task_link("retryTask", "Put this task back in its queue (once failed)."),
    "CompleteLeasedTask": task_link("completeTask", "Finish this lease.", with_lease=True),
    "FailLeasedTask": task_link("failTask", "Report this lease failed.", with_lease=True),
    "HeartbeatLeasedTask": task_link("heartbeatTask", "Extend this lease.", with_lease=True),
    "DequeueFromItsQueue": {
        "operationId": "dequeueTask",
        "parameters": {"query.queue": "$response.body#/queue"},
        "description": "Lease the next ready task of this task's queue.",
    },
}
LEASED_TASK_LINKS = ("CompleteLeasedTask", "FailLeasedTask", "HeartbeatLeasedTask", "GetTask")


def json_body(schema_name: str, *, required: bool) -> Json:
    return {"required": required, "content": {JSON_MEDIA_TYPE: {"schema": schema_ref(schema_name)}}}


# A body route also refuses an oversized body (413) and one that is not JSON (415).
BODY_PROBLEMS = (413, 415)


def operation(
    operation_id: str,
    summary: str,
    tag: str,
    responses: Json,
    *,
    parameters: tuple[str, ...] = (),
    body: Json | None = None,
    description: str | None = None,
) -> Json:
    document: Json = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "parameters": [ref("parameters", name) for name in (*parameters, "RequestId")],
        "responses": responses,
    }
    if description:
        document["description"] = description
    if body is not None:
        document["requestBody"] = body
    return document


def with_head(get: Json) -> Json:
    """`GET` and the `HEAD` the same handler answers: same status and headers, no body."""
    head = copy.deepcopy(get)
    head["operationId"] = get["operationId"] + "Head"
    head["summary"] = "Headers of: " + get["summary"]
    head.pop("description", None)
    for status, response in list(head["responses"].items()):
        if "$ref" in response:  # a shared problem response has a body; HEAD gets the headers
            head["responses"][status] = head_problem(int(status))
            continue
        response.pop("content", None)
        response.pop("links", None)
    return {"get": get, "head": head}


TASK = schema_ref("Task")
LOCATION = {"Location": ref("headers", "Location")}


def _paths() -> Json:
    return {
        "/tasks": {
            "post": operation(
                "enqueueTask",
                "Enqueue a task",
                "tasks",
                {
                    "201": json_response(
                        "Created.",
                        TASK,
                        LOCATION,
                        ("GetTask", "DeleteTask", "RetryTask", "DequeueFromItsQueue"),
                    ),
                    "200": json_response(
                        "An idempotent replay: the first task, nothing created.",
                        {"oneOf": [TASK, schema_ref("ReplayedId")]},
                        LOCATION,
                    ),
                    **problems(400, *BODY_PROBLEMS, 422),
                },
                parameters=("IdempotencyKey",),
                body=json_body("NewTask", required=True),
            )
        },
        "/tasks/batch": {
            "post": operation(
                "enqueueTasks",
                "Enqueue up to 1000 tasks, all or nothing",
                "tasks",
                {
                    "201": json_response("Created.", schema_ref("TaskIds")),
                    "200": json_response(
                        "Every item was an idempotent replay.", schema_ref("TaskIds")
                    ),
                    **problems(400, *BODY_PROBLEMS, 422),
                },
                body=json_body("NewTaskBatch", required=True),
                description="The `Idempotency-Key` header is refused here (400): give each item "
                "its own `idempotency_key`.",
            )
        },
        "/tasks/dequeue": {
            "post": operation(
                "dequeueTask",
                "Lease the next ready task",
                "consumers",
                {
                    "200": json_response(
                        "The task, now `processing`.", TASK, links=LEASED_TASK_LINKS
                    ),
                    **problems(400, 404, 409, *BODY_PROBLEMS),
                },
                parameters=("Queue", "Wait", "Lease", "WorkerId"),
                description="Highest priority first, FIFO within a priority; a group's next "
                "task only once the one before is done. A paused queue, one at its "
                "`max_processing` or over its `rate_limit`, answers as if it were empty. With "
                "`wait`, the request is answered the moment a task is ready, else 404 when the "
                "wait ends. A push queue (one with a `push` setting) answers 409: the servers "
                "deliver its tasks themselves.",
            )
        },
        "/tasks/dequeue/batch": {
            "post": operation(
                "dequeueTasks",
                "Lease up to `count` ready tasks",
                "consumers",
                {
                    "200": json_response(
                        "The tasks, now `processing`; an empty list when none came in time.",
                        schema_ref("TaskList"),
                    ),
                    **problems(400, 409, *BODY_PROBLEMS),
                },
                parameters=("Count", "Queue", "Wait", "Lease", "WorkerId"),
                description="A push queue (one with a `push` setting) answers 409: the servers "
                "deliver its tasks themselves.",
            )
        },
        "/tasks/complete/batch": {
            "post": operation(
                "completeTasks",
                "Complete many tasks, each judged on its own",
                "consumers",
                {
                    "200": json_response(
                        "One result per item, in order.", schema_ref("CompletionResults")
                    ),
                    **problems(400, *BODY_PROBLEMS),
                },
                parameters=("WorkerId",),
                body=json_body("CompletionBatch", required=True),
            )
        },
        "/tasks/{id}": {
            **with_head(
                operation(
                    "getTask",
                    "Read one task, or wait for it to finish",
                    "tasks",
                    {"200": json_response("The task.", TASK), **problems(400, 404, 503)},
                    parameters=("TaskId", "ResultWait"),
                    description="With `wait`, a task not yet `completed` or `failed` is "
                    "answered the moment it becomes so (wherever it is finished, on any "
                    "server sharing the store), or as it is when the wait ends; a task "
                    "deleted meanwhile is 404 at that moment. Past `--max-waiters` parked "
                    "result waits: 503 with `Retry-After`.",
                )
            ),
            "delete": operation(
                "deleteTask",
                "Remove a task that is not processing",
                "tasks",
                {
                    "204": {"description": "Removed.", "headers": REQUEST_ID_HEADER},
                    **problems(404, 409),
                },
                parameters=("TaskId",),
            ),
        },
        "/tasks/{id}/complete": {
            "put": operation(
                "completeTask",
                "Finish a processing task",
                "consumers",
                {
                    "200": json_response(
                        "The task, now `completed`.", TASK, links=("GetTask", "DeleteTask")
                    ),
                    **problems(400, 404, 409, *BODY_PROBLEMS),
                },
                parameters=("TaskId", "LeaseIdQuery", "WorkerId"),
                body=json_body("Completion", required=False),
            )
        },
        "/tasks/{id}/fail": {
            "put": operation(
                "failTask",
                "Record a failed attempt",
                "consumers",
                {
                    "200": json_response(
                        "The task: `scheduled` (or `pending`) for a retry after a backoff, or "
                        "`failed` when attempts are used up or `retry` is false (`pending` in "
                        "its queue's `dead_letter_queue` instead, if it has one), or `failed` "
                        "as expired when past its `expires_at`.",
                        TASK,
                        links=("RetryTask", "DeleteTask", "GetTask", "DequeueFromItsQueue"),
                    ),
                    **problems(400, 404, 409, *BODY_PROBLEMS),
                },
                parameters=("TaskId", "LeaseIdQuery", "WorkerId"),
                body=json_body("Failure", required=False),
            )
        },
        "/tasks/{id}/heartbeat": {
            "put": operation(
                "heartbeatTask",
                "Extend a processing task's lease from now",
                "consumers",
                {
                    "200": json_response(
                        "The task with its new `lease_expires_at`.", TASK, links=LEASED_TASK_LINKS
                    ),
                    **problems(400, 404, 409, *BODY_PROBLEMS),
                },
                parameters=("TaskId", "Lease", "LeaseIdQuery", "WorkerId"),
                body=json_body("Heartbeat", required=False),
            )
        },
        "/tasks/{id}/progress": {
            "put": operation(
                "reportProgress",
                "Record a processing task's progress",
                "consumers",
                {
                    "200": json_response(
                        "The task with its new `progress`; its lease is unchanged.",
                        TASK,
                        links=LEASED_TASK_LINKS,
                    ),
                    **problems(400, 404, 409, *BODY_PROBLEMS),
                },
                parameters=("TaskId", "LeaseIdQuery", "WorkerId"),
                body=json_body("Progress", required=True),
                description="Fenced as a heartbeat: the task must be `processing`, under "
                "`lease_id` when one is given (else 409). It does not extend the lease.",
            )
        },
        "/tasks/{id}/retry": {
            "post": operation(
                "retryTask",
                "Put a failed task back in its queue with fresh attempts",
                "tasks",
                {
                    "200": json_response(
                        "The task, now `pending`, its `expires_at` cleared.",
                        TASK,
                        links=("DequeueFromItsQueue",),
                    ),
                    **problems(404, 409, *BODY_PROBLEMS),
                },
                parameters=("TaskId",),
            )
        },
        "/queue/view": with_head(
            operation(
                "viewQueue",
                "List one queue's tasks in a state, paged",
                "queues",
                {
                    "200": json_response(
                        "The page of tasks.",
                        {"type": "array", "maxItems": VIEW_MAX_LIMIT, "items": TASK},
                        {"X-Total-Count": ref("headers", "X-Total-Count")},
                    ),
                    **problems(400),
                },
                parameters=("Queue", "ViewStatus", "Limit", "Offset"),
            )
        ),
        "/queue/stats": with_head(
            operation(
                "queueStats",
                "Count tasks by state",
                "queues",
                {"200": json_response("The counts.", schema_ref("Counts")), **problems(400)},
                parameters=("QueueOrAll",),
            )
        ),
        "/queue/totals": with_head(
            operation(
                "queueTotals",
                "Count events since the store began",
                "queues",
                {
                    "200": json_response("The totals.", schema_ref("Totals")),
                    **problems(400),
                },
                parameters=("QueueOrAll",),
            )
        ),
        "/queues": with_head(
            operation(
                "listQueues",
                "Every queue that holds tasks or has a setting, with its counts",
                "queues",
                {
                    "200": json_response(
                        "The queues by name.",
                        {"type": "array", "items": schema_ref("QueueCounts")},
                    )
                },
            )
        ),
        "/queues/{name}": {
            **with_head(
                operation(
                    "getQueue",
                    "One queue's counts and settings",
                    "queues",
                    {
                        "200": json_response(
                            "The queue (zero counts and unset settings for a queue that "
                            "holds no task and has no setting).",
                            schema_ref("Queue"),
                        ),
                        **problems(400),
                    },
                    parameters=("QueueNamePath",),
                )
            ),
            "patch": operation(
                "configureQueue",
                "Set or clear a queue's settings",
                "queues",
                {
                    "200": json_response("The queue with its settings now.", schema_ref("Queue")),
                    **problems(400, *BODY_PROBLEMS),
                },
                parameters=("QueueNamePath",),
                body=json_body("QueueSettingsPatch", required=True),
            ),
        },
        "/queues/{name}/retry": {
            "post": operation(
                "retryQueue",
                "Put every failed task of a queue back to pending, attempts reset",
                "queues",
                {
                    "200": json_response(
                        "How many were retried (each with its `expires_at` cleared): each "
                        f"atomically, in rounds of {limits.RETRY_ROUND}, up to the number "
                        "failed when the call began (0 for a queue with none).",
                        schema_ref("Retried"),
                    ),
                    **problems(400, *BODY_PROBLEMS),
                },
                parameters=("QueueNamePath",),
            )
        },
        "/queues/{name}/push/rotate-secret": {
            "post": operation(
                "rotatePushSecret",
                "Give a push queue a new signing secret",
                "queues",
                {
                    "200": json_response(
                        "The new secret, shown this once, and until when the previous one "
                        "still signs.",
                        schema_ref("PushSecret"),
                    ),
                    **problems(400, 409, *BODY_PROBLEMS),
                },
                parameters=("QueueNamePath",),
                description="Pushes are signed with the new secret from now on, and for "
                f"{limits.PUSH_ROTATION_OVERLAP_SECONDS // 3600} h with the previous one too "
                "(both signatures, new first), so receivers can switch without a gap; a "
                "secret older than the previous one stops signing at once. A queue without a "
                "`push` setting answers 409. A body is ignored (but still limited).",
            )
        },
        "/queues/{name}/tasks": {
            "delete": operation(
                "purgeQueue",
                "Delete every task of a queue in one state (never processing ones)",
                "queues",
                {
                    "200": json_response(
                        "How many were deleted: in rounds of "
                        f"{limits.PURGE_ROUND}, each atomic, up to the number in that state "
                        "when the call began (0 for a queue with none).",
                        schema_ref("Purged"),
                    ),
                    **problems(400, *BODY_PROBLEMS),
                },
                parameters=("QueueNamePath", "PurgeStatus"),
            )
        },
        "/schedules": with_head(
            operation(
                "listSchedules",
                "Every schedule, sorted by name",
                "schedules",
                {
                    "200": json_response(
                        "The schedules.", {"type": "array", "items": schema_ref("Schedule")}
                    )
                },
            )
        ),
        "/schedules/{name}": {
            **with_head(
                operation(
                    "getSchedule",
                    "One schedule",
                    "schedules",
                    {
                        "200": json_response("The schedule.", schema_ref("Schedule")),
                        **problems(400, 404),
                    },
                    parameters=("ScheduleNamePath",),
                )
            ),
            "put": operation(
                "putSchedule",
                "Create or replace a schedule",
                "schedules",
                {
                    "200": json_response("Replaced: the schedule now.", schema_ref("Schedule")),
                    "201": json_response("Created.", schema_ref("Schedule")),
                    **problems(400, 409, *BODY_PROBLEMS),
                },
                parameters=("ScheduleNamePath",),
                body=json_body("ScheduleDefinition", required=True),
                description="Its next run is set afresh (one interval from now, or the cron's "
                "next time after now); `last_run_at` is kept. A new schedule beyond "
                f"{limits.MAX_SCHEDULES} is 409.",
            ),
            "delete": operation(
                "deleteSchedule",
                "Remove a schedule (the tasks it enqueued stay)",
                "schedules",
                {
                    "204": {"description": "Removed.", "headers": REQUEST_ID_HEADER},
                    **problems(400, 404),
                },
                parameters=("ScheduleNamePath",),
            ),
        },
        "/workers": with_head(
            operation(
                "listWorkers",
                "The workers seen lately, with the tasks they hold",
                "consumers",
                {
                    "200": json_response(
                        f"Each worker seen in the last {limits.WORKER_SEEN_SECONDS} s, the "
                        "latest seen first (on a shared store, every server's).",
                        {"type": "array", "items": schema_ref("Worker")},
                    )
                },
            )
        ),
        "/events": {
            "get": operation(
                "streamEvents",
                "Every change to a task, live (Server-Sent Events)",
                "operations",
                {
                    "200": {
                        "description": "A stream that stays open: `retry: "
                        f"{RETRY_MS}` and a comment first, then one event per change "
                        "(`id:`, `event:` as in a task's history, `data:` one line of JSON "
                        "with the task's `id`, `queue`, `status`, `at`, `attempts` and, where "
                        "they apply, `lease_id`, `worker`, `error`), a `: keep-alive` comment "
                        f"every {KEEPALIVE_SECONDS:g} s.",
                        "headers": {
                            **REQUEST_ID_HEADER,
                            "Cache-Control": {
                                "description": "`no-cache`.",
                                "schema": {"type": "string"},
                            },
                            "X-Accel-Buffering": {
                                "description": "`no`: a proxy must pass events on at once.",
                                "schema": {"type": "string"},
                            },
                        },
                        "content": {EVENT_STREAM_MEDIA_TYPE: {"schema": schema_ref("StreamEvent")}},
                    },
                    **problems(400),
                },
                parameters=("EventsQueue", "LastEventId", "LastEventIdQuery"),
                description="Resumption: with `Last-Event-ID` the stream first replays what "
                f"came after that event (of the last {limits.EVENT_BUFFER} kept), or sends "
                "one `resync` event (no id) when that is no longer possible. A client more "
                f"than {limits.EVENT_CLIENT_BUFFER} events behind is disconnected (to "
                f"reconnect and resume); past {limits.MAX_EVENT_CLIENTS} open streams a "
                "server answers 503.",
            )
        },
        "/healthz": with_head(
            operation(
                "health",
                "Is the server up and its store answering?",
                "operations",
                {
                    "200": json_response("Healthy.", schema_ref("Health")),
                    **problems(503),
                },
            )
        ),
        "/metrics": with_head(
            operation(
                "metrics",
                "Prometheus metrics",
                "operations",
                {
                    "200": {
                        "description": "Prometheus text exposition format 0.0.4.",
                        "headers": REQUEST_ID_HEADER,
                        "content": {PROMETHEUS_MEDIA_TYPE: {"schema": {"type": "string"}}},
                    }
                },
            )
        ),
        "/openapi.json": with_head(
            operation(
                "openapi",
                "This document",
                "documentation",
                {"200": json_response("OpenAPI 3.1.", {"type": "object"})},
            )
        ),
        "/docs": with_head(
            operation(
                "docs",
                "Interactive API documentation (Swagger UI, served locally)",
                "documentation",
                {"200": html_response("The documentation page.")},
            )
        ),
        "/": with_head(
            operation(
                "dashboard",
                "The live dashboard page",
                "operations",
                {"200": html_response("The dashboard page.")},
            )
        ),
    }


def html_response(description: str) -> Json:
    return {
        "description": description,
        "headers": REQUEST_ID_HEADER,
        "content": {"text/html": {"schema": {"type": "string"}}},
    }


STORELESS_PATHS = frozenset({"/openapi.json", "/docs", "/"})

SECURITY_SCHEMES: Json = {
    "bearerAuth": {
        "type": "http",
        "scheme": "bearer",
        "description": "A token given to the server with `--auth-token` (admin) or in "
        "`--tokens-file` (with its role: producer, consumer or admin).",
    }
}


def _with_auth(paths: Json, routes: Routes, *, auth: bool) -> Json:
    """The roles of each operation, from the handler that serves it (the one place they are
    set). A protected operation may answer 429 (the rate limit counts only those); with auth
    on it also gets `security`, 401 and 403, and its roles in the text."""
    handlers = {route_template(entry[0]): entry[1] for entry in routes}
    statuses = (401, 403, 429) if auth else (429,)
    for path, methods in paths.items():
        handler = handlers.get(path)
        if handler is None:  # documented but not served: tests/server/test_openapi.py says so
            continue
        for method, operation_document in methods.items():
            roles = handler.roles_for(method.upper())
            if roles is None:
                continue
            responses = operation_document["responses"]
            for status in statuses:
                responses[str(status)] = (
                    head_problem(status) if method == "head" else problem_ref(status)
                )
            if not auth:
                continue
            operation_document["security"] = [{"bearerAuth": []}]
            roles_text = describe(roles)
            note = f"Roles: {roles_text}."
            operation_document["description"] = (
                f"{operation_document['description']}\n\n{note}"
                if "description" in operation_document
                else note
            )
            operation_document["x-roles"] = roles_text.split(", ")
    return paths


def _with_store_failures(paths: Json) -> Json:
    """Every operation that reads or changes the store may answer 503 with `Retry-After` when
    the store's disk or server fails (SQLite, Redis); the docs and the dashboard page never do."""
    for path, methods in paths.items():
        if path in STORELESS_PATHS:
            continue
        for method, operation_document in methods.items():
            responses = operation_document["responses"]
            if "503" not in responses:
                responses["503"] = head_problem(503) if method == "head" else problem_ref(503)
    return paths


DESCRIPTION = """\
An HTTP task queue: producers enqueue JSON tasks, consumers lease them, and every task is
delivered at least once.

Every error is RFC 9457 problem JSON (`application/problem+json`). On every route: a method the
route does not answer gets 405 with an `Allow` header (GET routes answer HEAD too), an unknown
path gets 404, a body over `--max-body-bytes` gets 413, and a body declared as anything but JSON
gets 415 (a body with no `Content-Type` is read as JSON). Numeric query parameters are plain
digits (`limit`, `offset`, `count`) or decimal numbers as Python or JavaScript write them
(`lease`, `wait`: `2.5`, `1e-05`; no sign, no spaces), each given at most once.
"""

AUTH_ON = """
Auth is on: every operation marked with `bearerAuth` needs `Authorization: Bearer TOKEN`: 401
(with `WWW-Authenticate: Bearer`) without a known token, 403 when the token's role (producer,
consumer, admin) may not call it. `/healthz`, `/docs`, `/openapi.json` and the dashboard page `/`
stay open.
"""

AUTH_OFF = """
Auth is off: this server was given no tokens (`--auth-token`, `--tokens-file`), so every route
is open and none answers 401 or 403.
"""

AUTH_STATUSES = frozenset({401, 403})


def document(routes: Routes, *, auth: bool = True) -> Json:
    """The OpenAPI document of the app serving `routes` (its route table: pattern, handler).

    `auth` says whether the server has tokens: without, no operation requires one, and the
    401 and 403 answers and the security scheme are left out."""
    components: Json = {
        "schemas": SCHEMAS,
        "parameters": PARAMETERS,
        "headers": HEADERS,
        "responses": RESPONSES,
        "links": LINKS,
        "securitySchemes": SECURITY_SCHEMES,
    }
    if not auth:
        components["headers"] = {
            name: header for name, header in HEADERS.items() if name != "WWW-Authenticate"
        }
        components["responses"] = {
            PROBLEMS[status][0]: RESPONSES[PROBLEMS[status][0]]
            for status in PROBLEMS
            if status not in AUTH_STATUSES
        }
        del components["securitySchemes"]
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "tornado_queue",
            "version": API_VERSION,
            "description": DESCRIPTION + (AUTH_ON if auth else AUTH_OFF),
        },
        "tags": [
            {"name": "tasks", "description": "Producing and managing tasks."},
            {"name": "consumers", "description": "Leasing and finishing tasks."},
            {"name": "queues", "description": "What is in the queues."},
            {"name": "schedules", "description": "Tasks enqueued on a cron or an interval."},
            {"name": "operations", "description": "Health, metrics and the dashboard."},
            {"name": "documentation", "description": "This description, and its UI."},
        ],
        "paths": _with_auth(_with_store_failures(_paths()), routes, auth=auth),
        "components": components,
    }


def document_bytes(routes: Routes, *, auth: bool = True) -> bytes:
    """The document as JSON: the app encodes it once, and every `/openapi.json` answer writes
    these bytes."""
    return codec.dumps(document(routes, auth=auth))
