"""Metrics: the exposition text built from store counts and totals, and the latency labels."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families

from tornado_queue.models import Event, TaskStatus
from tornado_queue.server.metrics import Metrics


def samples(text: bytes) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def fake_handler(route: str, method: str, status: int, seconds: float) -> SimpleNamespace:
    request = SimpleNamespace(method=method, request_time=lambda: seconds)
    return SimpleNamespace(route=route, request=request, get_status=lambda: status)


def test_queue_gauges_and_counters_come_from_the_store_figures():
    counts = {"emails": {**dict.fromkeys(TaskStatus, 0), TaskStatus.PENDING: 3}}
    totals = {
        "emails": {**dict.fromkeys(Event, 0), Event.ENQUEUED: 5, Event.COMPLETED: 2},
        "gone": {**dict.fromkeys(Event, 0), Event.ENQUEUED: 1, Event.LEASE_EXPIRED: 1},
    }

    found = samples(Metrics().exposition(counts, totals))

    assert found["taskqueue_tasks", (("queue", "emails"), ("status", "pending"))] == 3
    assert found["taskqueue_tasks", (("queue", "emails"), ("status", "failed"))] == 0
    # A queue with no task left still reports zeros rather than vanishing.
    assert found["taskqueue_tasks", (("queue", "gone"), ("status", "pending"))] == 0
    assert found["taskqueue_enqueued_total", (("queue", "emails"),)] == 5
    assert found["taskqueue_completed_total", (("queue", "emails"),)] == 2
    assert found["taskqueue_failed_total", (("queue", "emails"),)] == 0
    assert found["taskqueue_lease_expired_total", (("queue", "gone"),)] == 1


def test_latency_is_labelled_by_route_template_method_and_status():
    metrics = Metrics()
    metrics.observe(fake_handler("/tasks/{id}", "GET", 200, 0.0007))
    metrics.observe(fake_handler("/tasks/{id}", "GET", 200, 0.2))
    metrics.observe(fake_handler("/tasks", "POST", 201, 0.0001))

    found = samples(metrics.exposition({}, {}))

    labels = (("method", "GET"), ("route", "/tasks/{id}"), ("status", "200"))
    name = "taskqueue_http_request_duration_seconds"
    assert found[f"{name}_count", labels] == 2
    assert found[f"{name}_bucket", (("le", "0.001"), *labels)] == 1
    assert found[f"{name}_bucket", (("le", "0.25"), *labels)] == 2
    assert found[f"{name}_count", (("method", "POST"), ("route", "/tasks"), ("status", "201"))] == 1


def test_unknown_methods_share_one_label_so_clients_cannot_grow_the_series():
    metrics = Metrics()
    for method in ("BREW", "WHEN", "PROPFIND"):
        metrics.observe(fake_handler("unknown", method, 405, 0.0001))

    found = samples(metrics.exposition({}, {}))

    name = "taskqueue_http_request_duration_seconds_count"
    methods = {dict(labels)["method"] for (sample, labels) in found if sample == name}
    assert methods == {"other"}


def test_the_process_is_described_too():
    names = {name for name, _ in samples(Metrics().exposition({}, {}))}

    assert "process_resident_memory_bytes" in names
