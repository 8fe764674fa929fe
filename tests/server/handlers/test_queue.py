"""GET /queue/view and GET /queue/stats."""

from __future__ import annotations

import pytest

from tests.server.handlers.helpers import (
    STATS_KEYS,
    assert_json,
    assert_problem,
    assert_task_document,
    complete,
    dequeue,
    enqueue,
    request,
    stats,
)
from tornado_queue.models import NewTask


def fill(store, count: int) -> list[str]:
    """Enqueue `count` tasks straight into the store (fast bulk setup); their ids in order."""
    return [store.enqueue(NewTask(payload=b'{"i":%d}' % i)).id for i in range(count)]


async def view(http_client, base_url, query: str = "") -> tuple[list[dict], int]:
    response = await request(http_client, base_url, "GET", "/queue/view" + query)
    document = assert_json(response, 200)
    assert isinstance(document, list)
    return document, int(response.headers["X-Total-Count"])


# --- GET /queue/view -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_view_of_an_empty_queue_is_an_empty_list_with_total_zero(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/queue/view")

    assert assert_json(response, 200) == []
    assert response.headers["X-Total-Count"] == "0"


@pytest.mark.gen_test
async def test_view_lists_pending_tasks_in_dequeue_order(http_client, base_url):
    enqueued = [await enqueue(http_client, base_url, {"i": i}) for i in range(5)]

    tasks, total = await view(http_client, base_url)

    assert total == 5
    assert [t["id"] for t in tasks] == [t["id"] for t in enqueued]
    assert tasks == enqueued
    for task in tasks:
        assert_task_document(task)
        assert task["status"] == "pending"
    dequeued = [(await dequeue(http_client, base_url))["id"] for _ in range(5)]
    assert dequeued == [t["id"] for t in tasks]


@pytest.mark.gen_test
async def test_view_excludes_processing_and_completed_tasks(http_client, base_url):
    enqueued = [await enqueue(http_client, base_url, {"i": i}) for i in range(4)]
    first = await dequeue(http_client, base_url)
    second = await dequeue(http_client, base_url)
    await complete(http_client, base_url, second["id"])

    tasks, total = await view(http_client, base_url)

    assert total == 2
    assert [t["id"] for t in tasks] == [enqueued[2]["id"], enqueued[3]["id"]]
    listed = {t["id"] for t in tasks}
    assert first["id"] not in listed
    assert second["id"] not in listed


@pytest.mark.gen_test
async def test_view_limit_takes_the_first_tasks_and_total_counts_them_all(
    http_client, base_url, store
):
    ids = fill(store, 10)

    tasks, total = await view(http_client, base_url, "?limit=3")

    assert [t["id"] for t in tasks] == ids[:3]
    assert total == 10


@pytest.mark.gen_test
async def test_view_offset_skips_tasks_from_the_head(http_client, base_url, store):
    ids = fill(store, 10)

    tasks, total = await view(http_client, base_url, "?offset=4&limit=3")

    assert [t["id"] for t in tasks] == ids[4:7]
    assert total == 10


@pytest.mark.gen_test
async def test_view_pages_together_cover_the_queue_exactly_once(http_client, base_url, store):
    ids = fill(store, 23)

    seen: list[str] = []
    for offset in range(0, 30, 5):
        tasks, total = await view(http_client, base_url, f"?offset={offset}&limit=5")
        assert total == 23
        seen.extend(t["id"] for t in tasks)

    assert seen == ids


@pytest.mark.gen_test
async def test_view_offset_past_the_end_is_an_empty_list(http_client, base_url, store):
    fill(store, 3)

    tasks, total = await view(http_client, base_url, "?offset=3")
    deepest_tasks, _ = await view(http_client, base_url, "?offset=100000")

    assert tasks == []
    assert deepest_tasks == []
    assert total == 3


@pytest.mark.gen_test
async def test_view_offset_beyond_the_deepest_page_is_a_400_naming_offset(
    http_client, base_url, store
):
    fill(store, 3)

    response = await http_client.fetch(base_url + "/queue/view?offset=100001", raise_error=False)

    problem = assert_problem(response, 400)
    assert "offset" in problem["detail"] and "100000" in problem["detail"]


@pytest.mark.gen_test
async def test_view_limit_zero_lists_nothing_but_still_counts(http_client, base_url, store):
    fill(store, 4)

    tasks, total = await view(http_client, base_url, "?limit=0")

    assert tasks == []
    assert total == 4


@pytest.mark.gen_test
async def test_view_limit_defaults_to_1000(http_client, base_url, store):
    ids = fill(store, 1001)

    tasks, total = await view(http_client, base_url)

    assert len(tasks) == 1000
    assert [t["id"] for t in tasks] == ids[:1000]
    assert total == 1001


