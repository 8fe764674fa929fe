"""GET /metrics over HTTP: what Prometheus scrapes."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.server.handlers.helpers import assert_json, dequeue, enqueue, request


async def scrape(http_client, base_url) -> dict[tuple[str, tuple], float]:
    response = await http_client.fetch(base_url + "/metrics")
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.body.decode())
        for sample in family.samples
    }


@pytest.mark.gen_test
async def test_metrics_show_the_store_counts_and_events(http_client, base_url):
    for n in range(3):
        await enqueue(http_client, base_url, {"n": n})
    task = await dequeue(http_client, base_url)
    path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
    assert_json(await request(http_client, base_url, "PUT", path), 200)

    found = await scrape(http_client, base_url)

    assert found["taskqueue_tasks", (("queue", "default"), ("status", "pending"))] == 2
    assert found["taskqueue_tasks", (("queue", "default"), ("status", "completed"))] == 1
    assert found["taskqueue_enqueued_total", (("queue", "default"),)] == 3
    assert found["taskqueue_completed_total", (("queue", "default"),)] == 1


@pytest.mark.gen_test
async def test_request_latency_is_recorded_by_route_template_not_raw_path(http_client, base_url):
    created = await enqueue(http_client, base_url, {"n": 1})
    await request(http_client, base_url, "GET", f"/tasks/{created['id']}")
    await request(http_client, base_url, "GET", "/tasks/no-such-task")

    found = await scrape(http_client, base_url)

    name = "taskqueue_http_request_duration_seconds_count"
    route = (("method", "GET"), ("route", "/tasks/{id}"))
    assert found[name, (*route, ("status", "200"))] == 1
    assert found[name, (*route, ("status", "404"))] == 1
    assert not any(created["id"] in str(labels) for (_, labels) in found)


@pytest.mark.gen_test
async def test_head_metrics_answers_without_a_body(http_client, base_url):
    response = await request(http_client, base_url, "HEAD", "/metrics")

    assert response.code == 200
    assert response.body == b""
