"""Fenced commands are safe to send again: a complete or fail repeated with the lease id that
closed the task answers 200 with the task as it is (the first result stands, no second attempt
or backoff), while any other lease, or a task closed otherwise, is still a 409.

Runs on every store (see tests/conftest.py); time is the `clock` fixture. The conftest policy
is lease 30 s, max_attempts 3, retry backoff 1 s.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    enqueue,
    get_task,
    request,
    stats,
)


async def leased(http_client, base_url) -> dict[str, Any]:
    """A fresh task, dequeued: its document with the lease id."""
    await enqueue(http_client, base_url)
    response = await request(http_client, base_url, "POST", "/tasks/dequeue")
    return assert_task_document(assert_json(response, 200))


async def command(http_client, base_url, task: dict[str, Any], action: str, **body: Any):
    body.setdefault("lease_id", task["lease_id"])
    return await request(http_client, base_url, "PUT", f"/tasks/{task['id']}/{action}", body)


@pytest.mark.gen_test
async def test_a_repeated_complete_answers_200_with_the_task_and_the_first_result_stands(
    http_client, base_url
):
    task = await leased(http_client, base_url)
    first = assert_json(await command(http_client, base_url, task, "complete", result=1), 200)

    again = await command(http_client, base_url, task, "complete", result={"other": True})

    assert assert_json(again, 200) == first
    assert (await get_task(http_client, base_url, task["id"]))["result"] == 1
    assert (await stats(http_client, base_url))["completed"] == 1


@pytest.mark.gen_test
async def test_a_repeated_complete_in_the_query_string_is_also_recognised(http_client, base_url):
    task = await leased(http_client, base_url)
    path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
    first = assert_json(await request(http_client, base_url, "PUT", path), 200)

    assert assert_json(await request(http_client, base_url, "PUT", path), 200) == first


@pytest.mark.gen_test
@pytest.mark.parametrize("retry", [True, False])
async def test_a_repeated_fail_answers_200_without_a_second_attempt_or_backoff(
    http_client, base_url, clock, retry
):
    task = await leased(http_client, base_url)
    first = assert_json(
        await command(http_client, base_url, task, "fail", error="boom", retry=retry), 200
    )
    clock.advance(0.5)  # a second backoff would move available_at

    again = await command(http_client, base_url, task, "fail", error="other", retry=not retry)

    assert assert_json(again, 200) == first
    assert first["status"] == ("scheduled" if retry else "failed")
    assert first["attempts"] == 1
    assert first["error"] == "boom"
    expected = {"scheduled": 1} if retry else {"failed": 1}
    counts = await stats(http_client, base_url)
    assert {state: n for state, n in counts.items() if n} == expected


@pytest.mark.gen_test
async def test_a_repeated_fail_answers_with_the_task_as_it_is_now(http_client, base_url, clock):
    task = await leased(http_client, base_url)
    assert_json(await command(http_client, base_url, task, "fail", error="boom"), 200)
    clock.advance(1)  # the backoff passes; another consumer takes the task
    second = assert_json(await request(http_client, base_url, "POST", "/tasks/dequeue"), 200)

    again = assert_json(await command(http_client, base_url, task, "fail", error="boom"), 200)

    assert again["status"] == "processing"
    assert again["attempts"] == 2
    assert again["lease_id"] == second["lease_id"], "the repeat touched the new lease"


@pytest.mark.gen_test
async def test_a_repeated_batch_complete_answers_200_per_item(http_client, base_url):
    one, two = await leased(http_client, base_url), await leased(http_client, base_url)
    items = [
        {"id": one["id"], "lease_id": one["lease_id"], "result": "one"},
        {"id": two["id"], "lease_id": two["lease_id"], "result": "two"},
    ]
    path = "/tasks/complete/batch"
    first = assert_json(await request(http_client, base_url, "POST", path, {"tasks": items}), 200)

    items[0]["result"] = "changed"
    again = assert_json(await request(http_client, base_url, "POST", path, {"tasks": items}), 200)

    assert first == again
    assert [item["status"] for item in again["results"]] == [200, 200]
    assert (await get_task(http_client, base_url, one["id"]))["result"] == "one"
    assert (await stats(http_client, base_url))["completed"] == 2


@pytest.mark.gen_test
async def test_another_lease_on_a_completed_task_is_still_a_409(http_client, base_url, clock):
    task = await leased(http_client, base_url)
    clock.advance(30)  # the lease expires; a second consumer completes the task
    second = assert_json(await request(http_client, base_url, "POST", "/tasks/dequeue"), 200)
    assert_json(await command(http_client, base_url, second, "complete"), 200)

    for action in ("complete", "fail", "heartbeat"):
        response = await command(http_client, base_url, task, action)
        assert "lost" in assert_problem(response, 409)["detail"], action


@pytest.mark.gen_test
@pytest.mark.parametrize(("first", "then"), [("complete", "fail"), ("fail", "complete")])
async def test_the_other_command_under_the_closing_lease_is_a_409(
    http_client, base_url, first, then
):
    task = await leased(http_client, base_url)
    fields = {"retry": False} if first == "fail" else {}
    assert_json(await command(http_client, base_url, task, first, **fields), 200)

    response = await command(http_client, base_url, task, then)

    assert "lost" in assert_problem(response, 409)["detail"]


@pytest.mark.gen_test
async def test_a_fail_repeated_after_a_later_lease_completed_the_task_is_a_409(
    http_client, base_url, clock
):
    task = await leased(http_client, base_url)
    assert_json(await command(http_client, base_url, task, "fail", error="boom"), 200)
    clock.advance(1)
    second = assert_json(await request(http_client, base_url, "POST", "/tasks/dequeue"), 200)
    assert_json(await command(http_client, base_url, second, "complete"), 200)

    response = await command(http_client, base_url, task, "fail", error="boom")

    assert "lost" in assert_problem(response, 409)["detail"]


@pytest.mark.gen_test
async def test_a_fenced_complete_after_an_unfenced_one_is_a_409(http_client, base_url):
    task = await leased(http_client, base_url)
    path = f"/tasks/{task['id']}/complete"
    assert_json(await request(http_client, base_url, "PUT", path), 200)

    response = await command(http_client, base_url, task, "complete")

    assert "lost" in assert_problem(response, 409)["detail"]
