"""Back-pressure and browsers from elsewhere: --rate-limit (429), --max-waiters (503) and
--cors-origin, over HTTP."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, request
from tornado_queue.server.app import make_app
from tornado_queue.storage import MemoryStore

OWN_STORE = True  # limits live in the handler layer: one memory store, one call mode
pytestmark = pytest.mark.parametrize("store_calls", ["inline"], indirect=True)

ORIGIN = "https://app.example.com"


@pytest.fixture
def store(clock, policy) -> MemoryStore:
    return MemoryStore(policy, clock)


@pytest.fixture
def app(store, settings, store_calls, request):
    overrides = getattr(request, "param", {})
    return make_app(store, dataclasses.replace(settings, **overrides))


# --- --rate-limit ----------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [{"rate_limit": 2}], indirect=True)
async def test_past_the_rate_limit_a_client_gets_429_with_retry_after(http_client, base_url):
    answers = [await request(http_client, base_url, "GET", "/queue/stats") for _ in range(3)]

    assert [answer.code for answer in answers[:2]] == [200, 200]
    problem = assert_problem(answers[2], 429)
    assert "rate limit of 2 requests per second" in problem["detail"]
    assert int(answers[2].headers["Retry-After"]) >= 1


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [{"rate_limit": 1}], indirect=True)
async def test_a_limited_enqueue_adds_nothing_and_health_is_never_limited(
    http_client, base_url, store
):
    body = {"payload": {}}
    assert_json(await request(http_client, base_url, "POST", "/tasks", body), 201)
    assert_problem(await request(http_client, base_url, "POST", "/tasks", body), 429)

    health = [await request(http_client, base_url, "GET", "/healthz") for _ in range(5)]

    assert sum(store.stats().values()) == 1
    assert {answer.code for answer in health} == {200}


# --- --max-waiters ---------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [{"max_waiters": 2}], indirect=True)
async def test_one_long_poll_past_max_waiters_gets_503_at_once(http_client, base_url, app):
    waiters = app.services.waiters
    parked = [
        asyncio.ensure_future(
            request(http_client, base_url, "POST", "/tasks/dequeue?wait=5", request_timeout=10)
        )
        for _ in range(2)
    ]
    for _ in range(500):  # until both are parked on the IOLoop
        if waiters.count() == 2:
            break
        await asyncio.sleep(0.01)
    assert waiters.count() == 2

    refused = await request(http_client, base_url, "POST", "/tasks/dequeue?wait=5")

    problem = assert_problem(refused, 503)
    assert "--max-waiters" in problem["detail"]
    assert refused.headers["Retry-After"] == "1"
    # The parked ones still get the next tasks.
    for n in range(2):
        body = {"payload": {"n": n}}
        assert_json(await request(http_client, base_url, "POST", "/tasks", body), 201)
    assert [(await answer).code for answer in parked] == [200, 200]


# --- --cors-origin ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_without_cors_origin_no_cross_origin_headers_and_no_preflight(http_client, base_url):
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    preflight = await request(http_client, base_url, "OPTIONS", "/tasks", headers=headers)
    plain = await request(http_client, base_url, "GET", "/queue/stats", headers={"Origin": ORIGIN})

    assert preflight.code == 405
    assert "Access-Control-Allow-Origin" not in plain.headers


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [{"cors_origin": ORIGIN}], indirect=True)
async def test_the_allowed_origin_gets_a_preflight_and_readable_answers(http_client, base_url):
    headers = {"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
    preflight = await request(http_client, base_url, "OPTIONS", "/tasks", headers=headers)
    answer = await request(
        http_client, base_url, "POST", "/tasks", {"payload": {}}, headers={"Origin": ORIGIN}
    )
    error = await request(http_client, base_url, "GET", "/tasks/nope", headers={"Origin": ORIGIN})

    assert preflight.code == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    assert answer.code == 201
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Location" in answer.headers["Access-Control-Expose-Headers"]
    assert error.code == 404
    assert error.headers["Access-Control-Allow-Origin"] == ORIGIN


@pytest.mark.gen_test
@pytest.mark.parametrize("app", [{"cors_origin": ORIGIN}], indirect=True)
async def test_another_origin_gets_no_cors_headers_and_no_preflight(http_client, base_url):
    other = {"Origin": "https://evil.example", "Access-Control-Request-Method": "DELETE"}
    preflight = await request(http_client, base_url, "OPTIONS", "/tasks/x", headers=other)
    plain = await request(
        http_client, base_url, "GET", "/queue/stats", headers={"Origin": "https://evil.example"}
    )

    assert preflight.code == 405
    assert "Access-Control-Allow-Origin" not in plain.headers
    assert plain.headers["Vary"] == "Origin"
