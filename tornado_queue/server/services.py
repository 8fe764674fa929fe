"""What every handler works with, made once by `make_app` and handed to each handler as one
typed object (instead of string keys in the application's settings)."""

from __future__ import annotations

from dataclasses import dataclass

from tornado_queue.config import Settings
from tornado_queue.push_allow import PushAllow
from tornado_queue.server.auth import Tokens
from tornado_queue.server.bodywatch import BodyDeadlines
from tornado_queue.server.event_hub import EventHub
from tornado_queue.server.metrics import Metrics
from tornado_queue.server.push.dispatcher import Pusher
from tornado_queue.server.ratelimit import RateLimiter
from tornado_queue.server.result_waiters import ResultWaiters
from tornado_queue.server.scheduler import Scheduler
from tornado_queue.server.waiters import Waiters
from tornado_queue.storage import Store


class RequestTracker:
    """Counts requests in progress, so a shutdown can wait for them to finish."""

    def __init__(self) -> None:
        self.active = 0


@dataclass(frozen=True)
class Services:
    """The server's parts a request may use."""

    store: Store
    config: Settings
    tokens: Tokens
    """The bearer tokens; empty when auth is off."""
    tracker: RequestTracker
    waiters: Waiters
    """The long-polling consumers."""
    result_waiters: ResultWaiters
    """The requests waiting for a task to finish (`GET /tasks/{id}?wait=`)."""
    metrics: Metrics
    """Request latencies, and the exposition of /metrics."""
    body_deadlines: BodyDeadlines
    """Requests whose body is still arriving, cut off when they stall."""
    rate_limiter: RateLimiter | None
    """Per token (or address) request rates; None without --rate-limit."""
    openapi_document: bytes
    """`/openapi.json`, encoded once."""
    scheduler: Scheduler
    """Fires due schedules (started by `serve`; a PUT pokes it)."""
    event_hub: EventHub
    """The event stream clients (`GET /events`), fed from the store's event feed."""
    push_allow: PushAllow
    """What push URLs may target (--push-allow); empty: push delivery is off."""
    pusher: Pusher | None
    """Delivers push queues' tasks (started by `serve`); None while push is off."""
