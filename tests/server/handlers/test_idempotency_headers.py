"""The Idempotency-Key header: once per request, and only on POST /tasks."""

from __future__ import annotations

import json

import pytest
from tornado.httputil import HTTPHeaders

from tests.server.handlers.helpers import assert_problem


@pytest.mark.gen_test
async def test_an_idempotency_key_header_on_a_batch_is_a_400_pointing_to_the_item_field(
    http_client, base_url, store
):
    response = await http_client.fetch(
        base_url + "/tasks/batch",
        method="POST",
        body=json.dumps({"tasks": [{"payload": {}}]}),
        headers={"Content-Type": "application/json", "Idempotency-Key": "hb"},
        raise_error=False,
    )
    problem = assert_problem(response, 400)
    assert "idempotency_key" in problem["detail"]
    assert sum(store.stats().values()) == 0


@pytest.mark.gen_test
async def test_a_repeated_idempotency_key_header_is_a_400(http_client, base_url, store):
    headers = HTTPHeaders({"Content-Type": "application/json"})
    headers.add("Idempotency-Key", "a")
    headers.add("Idempotency-Key", "b")
    response = await http_client.fetch(
        base_url + "/tasks",
        method="POST",
        body=json.dumps({"payload": {}}),
        headers=headers,
        raise_error=False,
    )
    problem = assert_problem(response, 400)
    assert "Idempotency-Key" in problem["detail"]
    assert sum(store.stats().values()) == 0
