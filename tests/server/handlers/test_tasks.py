"""POST /tasks, POST /tasks/dequeue, GET /tasks/{id} and PUT /tasks/{id}/complete."""

from __future__ import annotations

import uuid

import pytest

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    at,
    complete,
    dequeue,
    enqueue,
    get_task,
    parse_timestamp,
    request,
    stats,
)

# --- POST /tasks ---------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_enqueue_answers_201_with_the_full_pending_task(http_client, base_url, clock):
    payload = {"to": "ada@example.com", "items": [1, 2.5, "three", None, True], "nested": {"k": {}}}

    response = await request(http_client, base_url, "POST", "/tasks", {"payload": payload})

    task = assert_task_document(assert_json(response, 201))
    assert uuid.UUID(task["id"]).version == 4
    assert task["payload"] == payload
    assert task["status"] == "pending"
    assert task["queue"] == "default"
    assert task["priority"] == 0
    assert task["attempts"] == 0
    assert task["max_attempts"] == 3
    assert parse_timestamp(task["created_at"]) == at(clock.now)
    assert parse_timestamp(task["available_at"]) == at(clock.now)
    for field in ("lease_id", "lease_expires_at", "started_at", "finished_at", "result", "error"):
        assert task[field] is None


@pytest.mark.gen_test
async def test_enqueue_sets_a_location_header_that_points_at_the_new_task(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/tasks", {"payload": {"a": 1}})

    task = assert_json(response, 201)
    assert response.headers["Location"] == f"/tasks/{task['id']}"
    fetched = await get_task(http_client, base_url, task["id"])
    assert fetched == task


@pytest.mark.gen_test
async def test_every_timestamp_in_a_task_ends_with_z(http_client, base_url, clock):
    created = await enqueue(http_client, base_url)
    clock.advance(1.5)
    started = await dequeue(http_client, base_url)
    clock.advance(2.25)
    finished = await complete(http_client, base_url, started["id"])

    for document in (created, started, finished):
        stamps = [document[f] for f in ("created_at", "available_at", "started_at", "finished_at")]
        for stamp in stamps:
            if stamp is not None:
                assert stamp.endswith("Z")
    assert finished["created_at"].endswith("Z")
    assert finished["started_at"].endswith("Z")
    assert finished["finished_at"].endswith("Z")


@pytest.mark.gen_test
async def test_enqueued_tasks_get_distinct_ids(http_client, base_url):
    ids = [(await enqueue(http_client, base_url, {"i": i}))["id"] for i in range(25)]

    assert len(set(ids)) == 25
    assert (await stats(http_client, base_url))["pending"] == 25


@pytest.mark.gen_test
async def test_an_empty_payload_object_is_a_valid_task(http_client, base_url):
    task = await enqueue(http_client, base_url, {})

    assert task["payload"] == {}
    assert (await get_task(http_client, base_url, task["id"]))["payload"] == {}


@pytest.mark.gen_test
async def test_the_payload_comes_back_exactly_as_sent_including_unicode(http_client, base_url):
    payload = {"name": "Zoë ✓ 𝄞", "big": 2**53, "neg": -1.25e-7, "empty": "", "list": []}

    task = await enqueue(http_client, base_url, payload)

    assert task["payload"] == payload
    assert (await get_task(http_client, base_url, task["id"]))["payload"] == payload


# --- POST /tasks/dequeue -------------------------------------------------------------------


@pytest.mark.gen_test
async def test_dequeue_returns_the_oldest_pending_task_first(http_client, base_url):
    enqueued = [await enqueue(http_client, base_url, {"order": i}) for i in range(6)]

    dequeued = [await dequeue(http_client, base_url) for _ in range(6)]

    assert [t["id"] for t in dequeued] == [t["id"] for t in enqueued]
    assert [t["payload"]["order"] for t in dequeued] == list(range(6))


@pytest.mark.gen_test
async def test_dequeue_keeps_fifo_order_when_enqueues_and_dequeues_interleave(
    http_client, base_url
):
    first = await enqueue(http_client, base_url, {"n": 1})
    second = await enqueue(http_client, base_url, {"n": 2})
    assert (await dequeue(http_client, base_url))["id"] == first["id"]
    third = await enqueue(http_client, base_url, {"n": 3})

    assert (await dequeue(http_client, base_url))["id"] == second["id"]
    assert (await dequeue(http_client, base_url))["id"] == third["id"]


@pytest.mark.gen_test
async def test_dequeue_answers_200_with_the_task_now_processing(http_client, base_url, clock):
    created = await enqueue(http_client, base_url, {"job": "resize"})
    clock.advance(7)

    response = await request(http_client, base_url, "POST", "/tasks/dequeue")

    task = assert_task_document(assert_json(response, 200))
    assert task["id"] == created["id"]
    assert task["payload"] == {"job": "resize"}
    assert task["status"] == "processing"
    assert task["attempts"] == 1
    assert task["started_at"] is not None
    assert parse_timestamp(task["started_at"]) == at(clock.now)
    assert task["created_at"] == created["created_at"]
    assert task["finished_at"] is None


@pytest.mark.gen_test
async def test_a_dequeued_task_reads_back_as_processing(http_client, base_url):
    created = await enqueue(http_client, base_url)
    await dequeue(http_client, base_url)

    task = await get_task(http_client, base_url, created["id"])

    assert task["status"] == "processing"
    assert task["attempts"] == 1


@pytest.mark.gen_test
async def test_dequeue_on_an_empty_queue_is_a_404_problem(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/tasks/dequeue")

    problem = assert_problem(response, 404)
    assert "empty" in problem["detail"]


@pytest.mark.gen_test
async def test_dequeue_is_404_once_every_task_has_been_taken(http_client, base_url):
    await enqueue(http_client, base_url)
    await dequeue(http_client, base_url)

    response = await request(http_client, base_url, "POST", "/tasks/dequeue")

    assert_problem(response, 404)
    assert await stats(http_client, base_url) == {
        "pending": 0,
        "processing": 1,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }


# --- GET /tasks/{id} -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_get_returns_the_task_by_id(http_client, base_url):
    await enqueue(http_client, base_url, {"other": True})
    created = await enqueue(http_client, base_url, {"wanted": True})

    response = await request(http_client, base_url, "GET", f"/tasks/{created['id']}")

    assert assert_json(response, 200) == created


@pytest.mark.gen_test
async def test_get_of_an_unknown_id_is_a_404_problem_naming_the_id(http_client, base_url):
    unknown = str(uuid.uuid4())

    response = await request(http_client, base_url, "GET", f"/tasks/{unknown}")

    problem = assert_problem(response, 404)
    assert unknown in problem["detail"]


@pytest.mark.gen_test
async def test_get_of_a_malformed_id_is_a_404_problem(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/tasks/abc")

    assert_problem(response, 404)


@pytest.mark.gen_test
async def test_a_very_long_id_is_404_and_is_not_echoed_in_full(http_client, base_url):
    long_id = "z" * 5000

    response = await request(http_client, base_url, "GET", f"/tasks/{long_id}")

    problem = assert_problem(response, 404)
    assert "z" * 101 not in problem["detail"]
    assert len(problem["detail"]) <= 200
    assert len(response.body) < 600


@pytest.mark.gen_test
async def test_head_of_a_task_is_a_200_with_the_headers_of_get_and_no_body(http_client, base_url):
    created = await enqueue(http_client, base_url, {"wanted": True})
    got = await request(http_client, base_url, "GET", f"/tasks/{created['id']}")

    response = await request(http_client, base_url, "HEAD", f"/tasks/{created['id']}")

    assert response.code == 200
    assert response.body == b""
    assert response.headers["Content-Type"] == "application/json"
    assert int(response.headers["Content-Length"]) == len(got.body)
    assert (await get_task(http_client, base_url, created["id"])) == created


@pytest.mark.gen_test
async def test_head_of_an_unknown_task_is_a_404_with_no_body(http_client, base_url):
    response = await request(http_client, base_url, "HEAD", f"/tasks/{uuid.uuid4()}")

    assert response.code == 404
    assert response.body == b""
    assert response.headers["Content-Type"] == "application/problem+json"


# --- PUT /tasks/{id}/complete --------------------------------------------------------------


@pytest.mark.gen_test
async def test_complete_answers_200_with_the_task_completed(http_client, base_url, clock):
    created = await enqueue(http_client, base_url, {"k": "v"})
    started = await dequeue(http_client, base_url)
    clock.advance(3)

    response = await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete")

    task = assert_task_document(assert_json(response, 200))
    assert task["id"] == created["id"]
    assert task["status"] == "completed"
    assert task["payload"] == {"k": "v"}
    assert task["attempts"] == 1
    assert task["started_at"] == started["started_at"]
    assert task["finished_at"] is not None
    assert parse_timestamp(task["finished_at"]) == at(clock.now)
    assert await get_task(http_client, base_url, created["id"]) == task


@pytest.mark.gen_test
async def test_complete_accepts_an_empty_json_object_as_body(http_client, base_url):
    created = await enqueue(http_client, base_url)
    await dequeue(http_client, base_url)

    response = await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete", {})

    assert assert_json(response, 200)["status"] == "completed"


@pytest.mark.gen_test
async def test_complete_of_a_pending_task_is_409_and_leaves_it_pending(http_client, base_url):
    created = await enqueue(http_client, base_url)

    response = await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete")

    problem = assert_problem(response, 409)
    assert "pending" in problem["detail"]
    assert await get_task(http_client, base_url, created["id"]) == created
    assert (await stats(http_client, base_url))["completed"] == 0


@pytest.mark.gen_test
async def test_completing_a_task_twice_is_409_and_keeps_the_first_completion(
    http_client, base_url, clock
):
    created = await enqueue(http_client, base_url)
    await dequeue(http_client, base_url)
    first = await complete(http_client, base_url, created["id"])
    clock.advance(60)

    response = await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete")

    problem = assert_problem(response, 409)
    assert "completed" in problem["detail"]
    assert await get_task(http_client, base_url, created["id"]) == first
    assert (await stats(http_client, base_url))["completed"] == 1


@pytest.mark.gen_test
async def test_complete_of_an_unknown_task_is_404(http_client, base_url):
    response = await request(http_client, base_url, "PUT", f"/tasks/{uuid.uuid4()}/complete")

    assert_problem(response, 404)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"colour": "red"}, "colour"),
        (["not", "an", "object"], "object"),
        (b"{not json", "JSON"),
    ],
)
async def test_complete_with_a_bad_body_is_400_and_the_task_stays_processing(
    http_client, base_url, body, named
):
    created = await enqueue(http_client, base_url)
    started = await dequeue(http_client, base_url)

    response = await request(http_client, base_url, "PUT", f"/tasks/{created['id']}/complete", body)

    problem = assert_problem(response, 400)
    assert named in problem["detail"]
    assert await get_task(http_client, base_url, created["id"]) == started


@pytest.mark.gen_test
async def test_a_completed_task_is_not_dequeued_again(http_client, base_url):
    created = await enqueue(http_client, base_url)
    await dequeue(http_client, base_url)
    await complete(http_client, base_url, created["id"])

    response = await request(http_client, base_url, "POST", "/tasks/dequeue")

    assert_problem(response, 404)
