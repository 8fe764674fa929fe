"""GET /queue/view?status= (processing and failed tasks) and GET /queue/totals."""

from __future__ import annotations

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, dequeue, enqueue, request
from tornado_queue.models import NewTask

TOTAL_KEYS = {"enqueued", "completed", "failed", "lease_expired", "dead_lettered", "expired"}


async def listing(http_client, base_url, query: str) -> tuple[list[dict], int]:
    response = await request(http_client, base_url, "GET", "/queue/view" + query)
    document = assert_json(response, 200)
    return document, int(response.headers["X-Total-Count"])


async def totals(http_client, base_url, query: str = "") -> dict[str, int]:
    document = assert_json(
        await request(http_client, base_url, "GET", "/queue/totals" + query), 200
    )
    assert set(document) == TOTAL_KEYS
    return document


async def fail(http_client, base_url, task: dict, retry: bool = False) -> None:
    body = {"error": "boom", "retry": retry, "lease_id": task["lease_id"]}
    response = await request(http_client, base_url, "PUT", f"/tasks/{task['id']}/fail", body)
    assert_json(response, 200)


# --- GET /queue/view?status= ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_processing_tasks_are_listed_most_recent_first_with_their_leases(
    http_client, base_url
):
    for n in range(3):
        await enqueue(http_client, base_url, {"n": n})
    first = await dequeue(http_client, base_url)
    second = await dequeue(http_client, base_url)

    tasks, total = await listing(http_client, base_url, "?status=processing")

    assert [task["id"] for task in tasks] == [second["id"], first["id"]]
    assert total == 2
    assert all(task["status"] == "processing" and task["lease_expires_at"] for task in tasks)


@pytest.mark.gen_test
async def test_failed_tasks_are_listed_with_their_error_and_paged(http_client, base_url):
    for n in range(3):
        await enqueue(http_client, base_url, {"n": n})
    failed = []
    for _ in range(3):
        task = await dequeue(http_client, base_url)
        await fail(http_client, base_url, task)
        failed.append(task["id"])

    tasks, total = await listing(http_client, base_url, "?status=failed&limit=1&offset=1")

    assert [task["id"] for task in tasks] == [failed[1]]
    assert tasks[0]["error"] == "boom"
    assert total == 3


@pytest.mark.gen_test
async def test_status_lists_are_per_queue(http_client, base_url, store):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))
    store.dequeue(queue="emails")

    mine, mine_total = await listing(http_client, base_url, "?status=processing&queue=emails")
    other, other_total = await listing(http_client, base_url, "?status=processing")

    assert (len(mine), mine_total, other, other_total) == (1, 1, [], 0)


@pytest.mark.gen_test
async def test_status_pending_is_the_default_view(http_client, base_url):
    created = await enqueue(http_client, base_url, {"n": 1})

    explicit, total = await listing(http_client, base_url, "?status=pending")

    assert [task["id"] for task in explicit] == [created["id"]]
    assert total == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("value", ["blocked", "done", "PENDING", "", "failed%00"])
async def test_a_status_that_is_not_a_state_is_a_400_naming_the_choices(
    http_client, base_url, value
):
    response = await request(http_client, base_url, "GET", f"/queue/view?status={value}")

    problem = assert_problem(response, 400)
    choices = "pending, scheduled, waiting, processing, completed, failed"
    assert f"'status' must be one of {choices}" in problem["detail"]


@pytest.mark.gen_test
async def test_a_repeated_status_is_a_400(http_client, base_url):
    response = await request(
        http_client, base_url, "GET", "/queue/view?status=failed&status=processing"
    )

    assert "'status' is given 2 times" in assert_problem(response, 400)["detail"]


# --- GET /queue/totals -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_totals_start_at_zero(http_client, base_url):
    assert await totals(http_client, base_url) == dict.fromkeys(TOTAL_KEYS, 0)


@pytest.mark.gen_test
async def test_totals_count_events_per_queue_and_summed(http_client, base_url, store):
    for n in range(3):
        await enqueue(http_client, base_url, {"n": n})
    store.enqueue(NewTask(payload=b"{}", queue="emails"))
    done = await dequeue(http_client, base_url)
    path = f"/tasks/{done['id']}/complete?lease_id={done['lease_id']}"
    assert_json(await request(http_client, base_url, "PUT", path), 200)
    await fail(http_client, base_url, await dequeue(http_client, base_url))

    everything = await totals(http_client, base_url)
    default = await totals(http_client, base_url, "?queue=default")
    emails = await totals(http_client, base_url, "?queue=emails")
    unknown = await totals(http_client, base_url, "?queue=nobody")

    none = dict.fromkeys(TOTAL_KEYS, 0)
    assert everything == {**none, "enqueued": 4, "completed": 1, "failed": 1}
    assert default == {**none, "enqueued": 3, "completed": 1, "failed": 1}
    assert emails == {**none, "enqueued": 1}
    assert unknown == dict.fromkeys(TOTAL_KEYS, 0)


@pytest.mark.gen_test
async def test_totals_refuse_a_bad_queue_name(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/queue/totals?queue=a%20b")

    assert "'queue'" in assert_problem(response, 400)["detail"]
