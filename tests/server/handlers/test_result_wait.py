"""Waiting for a result over HTTP, on every store (docs/api.md, Waiting for a result):
`GET /tasks/{id}?wait=N` answers at once for a finished task, parks otherwise and answers the
moment the task is completed or failed (a fail, a dead task, an expired lease), or with the task
as it is when N runs out; 404 for an unknown task or one deleted meanwhile; bad waits are 400s;
a client that leaves frees its waiter; waiters are bounded by --max-waiters.

Wake-ups are measured on the IOLoop clock; the store's own clock is the FakeClock, moved by
hand for the lease that runs out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from tornado.httpclient import HTTPResponse
from tornado.ioloop import IOLoop
from tornado.tcpclient import TCPClient

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    request,
)
from tornado_queue.config import Settings
from tornado_queue.server.result_waiters import ResultWaiters

FAST = 1.0
"""A wake-up, measured end to end over loopback HTTP (a Redis store included), comes well
within this; every wait below is far longer."""


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    """The suite's settings, with --max-waiters as a test parametrizes it."""
    return Settings(max_body_bytes=64 * 1024, max_waiters=getattr(request, "param", 10_000))


@pytest.fixture
def results(app) -> ResultWaiters:
    return app.services.result_waiters


def now() -> float:
    return IOLoop.current().time()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def call(client, base_url: str, method: str, path: str, body: Any = None) -> Any:
    response = await request(client, base_url, method, path, body)
    assert response.code in (200, 201, 204), response.body
    return assert_json(response, response.code) if response.body else None


async def enqueue(client, base_url: str, **fields: Any) -> dict[str, Any]:
    return await call(client, base_url, "POST", "/tasks", {"payload": {"n": 1}, **fields})


async def lease(client, base_url: str) -> dict[str, Any]:
    return await call(client, base_url, "POST", "/tasks/dequeue")


def waiter(client, base_url: str, path: str) -> asyncio.Future[tuple[HTTPResponse, float]]:
    """A GET sent in the background: (response, answered at)."""

    async def run() -> tuple[HTTPResponse, float]:
        response = await request(client, base_url, "GET", path, request_timeout=60)
        return response, now()

    return asyncio.ensure_future(run())


async def park(client, base_url: str, path: str, results: ResultWaiters) -> asyncio.Future:
    """A result waiter that is parked when this returns."""
    before = results.count()
    future = waiter(client, base_url, path)
    await until(lambda: results.count() == before + 1)
    return future


# --- answered at once -------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["complete", "fail"])
@pytest.mark.gen_test(timeout=20)
async def test_a_finished_task_is_answered_at_once(http_client, base_url, outcome):
    task = await enqueue(http_client, base_url, max_attempts=1)
    leased = await lease(http_client, base_url)
    path = f"/tasks/{task['id']}/{outcome}?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})

    asked = now()
    response, answered = await waiter(http_client, base_url, f"/tasks/{task['id']}?wait=30")

    got = assert_task_document(assert_json(response, 200))
    assert got["status"] == ("completed" if outcome == "complete" else "failed")
    assert answered - asked < FAST


@pytest.mark.parametrize("wait", ["0", "0.0"])
@pytest.mark.gen_test(timeout=20)
async def test_wait_0_is_a_plain_read(http_client, base_url, results, wait):
    task = await enqueue(http_client, base_url)

    response, _ = await waiter(http_client, base_url, f"/tasks/{task['id']}?wait={wait}")

    assert assert_json(response, 200)["status"] == "pending"
    assert results.count() == 0


# --- woken when the task finishes -------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_a_waiter_is_answered_the_moment_its_task_completes(http_client, base_url, results):
    task = await enqueue(http_client, base_url)
    leased = await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    done_at = now()
    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"result": {"answer": 42}})
    response, answered = await parked

    got = assert_task_document(assert_json(response, 200))
    assert (got["status"], got["result"]) == ("completed", {"answer": 42})
    assert answered - done_at < FAST
    assert results.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_every_waiter_on_a_task_is_answered(http_client, base_url, results):
    task = await enqueue(http_client, base_url)
    leased = await lease(http_client, base_url)
    first = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)
    second = await park(http_client, base_url, f"/tasks/{task['id']}?wait=15", results)

    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})

    for parked in (first, second):
        response, _ = await parked
        assert assert_json(response, 200)["status"] == "completed"
    assert results.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_a_task_that_dies_on_a_fail_wakes_its_waiter(http_client, base_url, results):
    task = await enqueue(http_client, base_url, max_attempts=1)
    leased = await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    failed_at = now()
    path = f"/tasks/{task['id']}/fail?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"error": "boom"})
    response, answered = await parked

    got = assert_json(response, 200)
    assert (got["status"], got["error"]) == ("failed", "boom")
    assert answered - failed_at < FAST


@pytest.mark.gen_test(timeout=20)
async def test_a_fail_that_is_retried_does_not_answer_the_waiter(http_client, base_url, results):
    task = await enqueue(http_client, base_url, max_attempts=3)
    leased = await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=0.5", results)

    path = f"/tasks/{task['id']}/fail?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"error": "try again"})
    response, _ = await parked

    # Only when the wait runs out, with the task scheduled for its retry.
    assert assert_json(response, 200)["status"] == "scheduled"


