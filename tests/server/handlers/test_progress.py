"""Task progress over HTTP, on every store (docs/api.md, Reporting progress): a worker records
any JSON value of at most 4096 bytes on its processing task, fenced by its lease like a
heartbeat, without extending the lease; the task shows it, keeps it through redeliveries and
after it finishes, and loses it to an operator's retry. Bad input is a 400 naming the field
and changes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    request,
)
from tornado_queue.limits import MAX_PROGRESS_BYTES


async def call(client, base_url: str, method: str, path: str, body: Any = None) -> Any:
    response = await request(client, base_url, method, path, body)
    assert response.code in (200, 201), response.body
    return assert_json(response, response.code)


async def leased_task(client, base_url: str, **fields: Any) -> dict[str, Any]:
    await call(client, base_url, "POST", "/tasks", {"payload": {"n": 1}, **fields})
    return await call(client, base_url, "POST", "/tasks/dequeue")


async def report(client, base_url: str, task: dict[str, Any], value: Any) -> Any:
    body = {"lease_id": task["lease_id"], "progress": value}
    return await request(client, base_url, "PUT", f"/tasks/{task['id']}/progress", body)


async def read(client, base_url: str, task_id: str) -> dict[str, Any]:
    return assert_task_document(await call(client, base_url, "GET", f"/tasks/{task_id}"))


@pytest.mark.gen_test(timeout=20)
async def test_a_new_task_has_no_progress(http_client, base_url):
    created = await call(http_client, base_url, "POST", "/tasks", {"payload": {}})
    assert created["progress"] is None


@pytest.mark.parametrize(
    "value", [{"done": 3, "of": 10}, 0.5, "step 2", [1, 2], True, None, {"nested": {"a": [1]}}]
)
@pytest.mark.gen_test(timeout=20)
async def test_progress_is_recorded_and_read_back(http_client, base_url, value):
    task = await leased_task(http_client, base_url)

    answer = assert_task_document(
        assert_json(await report(http_client, base_url, task, value), 200)
    )

    assert (answer["status"], answer["progress"]) == ("processing", value)
    assert (await read(http_client, base_url, task["id"]))["progress"] == value


@pytest.mark.gen_test(timeout=20)
async def test_a_later_report_replaces_the_earlier_one(http_client, base_url):
    task = await leased_task(http_client, base_url)
    await report(http_client, base_url, task, {"done": 1})

    await report(http_client, base_url, task, {"done": 2})

    assert (await read(http_client, base_url, task["id"]))["progress"] == {"done": 2}


@pytest.mark.gen_test(timeout=20)
async def test_the_lease_id_may_come_in_the_query_string_or_not_at_all(http_client, base_url):
    task = await leased_task(http_client, base_url)
    path = f"/tasks/{task['id']}/progress"

    by_query = await call(
        http_client, base_url, "PUT", f"{path}?lease_id={task['lease_id']}", {"progress": 1}
    )
    unfenced = await call(http_client, base_url, "PUT", path, {"progress": 2})

    assert (by_query["progress"], unfenced["progress"]) == (1, 2)


@pytest.mark.gen_test(timeout=20)
async def test_progress_does_not_extend_the_lease(http_client, base_url, clock: FakeClock):
    task = await leased_task(http_client, base_url)
    clock.advance(10)

    answer = assert_json(await report(http_client, base_url, task, 50), 200)

    assert answer["lease_expires_at"] == task["lease_expires_at"]


@pytest.mark.gen_test(timeout=20)
async def test_progress_stays_through_a_redelivery_and_after_completion(
    http_client, base_url, clock: FakeClock
):
    task = await leased_task(http_client, base_url, max_attempts=3)
    await report(http_client, base_url, task, {"page": 7})
    clock.advance(31)  # the lease runs out: the task goes back to its queue

    again = await call(http_client, base_url, "POST", "/tasks/dequeue")
    assert (again["id"], again["attempts"], again["progress"]) == (task["id"], 2, {"page": 7})
    path = f"/tasks/{task['id']}/complete?lease_id={again['lease_id']}"
    done = await call(http_client, base_url, "PUT", path, {})

    assert (done["status"], done["progress"]) == ("completed", {"page": 7})


@pytest.mark.gen_test(timeout=20)
async def test_an_operators_retry_clears_progress(http_client, base_url):
    task = await leased_task(http_client, base_url, max_attempts=1)
    await report(http_client, base_url, task, {"page": 7})
    path = f"/tasks/{task['id']}/fail?lease_id={task['lease_id']}"
    failed = await call(http_client, base_url, "PUT", path, {})
    assert (failed["status"], failed["progress"]) == ("failed", {"page": 7})

    retried = await call(http_client, base_url, "POST", f"/tasks/{task['id']}/retry")

    assert (retried["status"], retried["progress"]) == ("pending", None)


# --- fenced ------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_a_lost_lease_is_409_and_changes_nothing(http_client, base_url, clock: FakeClock):
    task = await leased_task(http_client, base_url)
    clock.advance(31)
    again = await call(http_client, base_url, "POST", "/tasks/dequeue")

    response = await report(http_client, base_url, task, {"stale": True})

    assert "lease" in assert_problem(response, 409)["detail"]
    assert (await read(http_client, base_url, again["id"]))["progress"] is None


@pytest.mark.gen_test(timeout=20)
async def test_a_task_not_processing_is_409(http_client, base_url):
    created = await call(http_client, base_url, "POST", "/tasks", {"payload": {}})

    response = await request(
        http_client, base_url, "PUT", f"/tasks/{created['id']}/progress", {"progress": 1}
    )

    assert "not processing" in assert_problem(response, 409)["detail"]
    assert (await read(http_client, base_url, created["id"]))["progress"] is None


@pytest.mark.gen_test(timeout=20)
async def test_a_finished_task_is_409_even_under_its_old_lease(http_client, base_url):
    task = await leased_task(http_client, base_url)
    path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})

    response = await report(http_client, base_url, task, 1)

    assert_problem(response, 409)


@pytest.mark.gen_test(timeout=20)
async def test_an_unknown_task_is_404(http_client, base_url):
    response = await request(
        http_client, base_url, "PUT", "/tasks/no-such-task/progress", {"progress": 1}
    )
    assert_problem(response, 404)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"lease_id": "x"}, "'progress'"),
        ({}, "'progress'"),
        ({"progress": "x" * MAX_PROGRESS_BYTES}, "'progress'"),  # 4098 bytes with its quotes
        ({"progress": 1, "extra": 2}, "'extra'"),
        ({"progress": 1, "lease_id": 5}, "'lease_id'"),
        ([1], "JSON object"),
        (b"{not json", "not valid JSON"),
        (b"", "empty"),
    ],
)
@pytest.mark.gen_test(timeout=20)
async def test_bad_input_is_400_naming_the_field_and_changes_nothing(
    http_client, base_url, body, named
):
    task = await leased_task(http_client, base_url)

    response = await request(http_client, base_url, "PUT", f"/tasks/{task['id']}/progress", body)

    assert named in assert_problem(response, 400)["detail"]
    assert (await read(http_client, base_url, task["id"]))["progress"] is None


@pytest.mark.gen_test(timeout=20)
async def test_progress_of_exactly_4096_bytes_is_taken(http_client, base_url):
    task = await leased_task(http_client, base_url)
    value = "x" * (MAX_PROGRESS_BYTES - 2)  # with its two quotes: 4096 bytes

    answer = assert_json(await report(http_client, base_url, task, value), 200)

    assert answer["progress"] == value