@pytest.mark.gen_test
async def test_view_accepts_the_largest_limit_of_10000(http_client, base_url, store):
    ids = fill(store, 1200)

    tasks, total = await view(http_client, base_url, "?limit=10000")

    assert [t["id"] for t in tasks] == ids
    assert total == 1200


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("?limit=x", "limit"),
        ("?limit=-1", "limit"),
        ("?limit=10001", "limit"),
        ("?limit=1.5", "limit"),
        ("?limit=", "limit"),
        ("?limit=" + "9" * 5000, "limit"),
        ("?offset=x", "offset"),
        ("?offset=-1", "offset"),
        ("?offset=2.0", "offset"),
        ("?limit=5&offset=-3", "offset"),
    ],
)
async def test_view_with_a_bad_paging_parameter_is_a_400_naming_it(
    http_client, base_url, store, query, parameter
):
    fill(store, 2)

    response = await request(http_client, base_url, "GET", "/queue/view" + query)

    problem = assert_problem(response, 400)
    assert f"'{parameter}'" in problem["detail"]
    assert len(problem["detail"]) < 300
    assert "X-Total-Count" not in response.headers


@pytest.mark.gen_test
async def test_head_of_the_view_is_a_200_with_the_headers_of_get_and_no_body(
    http_client, base_url, store
):
    fill(store, 3)
    got = await request(http_client, base_url, "GET", "/queue/view?limit=2")

    response = await request(http_client, base_url, "HEAD", "/queue/view?limit=2")

    assert response.code == 200
    assert response.body == b""
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Total-Count"] == "3"
    assert int(response.headers["Content-Length"]) == len(got.body)


@pytest.mark.gen_test
async def test_head_of_the_view_checks_its_paging_parameters_like_get(http_client, base_url):
    response = await request(http_client, base_url, "HEAD", "/queue/view?limit=x")

    assert response.code == 400
    assert response.body == b""
    assert "X-Total-Count" not in response.headers


# --- GET /queue/stats ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_stats_has_exactly_the_five_state_keys_all_zero_at_start(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/queue/stats")

    document = assert_json(response, 200)
    assert set(document) == STATS_KEYS
    assert document == dict.fromkeys(STATS_KEYS, 0)
    assert all(type(count) is int for count in document.values())


@pytest.mark.gen_test
async def test_stats_follow_enqueue_dequeue_and_complete(http_client, base_url):
    def expected(pending: int, processing: int, completed: int) -> dict[str, int]:
        counts = {"pending": pending, "processing": processing, "completed": completed}
        return {**counts, "failed": 0, "scheduled": 0, "waiting": 0}

    ids = [(await enqueue(http_client, base_url, {"i": i}))["id"] for i in range(3)]
    assert await stats(http_client, base_url) == expected(3, 0, 0)

    await dequeue(http_client, base_url)
    assert await stats(http_client, base_url) == expected(2, 1, 0)

    await dequeue(http_client, base_url)
    assert await stats(http_client, base_url) == expected(1, 2, 0)

    await complete(http_client, base_url, ids[0])
    assert await stats(http_client, base_url) == expected(1, 1, 1)

    await complete(http_client, base_url, ids[1])
    await dequeue(http_client, base_url)
    assert await stats(http_client, base_url) == expected(0, 1, 2)

    await complete(http_client, base_url, ids[2])
    assert await stats(http_client, base_url) == expected(0, 0, 3)


@pytest.mark.gen_test
async def test_stats_pending_always_matches_the_view_total(http_client, base_url):
    for i in range(4):
        await enqueue(http_client, base_url, {"i": i})
    await dequeue(http_client, base_url)

    _, total = await view(http_client, base_url)

    assert (await stats(http_client, base_url))["pending"] == total == 3


@pytest.mark.gen_test
async def test_failed_requests_do_not_move_the_stats(http_client, base_url):
    created = await enqueue(http_client, base_url)
    before = await stats(http_client, base_url)

    await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete")
    await request(http_client, base_url, "PUT", "/tasks/nope/complete")
    await request(http_client, base_url, "GET", "/tasks/nope")

    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
async def test_head_of_the_stats_is_a_200_with_the_headers_of_get_and_no_body(
    http_client, base_url, store
):
    fill(store, 2)
    got = await request(http_client, base_url, "GET", "/queue/stats")

    response = await request(http_client, base_url, "HEAD", "/queue/stats")

    assert response.code == 200
    assert response.body == b""
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(got.body)
    assert (await stats(http_client, base_url))["pending"] == 2