@pytest.mark.gen_test(timeout=20)
async def test_a_lease_that_runs_out_on_the_last_attempt_wakes_the_waiter(
    http_client, base_url, results, clock: FakeClock
):
    task = await enqueue(http_client, base_url, max_attempts=1)
    await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    clock.advance(31)  # past the 30 s lease
    expired_at = now()
    await call(http_client, base_url, "GET", "/queue/stats")  # any request applies what is due
    response, answered = await parked

    got = assert_json(response, 200)
    assert (got["status"], got["error"]) == ("failed", "lease expired")
    assert answered - expired_at < FAST


# --- the wait runs out, the task goes ----------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_a_wait_that_runs_out_answers_the_task_as_it_is(http_client, base_url, results):
    task = await enqueue(http_client, base_url)
    await lease(http_client, base_url)

    asked = now()
    response, answered = await waiter(http_client, base_url, f"/tasks/{task['id']}?wait=0.3")

    got = assert_task_document(assert_json(response, 200))
    assert (got["id"], got["status"]) == (task["id"], "processing")
    assert 0.3 <= answered - asked < 0.3 + FAST
    assert results.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_an_unknown_task_is_404_at_once(http_client, base_url, results):
    asked = now()
    response, answered = await waiter(http_client, base_url, "/tasks/no-such-task?wait=30")

    assert "no-such-task" in assert_problem(response, 404)["detail"]
    assert answered - asked < FAST
    assert results.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_a_task_deleted_while_waited_on_is_404_at_that_moment(http_client, base_url, results):
    task = await enqueue(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    deleted_at = now()
    await call(http_client, base_url, "DELETE", f"/tasks/{task['id']}")
    response, answered = await parked

    assert_problem(response, 404)
    assert answered - deleted_at < FAST


# --- bad waits ---------------------------------------------------------------------------------


@pytest.mark.parametrize("wait", ["-1", "30.5", "31", "abc", "1e9", "", "%205", "nan", "inf"])
@pytest.mark.gen_test(timeout=20)
async def test_a_bad_wait_is_400_naming_it(http_client, base_url, results, wait):
    task = await enqueue(http_client, base_url)

    response = await request(http_client, base_url, "GET", f"/tasks/{task['id']}?wait={wait}")

    assert "'wait'" in assert_problem(response, 400)["detail"]
    assert results.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_a_repeated_wait_is_400(http_client, base_url):
    task = await enqueue(http_client, base_url)

    response = await request(http_client, base_url, "GET", f"/tasks/{task['id']}?wait=1&wait=2")

    assert "'wait'" in assert_problem(response, 400)["detail"]


# --- clients that leave, and the bound ---------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_a_client_that_leaves_frees_its_waiter(http_client, base_url, http_port, results):
    task = await enqueue(http_client, base_url)
    stream = await TCPClient().connect("127.0.0.1", http_port)
    head = f"GET /tasks/{task['id']}?wait=20 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    await stream.write(head.encode())
    await until(lambda: results.count() == 1)

    stream.close()

    await until(lambda: results.count() == 0)
    # The task is untouched, and a later waiter is woken as usual.
    leased = await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)
    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})
    response, _ = await parked
    assert assert_json(response, 200)["status"] == "completed"


@pytest.mark.parametrize("settings", [1], indirect=True)
@pytest.mark.gen_test(timeout=20)
async def test_past_max_waiters_a_result_wait_is_503_and_a_finished_task_still_answers(
    http_client, base_url, results
):
    task = await enqueue(http_client, base_url)
    leased = await lease(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    response = await request(http_client, base_url, "GET", f"/tasks/{task['id']}?wait=5")

    problem = assert_problem(response, 503)
    assert "--max-waiters" in problem["detail"]
    assert response.headers["Retry-After"] == "1"
    assert results.count() == 1
    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})
    assert assert_json((await parked)[0], 200)["status"] == "completed"
    # A finished task needs no waiting, so it is answered even when the waiters are full.
    other = await enqueue(http_client, base_url)
    other_leased = await lease(http_client, base_url)
    blocker = await park(http_client, base_url, f"/tasks/{other['id']}?wait=20", results)
    response, _ = await waiter(http_client, base_url, f"/tasks/{task['id']}?wait=5")
    assert assert_json(response, 200)["status"] == "completed"
    path = f"/tasks/{other['id']}/complete?lease_id={other_leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})
    await blocker


@pytest.mark.gen_test(timeout=20)
async def test_a_stopping_server_answers_its_waiters_at_once(http_client, base_url, results):
    task = await enqueue(http_client, base_url)
    parked = await park(http_client, base_url, f"/tasks/{task['id']}?wait=20", results)

    stopped_at = now()
    results.close()
    response, answered = await parked

    assert assert_json(response, 200)["status"] == "pending"
    assert answered - stopped_at < FAST
