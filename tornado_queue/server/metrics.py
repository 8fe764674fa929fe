"""Prometheus metrics: request latency kept by the app, queue state read from the store at
scrape time (docs/operations.md, Metrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from tornado.web import RequestHandler

from tornado_queue.models import Event, QueueSettings, TaskStatus
from tornado_queue.storage.base import RETIRED

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The classic text format: every Prometheus version (and most other scrapers) reads it."""

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""From half a millisecond (a plain enqueue) up to 30 s (the longest long-poll)."""

PUSH_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0,
)  # fmt: skip
"""From a millisecond (a receiver on the same host) up to 30 minutes (the longest timeout)."""

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
"""Any other method is labelled "other", so clients cannot create label values at will."""

EVENT_HELP = {
    Event.ENQUEUED: "Tasks created.",
    Event.COMPLETED: "Tasks completed.",
    Event.FAILED: "Tasks that became failed (retries used up, no retry asked, or lease lost).",
    Event.LEASE_EXPIRED: "Leases that ran out before the task was completed or failed.",
    Event.DEAD_LETTERED: "Tasks that failed for good and moved to the queue's dead-letter queue.",
    Event.EXPIRED: "Tasks that expired (past expires_at) and became failed undelivered.",
}


class Metrics:
    """One application's metrics. The latency histogram lives here; the store's counts and
    event totals are passed in at each scrape (`exposition`), so the numbers are the store's
    own — the same from every server sharing a Redis store — and a scrape never walks tasks."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self._latency = Histogram(
            "taskqueue_http_request_duration_seconds",
            "Time from a request's arrival to its answer, by route template, method and status.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._waiters = Gauge(
            "taskqueue_waiters",
            "Requests parked on this process: consumers long-polling (dequeue) and requests "
            "waiting for a task's result (result).",
            ["kind"],
            registry=self.registry,
        )
        # labels() takes a lock and builds a key each call; the children are looked up here.
        self._children: dict[tuple[str, str, int], Histogram] = {}
        self._fired = Counter(
            "taskqueue_schedule_fired",
            "Occurrences of each schedule this server enqueued (a skipped one is not counted).",
            ["schedule"],
            registry=self.registry,
        )

        self._push_attempts = Counter(
            "taskqueue_push_attempts",
            "Pushes this server made, per queue (each delivery of a task to its push URL).",
            ["queue"],
            registry=self.registry,
        )
        self._push_succeeded = Counter(
            "taskqueue_push_succeeded",
            "Pushes answered with 2xx, per queue (their tasks completed).",
            ["queue"],
            registry=self.registry,
        )
        self._push_failed = Counter(
            "taskqueue_push_failed",
            "Pushes that failed, per queue and reason: retry_status (429 or 5xx), rejected "
            "(3xx or another 4xx: not retried), timeout, connection, disallowed (the host "
            "resolved to an address --push-allow does not allow).",
            ["queue", "reason"],
            registry=self.registry,
        )
        self._push_seconds = Histogram(
            "taskqueue_push_duration_seconds",
            "Time from a push's start to its answer (or its timeout), per queue.",
            ["queue"],
            buckets=PUSH_BUCKETS,
            registry=self.registry,
        )

    def pushed(self, queue: str, reason: str | None, seconds: float) -> None:
        """Count one push of `queue` that took `seconds` and failed for `reason` (None: it
        succeeded). Queue labels are bounded by the queues that have a push setting."""
        self._push_attempts.labels(queue).inc()
        if reason is None:
            self._push_succeeded.labels(queue).inc()
        else:
            self._push_failed.labels(queue, reason).inc()
        self._push_seconds.labels(queue).observe(seconds)

    def schedule_fired(self, schedule: str) -> None:
        """Count one occurrence of `schedule` enqueued by this server (called by its
        scheduler; schedule names are bounded by `limits.MAX_SCHEDULES`)."""
        self._fired.labels(schedule).inc()

    def observe(self, handler: RequestHandler) -> None:
        """Record one finished request (called from the app's `log_function`)."""
        method = handler.request.method or "other"
        if method not in KNOWN_METHODS:
            method = "other"
        key = (getattr(handler, "route", "unknown"), method, handler.get_status())
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self._latency.labels(key[0], key[1], str(key[2]))
        child.observe(handler.request.request_time())

    def waiting(self, consumers: int, results: int) -> None:
        """The parked requests right now (set at each scrape)."""
        self._waiters.labels("dequeue").set(consumers)
        self._waiters.labels("result").set(results)

    def exposition(
        self,
        counts: dict[str, dict[TaskStatus, int]],
        totals: dict[str, dict[Event, int]],
        settings: dict[str, QueueSettings] | None = None,
    ) -> bytes:
        """The text a scrape gets: this process's metrics, then the queues'."""
        snapshot = CollectorRegistry()
        snapshot.register(_QueueCollector(counts, totals, settings or {}))
        return generate_latest(self.registry) + generate_latest(snapshot)


class _QueueCollector(Collector):
    def __init__(
        self,
        counts: dict[str, dict[TaskStatus, int]],
        totals: dict[str, dict[Event, int]],
        settings: dict[str, QueueSettings],
    ) -> None:
        self._counts = counts
        self._totals = totals
        self._settings = settings

    def collect(self) -> Iterator[Metric]:
        tasks = GaugeMetricFamily(
            "taskqueue_tasks", "Tasks in each state, per queue.", labels=["queue", "status"]
        )
        # A queue that emptied keeps reporting zeros (its totals are still known) rather than
        # vanishing, so graphs drop to 0 instead of stopping.
        paused = GaugeMetricFamily(
            "taskqueue_queue_paused", "1 while the queue is paused, else 0.", labels=["queue"]
        )
        for queue in sorted(self._counts.keys() | self._totals.keys() - {RETIRED}):
            counts = self._counts.get(queue, {})
            for status in TaskStatus:
                tasks.add_metric([queue, status.value], counts.get(status, 0))
            settings = self._settings.get(queue)
            paused.add_metric([queue], 1 if settings is not None and settings.paused else 0)
        yield tasks
        yield paused
        for event in Event:
            family = CounterMetricFamily(
                f"taskqueue_{event.value}", EVENT_HELP[event], labels=["queue"]
            )
            for queue, events in sorted(self._totals.items()):
                if queue != RETIRED:  # queues that emptied: their series end (a counter reset)
                    family.add_metric([queue], events[event])
            yield family
