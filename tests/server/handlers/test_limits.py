"""A full queue over HTTP: 503 problem JSON with Retry-After, nothing added, never dropped."""

from __future__ import annotations

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, request, stats
from tornado_queue.storage import Policy


@pytest.fixture
def policy() -> Policy:
    return Policy(lease_seconds=30, max_attempts=3, retention_seconds=3600, max_pending=2)


@pytest.mark.gen_test
async def test_an_enqueue_past_max_pending_is_a_503_with_retry_after(http_client, base_url):
    for n in range(2):
        body = {"payload": {"n": n}}
        assert_json(await request(http_client, base_url, "POST", "/tasks", body), 201)

    refused = await request(http_client, base_url, "POST", "/tasks", {"payload": {"n": 2}})
    batch = {"tasks": [{"payload": {"n": 3}}]}
    refused_batch = await request(http_client, base_url, "POST", "/tasks/batch", batch)

    for response in (refused, refused_batch):
        problem = assert_problem(response, 503)
        assert "queue 'default' is full" in problem["detail"]
        assert response.headers["Retry-After"] == "1"
    assert (await stats(http_client, base_url))["pending"] == 2
