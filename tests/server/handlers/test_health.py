"""`GET /healthz`, and the request id every answer carries."""

from __future__ import annotations

import pytest
from tornado.httputil import HTTPHeaders

from tests.server.handlers.helpers import assert_problem, request


@pytest.mark.gen_test
async def test_healthz_answers_ok_while_the_store_answers(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/healthz")

    assert response.code == 200
    assert response.body == b'{"status":"ok"}'


@pytest.mark.gen_test
async def test_healthz_is_a_503_problem_when_the_store_fails(
    http_client, base_url, store, monkeypatch
):
    def broken(*_args):
        raise ConnectionError("store unreachable")

    monkeypatch.setattr(store, "stats", broken)

    response = await request(http_client, base_url, "GET", "/healthz")

    problem = assert_problem(response, 503)
    assert "ConnectionError" in problem["detail"]


@pytest.mark.gen_test
async def test_a_request_id_from_the_client_is_echoed_even_on_an_error(http_client, base_url):
    response = await http_client.fetch(
        base_url + "/tasks/unknown", headers={"X-Request-ID": "trace-42"}, raise_error=False
    )

    assert response.code == 404
    assert response.headers["X-Request-ID"] == "trace-42"


@pytest.mark.gen_test
async def test_a_missing_or_unreasonable_request_id_is_replaced_by_a_fresh_one(
    http_client, base_url
):
    plain = await http_client.fetch(base_url + "/queue/stats")
    too_long = await http_client.fetch(
        base_url + "/queue/stats", headers={"X-Request-ID": "x" * 200}
    )

    ids = {plain.headers["X-Request-ID"], too_long.headers["X-Request-ID"]}
    assert len(ids) == 2
    assert all(len(each) == 32 and int(each, 16) >= 0 for each in ids)


@pytest.mark.gen_test
async def test_two_request_id_headers_are_replaced_by_a_fresh_one_not_joined(http_client, base_url):
    headers = HTTPHeaders()
    headers.add("X-Request-ID", "one")
    headers.add("X-Request-ID", "two")

    response = await http_client.fetch(base_url + "/queue/stats", headers=headers)

    given = response.headers.get_list("X-Request-ID")
    assert len(given) == 1
    assert len(given[0]) == 32 and int(given[0], 16) >= 0


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("query", "shown"),
    [
        ("?lease=1%00", "query parameter 'lease' must be a number like 30 or 2.5, got '1\\x00'"),
        ("?queue=a%00b", "got 'a\\x00b'"),
        ("?wait=%1f", "got '\\x1f'"),
    ],
)
async def test_a_control_character_in_a_query_value_is_shown_escaped_in_the_detail(
    http_client, base_url, query, shown
):
    response = await request(http_client, base_url, "POST", f"/tasks/dequeue{query}")

    assert shown in assert_problem(response, 400)["detail"]
