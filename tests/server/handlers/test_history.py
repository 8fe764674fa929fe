"""A task's history over HTTP, on every store (docs/api.md, History): every task document
carries `history`, oldest first, one entry per change with its time and only the keys that
apply (`lease_id`, `worker`, `error`); GETs, dequeues, commands and listings all show it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_task_document,
    at,
    parse_timestamp,
    request,
)

WORKER = "box-7/311/2"


async def call(client, base_url: str, method: str, path: str, body: Any = None, **kw) -> Any:
    response = await request(client, base_url, method, path, body, **kw)
    assert response.code in (200, 201), response.body
    return assert_json(response, response.code)


async def get(client, base_url: str, task_id: str) -> dict[str, Any]:
    return assert_task_document(await call(client, base_url, "GET", f"/tasks/{task_id}"))


def entries(task: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The history as (time, event, the other keys it has), checking each entry's shape."""
    shown = []
    for entry in task["history"]:
        assert set(entry) <= {"at", "event", "lease_id", "worker", "error"}
        assert None not in entry.values()
        rest = {key: value for key, value in entry.items() if key not in ("at", "event")}
        shown.append((parse_timestamp(entry["at"]), entry["event"], rest))
    return shown


@pytest.mark.gen_test(timeout=20)
async def test_a_lifecycle_is_recorded_oldest_first_in_every_answer(
    http_client, base_url, clock: FakeClock
):
    start = clock.now
    task = await call(http_client, base_url, "POST", "/tasks", {"payload": {}, "max_attempts": 2})
    assert entries(task) == [(at(start), "enqueued", {})]
    assert entries(await get(http_client, base_url, task["id"])) == [(at(start), "enqueued", {})]

    clock.advance(1)
    first = await call(
        http_client, base_url, "POST", "/tasks/dequeue", headers={"X-Worker-Id": WORKER}
    )
    delivered = (at(start + 1), "delivered", {"lease_id": first["lease_id"], "worker": WORKER})
    assert entries(first)[-1] == delivered  # the dequeue's own answer shows it

    clock.advance(1)
    path = f"/tasks/{task['id']}/fail?lease_id={first['lease_id']}"
    failed = await call(http_client, base_url, "PUT", path, {"error": "flaky"})
    assert entries(failed)[-1] == (
        at(start + 2),
        "failed",
        {"lease_id": first["lease_id"], "worker": WORKER, "error": "flaky"},
    )

    clock.advance(5)  # past the retry backoff
    second = await call(http_client, base_url, "POST", "/tasks/dequeue")  # no worker named
    clock.advance(1)
    path = f"/tasks/{task['id']}/complete?lease_id={second['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"result": 1})

    assert entries(await get(http_client, base_url, task["id"])) == [
        (at(start), "enqueued", {}),
        delivered,
        (
            at(start + 2),
            "failed",
            {"lease_id": first["lease_id"], "worker": WORKER, "error": "flaky"},
        ),
        (at(start + 7), "delivered", {"lease_id": second["lease_id"]}),
        (at(start + 8), "completed", {"lease_id": second["lease_id"]}),
    ]


@pytest.mark.gen_test(timeout=20)
async def test_dying_a_retry_and_a_lease_that_runs_out_are_recorded(
    http_client, base_url, clock: FakeClock
):
    task = await call(http_client, base_url, "POST", "/tasks", {"payload": {}, "max_attempts": 1})
    leased = await call(http_client, base_url, "POST", "/tasks/dequeue?lease=5")
    clock.advance(6)  # the lease runs out: its last attempt, so the task dies

    expired = await get(http_client, base_url, task["id"])
    assert [event for _, event, _ in entries(expired)] == [
        "enqueued",
        "delivered",
        "lease_expired",
        "dead",
    ]
    assert entries(expired)[2][2] == {"lease_id": leased["lease_id"]}
    assert entries(expired)[3][2] == {"lease_id": leased["lease_id"], "error": "lease expired"}

    retried = await call(http_client, base_url, "POST", f"/tasks/{task['id']}/retry")
    assert entries(retried)[-1] == (at(clock.now), "retried", {})


@pytest.mark.gen_test(timeout=20)
async def test_listings_and_batches_carry_each_tasks_history(http_client, base_url):
    await call(http_client, base_url, "POST", "/tasks/batch", {"tasks": [{"payload": {}}] * 2})
    view = await call(http_client, base_url, "GET", "/queue/view")
    assert [[event for _, event, _ in entries(task)] for task in view] == [["enqueued"]] * 2

    batch = await call(
        http_client,
        base_url,
        "POST",
        "/tasks/dequeue/batch?count=2",
        headers={"X-Worker-Id": WORKER},
    )
    for task in batch["tasks"]:
        assert_task_document(task)
        assert entries(task)[-1][1:] == (
            "delivered",
            {"lease_id": task["lease_id"], "worker": WORKER},
        )


@pytest.mark.gen_test(timeout=20)
async def test_waiting_and_released_are_recorded_for_a_dependent(http_client, base_url):
    parent = await call(http_client, base_url, "POST", "/tasks", {"payload": {}})
    child = await call(
        http_client, base_url, "POST", "/tasks", {"payload": {}, "after": [parent["id"]]}
    )
    assert [event for _, event, _ in entries(child)] == ["enqueued", "waiting"]
    leased = await call(http_client, base_url, "POST", "/tasks/dequeue")
    path = f"/tasks/{parent['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})

    released = await get(http_client, base_url, child["id"])

    assert [event for _, event, _ in entries(released)] == ["enqueued", "waiting", "released"]
