"""Workers over HTTP, on every store (docs/api.md, Workers): a consumer names itself with
`X-Worker-Id` on dequeues and on the commands of its leases; a bad name is a 400 that changes
nothing; `GET /workers` lists who was seen in the last minute, with what each holds and how
many it completed and failed."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado.httputil import HTTPHeaders

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    at,
    parse_timestamp,
    request,
    stats,
)
from tornado_queue.limits import WORKER_SEEN_SECONDS

WORKER_FIELDS = {"id", "last_seen", "tasks", "completed", "failed"}


async def call(client, base_url: str, method: str, path: str, body: Any = None, **kw) -> Any:
    response = await request(client, base_url, method, path, body, **kw)
    assert response.code in (200, 201), response.body
    return assert_json(response, response.code)


async def enqueue(client, base_url: str, **fields: Any) -> dict[str, Any]:
    return await call(client, base_url, "POST", "/tasks", {"payload": {}, **fields})


async def dequeue(client, base_url: str, worker: str, path: str = "/tasks/dequeue") -> Any:
    return await call(client, base_url, "POST", path, headers={"X-Worker-Id": worker})


async def workers(client, base_url: str) -> list[dict[str, Any]]:
    listing = await call(client, base_url, "GET", "/workers")
    for worker in listing:
        assert set(worker) == WORKER_FIELDS
        parse_timestamp(worker["last_seen"])
    return listing


def by_id(listing: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {worker["id"]: worker for worker in listing}


# --- X-Worker-Id ------------------------------------------------------------------------------

BAD_NAMES = ["", "two words", "x" * 129, "caf\u00e9", "tab\there"]


@pytest.mark.parametrize("name", BAD_NAMES, ids=["empty", "space", "too-long", "latin-1", "tab"])
@pytest.mark.parametrize("path", ["/tasks/dequeue", "/tasks/dequeue/batch?count=5"])
@pytest.mark.gen_test(timeout=20)
async def test_a_bad_worker_id_on_a_dequeue_is_a_400_and_nothing_is_dequeued(
    http_client, base_url, name, path
):
    await enqueue(http_client, base_url)

    response = await request(http_client, base_url, "POST", path, headers={"X-Worker-Id": name})

    assert "X-Worker-Id" in assert_problem(response, 400)["detail"]
    assert (await stats(http_client, base_url))["pending"] == 1
    assert await workers(http_client, base_url) == []


@pytest.mark.gen_test(timeout=20)
async def test_a_worker_id_given_twice_is_a_400(http_client, base_url):
    await enqueue(http_client, base_url)
    headers = HTTPHeaders()
    headers.add("X-Worker-Id", "a")
    headers.add("X-Worker-Id", "b")

    response = await http_client.fetch(
        base_url + "/tasks/dequeue", method="POST", body=b"", headers=headers, raise_error=False
    )

    assert "given 2 times" in assert_problem(response, 400)["detail"]
    assert (await stats(http_client, base_url))["pending"] == 1


FENCED = ["complete", "fail", "heartbeat", "progress", "batch"]


def fenced_calls(task: dict[str, Any]) -> list[tuple[str, str, Any]]:
    lease = task["lease_id"]
    base = f"/tasks/{task['id']}"
    return [
        ("PUT", f"{base}/complete", {"lease_id": lease}),
        ("PUT", f"{base}/fail", {"lease_id": lease}),
        ("PUT", f"{base}/heartbeat", {"lease_id": lease}),
        ("PUT", f"{base}/progress", {"lease_id": lease, "progress": 1}),
        ("POST", "/tasks/complete/batch", {"tasks": [{"id": task["id"], "lease_id": lease}]}),
    ]


@pytest.mark.parametrize("which", range(5), ids=FENCED)
@pytest.mark.gen_test(timeout=20)
async def test_a_bad_worker_id_on_a_fenced_call_is_a_400_and_the_lease_is_untouched(
    http_client, base_url, which
):
    await enqueue(http_client, base_url)
    leased = await dequeue(http_client, base_url, "good")
    method, path, body = fenced_calls(leased)[which]

    response = await request(
        http_client, base_url, method, path, body, headers={"X-Worker-Id": "bad name"}
    )

    assert "X-Worker-Id" in assert_problem(response, 400)["detail"]
    task = await call(http_client, base_url, "GET", f"/tasks/{leased['id']}")
    assert (task["status"], task["lease_id"], task["progress"]) == (
        "processing",
        leased["lease_id"],
        None,
    )
    assert task["lease_expires_at"] == leased["lease_expires_at"]


@pytest.mark.parametrize("which", range(5), ids=FENCED)
@pytest.mark.gen_test(timeout=20)
async def test_every_fenced_call_with_a_worker_id_shows_it_seen(
    http_client, base_url, clock: FakeClock, which
):
    await enqueue(http_client, base_url)
    leased = await dequeue(http_client, base_url, "runner", "/tasks/dequeue?lease=600")
    clock.advance(WORKER_SEEN_SECONDS + 1)  # not seen for over a minute...
    method, path, body = fenced_calls(leased)[which]
    await call(http_client, base_url, method, path, body, headers={"X-Worker-Id": "caller"})

    listing = by_id(await workers(http_client, base_url))

    assert parse_timestamp(listing["caller"]["last_seen"]) == at(clock.now)
    assert "runner" not in listing  # ...and not seen since


# --- GET /workers -----------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_workers_are_listed_with_what_they_hold_and_did_latest_seen_first(
    http_client, base_url, clock: FakeClock
):
    for _ in range(3):
        await enqueue(http_client, base_url, max_attempts=2)
    batch = await call(
        http_client,
        base_url,
        "POST",
        "/tasks/dequeue/batch?count=2",
        headers={"X-Worker-Id": "a/1/0"},
    )
    first, second = batch["tasks"]
    clock.advance(1)
    third = await dequeue(http_client, base_url, "b/2/0")

    listing = await workers(http_client, base_url)
    assert [worker["id"] for worker in listing] == ["b/2/0", "a/1/0"]
    assert set(listing[1]["tasks"]) == {first["id"], second["id"]}
    assert listing[0]["tasks"] == [third["id"]]
    assert parse_timestamp(listing[0]["last_seen"]) == at(clock.now)
    assert parse_timestamp(listing[1]["last_seen"]) == at(clock.now - 1)

    clock.advance(1)
    done = f"/tasks/{first['id']}/complete?lease_id={first['lease_id']}"
    await call(http_client, base_url, "PUT", done, {}, headers={"X-Worker-Id": "a/1/0"})
    failed = f"/tasks/{second['id']}/fail?lease_id={second['lease_id']}"
    await call(http_client, base_url, "PUT", failed, {"error": "no"})

    a = by_id(await workers(http_client, base_url))["a/1/0"]
    assert (a["tasks"], a["completed"], a["failed"]) == ([], 1, 1)
    assert parse_timestamp(a["last_seen"]) == at(clock.now)


@pytest.mark.gen_test(timeout=20)
async def test_a_dequeue_that_finds_nothing_still_shows_its_worker(
    http_client, base_url, clock: FakeClock
):
    response = await request(
        http_client, base_url, "POST", "/tasks/dequeue", headers={"X-Worker-Id": "idle"}
    )
    assert response.code == 404
    await call(
        http_client,
        base_url,
        "POST",
        "/tasks/dequeue/batch?count=3",
        headers={"X-Worker-Id": "idle-batch"},
    )

    listing = by_id(await workers(http_client, base_url))

    assert set(listing) == {"idle", "idle-batch"}
    assert listing["idle"]["tasks"] == []
    assert parse_timestamp(listing["idle"]["last_seen"]) == at(clock.now)


@pytest.mark.gen_test(timeout=20)
async def test_a_long_poll_names_its_worker_in_the_delivery(http_client, base_url, app):
    waiters = app.services.waiters
    parked = request(
        http_client,
        base_url,
        "POST",
        "/tasks/dequeue?wait=10",
        headers={"X-Worker-Id": "poller"},
        request_timeout=30,
    )
    future = asyncio.ensure_future(parked)
    deadline = asyncio.get_running_loop().time() + 10
    while waiters.count() == 0:
        assert asyncio.get_running_loop().time() < deadline, "the long-poll never parked"
        await asyncio.sleep(0.002)
    task = await enqueue(http_client, base_url)

    leased = assert_json(await future, 200)

    assert leased["id"] == task["id"]
    assert leased["history"][-1]["worker"] == "poller"
    assert by_id(await workers(http_client, base_url))["poller"]["tasks"] == [task["id"]]


@pytest.mark.gen_test(timeout=20)
async def test_head_of_workers_answers_as_get_without_a_body(http_client, base_url):
    response = await request(http_client, base_url, "HEAD", "/workers")

    assert response.code == 200
    assert response.body == b""
