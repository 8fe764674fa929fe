"""The bounds of the API, in one place: the handlers and validation check them, the OpenAPI
document, the server's flags, the worker runner and the command line state them."""

from __future__ import annotations

MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 43_200
"""A lease (`?lease=`, `--lease-seconds`, the worker's `--lease`): one second to twelve hours."""
MAX_WAIT_SECONDS = 30
"""The longest long-poll (`?wait=`)."""
VIEW_DEFAULT_LIMIT = 1000
VIEW_MAX_LIMIT = 10_000
VIEW_MAX_OFFSET = 100_000
"""`GET /queue/view` paging: walking to an offset costs time in proportion to it."""
MAX_BATCH = 1000
"""Items in one batch enqueue, dequeue or complete."""

RETRY_ROUND = 1000
"""Failed tasks a bulk retry puts back per store call; other requests are served between rounds."""
PURGE_ROUND = 1000
"""Tasks a purge deletes per store call; other requests are served between rounds."""
MAX_ATTEMPTS = 1000
"""The highest `max_attempts` of a task (and `--max-attempts`)."""
MAX_ERROR_CHARS = 10_000
MAX_PROGRESS_BYTES = 4096
"""A task's `progress`, serialized as JSON: a worker's report, not a second result."""
MAX_LEASE_ID_CHARS = 64
MAX_KEY_CHARS = 255
MAX_PRIORITY = 2**31 - 1
MAX_DELAY_SECONDS = 365 * 86400
MAX_BACKOFF_SECONDS = 3600
"""A retry backoff base (`--retry-backoff`, a queue's `retry_backoff`), and the longest backoff."""
MIN_EXPIRY_SECONDS = 1
MAX_EXPIRY_SECONDS = 365 * 86400
"""A task's `expires_in` and a queue's `ttl_seconds`: one second to a year."""
MAX_GROUP_CHARS = 128
MAX_PROCESSING = 100_000
"""The highest `max_processing` of a queue."""
MAX_RATE_TASKS = 10_000
MAX_RATE_SECONDS = 86_400
"""A queue's `rate_limit`: at most 10,000 deliveries in a window of at most a day (each store
keeps the times of the last `tasks` deliveries)."""
MIN_TOKEN_CHARS = 16
MAX_TOKEN_CHARS = 512
MAX_PARENTS = 100
"""The tasks one task may wait for (`after`)."""
MAX_DEPENDENTS = 1000
"""The tasks that may wait for one task: its `dependents` are shown with it, so they stay few."""
MAX_SCHEDULES = 10_000
"""Schedules a store holds at most: a PUT of a new one beyond it is refused (409)."""
MIN_EVERY_SECONDS = 1
MAX_EVERY_SECONDS = 365 * 86400
"""A schedule's `every`: one second to a year."""
MAX_CRON_CHARS = 200
SCHEDULE_ROUND = 100
"""Due schedules one store call fires at most; the scheduler calls again at once for more."""
MAX_WORKER_ID_CHARS = 128
"""An `X-Worker-Id`: 1 to 128 visible ASCII characters."""
WORKER_SEEN_SECONDS = 60
"""GET /workers lists the workers seen in this many seconds; a store forgets older ones."""
MAX_WORKERS = 10_000
"""Workers a store keeps at most: beyond it, the one seen longest ago is forgotten."""
EVENT_BUFFER = 10_000
"""Events a store keeps for stream clients resuming with Last-Event-ID (the last ones)."""
EVENT_CLIENT_BUFFER = 1_000
"""Events a stream client may have unsent; beyond it, the server drops that client."""
MAX_EVENT_CLIENTS = 1000
"""Event stream clients (`GET /events`) one server serves at once; one more is refused (503)."""
PUSH_ROTATION_OVERLAP_SECONDS = 86_400
"""After a push secret is rotated, pushes carry both signatures for this long."""
MIN_PUSH_TIMEOUT_SECONDS = 1
MAX_PUSH_TIMEOUT_SECONDS = 1800
"""A push target's `timeout_seconds`."""
MAX_PUSH_URL_CHARS = 2048
MAX_PUSH_HEADERS = 20
MAX_PUSH_HEADER_NAME_CHARS = 64
MAX_PUSH_HEADER_VALUE_CHARS = 1024
"""A push target's `url` and `headers` (names, then values)."""
PUSH_RESERVED_HEADERS = (
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
)
"""Headers a push target may not set: the pusher sets them itself, because the signature
covers them or HTTP needs them right."""
