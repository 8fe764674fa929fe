"""At-least-once delivery over HTTP: leases, heartbeats, fencing, results, fail/retry, cancel.

Time is the `clock` fixture (a FakeClock the store reads): tests move it instead of sleeping.
The conftest policy is lease 30 s, max_attempts 3, retry backoff 1 s, retention 3600 s.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    at,
    complete,
    enqueue,
    get_task,
    parse_timestamp,
    request,
    stats,
)

DEFAULT_LEASE = 30.0
ZERO_STATS = {
    "pending": 0,
    "processing": 0,
    "completed": 0,
    "failed": 0,
    "scheduled": 0,
    "waiting": 0,
}


async def create(http_client, base_url, **fields: Any) -> dict[str, Any]:
    """POST /tasks with extra fields (e.g. max_attempts); the created task."""
    body = {"payload": {"job": "x"}, **fields}
    response = await request(http_client, base_url, "POST", "/tasks", body)
    return assert_task_document(assert_json(response, 201))


async def lease(http_client, base_url, seconds: Any = None) -> dict[str, Any]:
    """POST /tasks/dequeue, with `?lease=` when given; the leased task."""
    query = "" if seconds is None else f"?lease={seconds}"
    response = await request(http_client, base_url, "POST", f"/tasks/dequeue{query}")
    return assert_task_document(assert_json(response, 200))


async def assert_queue_empty(http_client, base_url) -> None:
    response = await request(http_client, base_url, "POST", "/tasks/dequeue")
    assert_problem(response, 404)


async def put(
    http_client, base_url, task_id: str, action: str, body: Any = None, *, query: str = ""
):
    return await request(http_client, base_url, "PUT", f"/tasks/{task_id}/{action}{query}", body)


async def fail(http_client, base_url, task_id: str, body: Any = None, *, query: str = ""):
    response = await put(http_client, base_url, task_id, "fail", body, query=query)
    return assert_task_document(assert_json(response, 200))


# --- POST /tasks/dequeue?lease= --------------------------------------------------------------


@pytest.mark.gen_test
async def test_dequeue_leases_the_task_for_the_default_lease_with_a_lease_id(
    http_client, base_url, clock
):
    created = await enqueue(http_client, base_url)

    task = await lease(http_client, base_url)

    assert task["id"] == created["id"]
    assert task["status"] == "processing"
    assert task["attempts"] == 1
    assert isinstance(task["lease_id"], str)
    assert task["lease_id"]
    assert parse_timestamp(task["lease_expires_at"]) == at(clock.now + DEFAULT_LEASE)
    assert (await get_task(http_client, base_url, task["id"]))["lease_id"] == task["lease_id"]


@pytest.mark.gen_test
@pytest.mark.parametrize("seconds", [1, 2.5, 600, 43200])
async def test_dequeue_honours_a_lease_from_1_to_43200_seconds(
    http_client, base_url, clock, seconds
):
    await enqueue(http_client, base_url)

    task = await lease(http_client, base_url, seconds)

    assert task["lease_expires_at"].endswith("Z")
    assert parse_timestamp(task["lease_expires_at"]) == at(clock.now + seconds)


@pytest.mark.gen_test
@pytest.mark.parametrize("seconds", ["0", "0.5", "-1", "43201", "x", "nan", "inf", "-inf", ""])
async def test_dequeue_with_a_bad_lease_is_a_400_naming_lease_and_takes_nothing(
    http_client, base_url, seconds
):
    created = await enqueue(http_client, base_url)

    response = await request(http_client, base_url, "POST", f"/tasks/dequeue?lease={seconds}")

    problem = assert_problem(response, 400)
    assert "'lease'" in problem["detail"]
    assert (await get_task(http_client, base_url, created["id"]))["status"] == "pending"
    assert await stats(http_client, base_url) == {**ZERO_STATS, "pending": 1}


@pytest.mark.gen_test
async def test_each_dequeue_of_the_same_task_gets_a_fresh_lease_id(http_client, base_url, clock):
    await enqueue(http_client, base_url)
    lease_ids = []
    for _ in range(3):
        task = await lease(http_client, base_url, 5)
        lease_ids.append(task["lease_id"])
        clock.advance(5)

    assert len(set(lease_ids)) == 3


@pytest.mark.gen_test
async def test_a_leased_task_is_not_handed_out_again_before_its_lease_ends(
    http_client, base_url, clock
):
    await enqueue(http_client, base_url)
    await lease(http_client, base_url, 10)

    clock.advance(9.9)

    await assert_queue_empty(http_client, base_url)
    assert await stats(http_client, base_url) == {**ZERO_STATS, "processing": 1}


# --- the story: a consumer vanishes ----------------------------------------------------------


@pytest.mark.gen_test
async def test_a_task_whose_consumer_vanished_is_redelivered_and_the_late_complete_is_refused(
    http_client, base_url, clock
):
    # Given a task taken by a consumer that then vanishes without a word
    created = await enqueue(http_client, base_url, {"job": "charge card"})
    first = await lease(http_client, base_url, 10)
    await assert_queue_empty(http_client, base_url)

    # When its lease runs out
    clock.advance(10.5)

    # Then another consumer gets the SAME task, on its second attempt, under a new lease
    second = await lease(http_client, base_url)
    assert second["id"] == created["id"] == first["id"]
    assert second["payload"] == {"job": "charge card"}
    assert second["attempts"] == 2
    assert second["lease_id"] != first["lease_id"]
    assert parse_timestamp(second["lease_expires_at"]) == at(clock.now + DEFAULT_LEASE)

    # And the first consumer, coming back late, cannot complete it with its old lease
    late = await put(
        http_client, base_url, first["id"], "complete", {"result": "stale"},
        query=f"?lease_id={first['lease_id']}",
    )  # fmt: skip
    problem = assert_problem(late, 409)
    assert "lease" in problem["detail"]
    assert "lost" in problem["detail"]
    still = await get_task(http_client, base_url, created["id"])
    assert still["status"] == "processing"
    assert still["lease_id"] == second["lease_id"]
    assert still["result"] is None

    # While the current holder completes it normally
    done = await put(
        http_client, base_url, second["id"], "complete", {"result": {"charged": True}},
        query=f"?lease_id={second['lease_id']}",
    )  # fmt: skip
    finished = assert_task_document(assert_json(done, 200))
    assert finished["status"] == "completed"
    assert finished["attempts"] == 2
    assert finished["result"] == {"charged": True}
    assert await stats(http_client, base_url) == {**ZERO_STATS, "completed": 1}


@pytest.mark.gen_test
async def test_a_poison_task_whose_consumers_keep_vanishing_ends_failed_with_lease_expired(
    http_client, base_url, clock
):
    created = await create(http_client, base_url, max_attempts=3)

    for attempt in (1, 2, 3):
        task = await lease(http_client, base_url, 5)
        assert task["id"] == created["id"]
        assert task["attempts"] == attempt
        clock.advance(5.5)  # the consumer vanished

    dead = await get_task(http_client, base_url, created["id"])
    assert dead["status"] == "failed"
    assert dead["error"] == "lease expired"
    assert dead["attempts"] == 3
    assert dead["lease_id"] is None
    assert dead["lease_expires_at"] is None
    assert dead["finished_at"] is not None
    assert parse_timestamp(dead["finished_at"]) == at(clock.now)
    await assert_queue_empty(http_client, base_url)
    assert await stats(http_client, base_url) == {**ZERO_STATS, "failed": 1}


@pytest.mark.gen_test
async def test_a_task_whose_lease_expired_goes_back_to_its_place_at_the_front(
    http_client, base_url, clock
):
    first = await enqueue(http_client, base_url, {"n": 1})
    second = await enqueue(http_client, base_url, {"n": 2})
    await lease(http_client, base_url, 10)
    third = await enqueue(http_client, base_url, {"n": 3})

    clock.advance(11)

    view = assert_json(await request(http_client, base_url, "GET", "/queue/view"), 200)
    assert [task["id"] for task in view] == [first["id"], second["id"], third["id"]]
    assert view[0]["status"] == "pending"
    assert view[0]["attempts"] == 1  # kept: the expired delivery counts
    assert view[0]["lease_id"] is None
    assert view[0]["started_at"] is None
    assert (await lease(http_client, base_url))["id"] == first["id"]


@pytest.mark.gen_test
async def test_an_expired_lease_is_applied_by_reap_while_the_server_is_idle(
    http_client, base_url, clock, store
):
    created = await enqueue(http_client, base_url)
    await lease(http_client, base_url, 10)
    became_ready: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: became_ready.append((queue, count)))
    clock.advance(10)

    # No request arrives; the server's periodic reap finds the expired lease on its own
    store.reap()

    assert became_ready == [("default", 1)]  # waiting consumers are told before any request comes
    assert await stats(http_client, base_url) == {**ZERO_STATS, "pending": 1}
    assert (await get_task(http_client, base_url, created["id"]))["status"] == "pending"


# --- PUT /tasks/{id}/heartbeat ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_heartbeat_extends_the_lease_from_now_so_the_task_is_kept(
    http_client, base_url, clock
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url, 10)
    clock.advance(8)

    response = await put(http_client, base_url, task["id"], "heartbeat", query="?lease=20")

    beat = assert_task_document(assert_json(response, 200))
    assert beat["status"] == "processing"
    assert beat["lease_id"] == task["lease_id"]
    assert beat["attempts"] == 1
    assert parse_timestamp(beat["lease_expires_at"]) == at(clock.now + 20)
    assert parse_timestamp(beat["lease_expires_at"]) > parse_timestamp(task["lease_expires_at"])

    # Past the original deadline the task is still held, not redelivered
    clock.advance(15)
    await assert_queue_empty(http_client, base_url)
    assert (await get_task(http_client, base_url, task["id"]))["status"] == "processing"

    # And past the extended one it is released as usual
    clock.advance(5)
    assert (await get_task(http_client, base_url, task["id"]))["status"] == "pending"


@pytest.mark.gen_test
async def test_heartbeat_without_lease_extends_by_the_default_lease(http_client, base_url, clock):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url, 5)
    clock.advance(4)

    response = await put(http_client, base_url, task["id"], "heartbeat")

    beat = assert_json(response, 200)
    assert parse_timestamp(beat["lease_expires_at"]) == at(clock.now + DEFAULT_LEASE)


@pytest.mark.gen_test
async def test_heartbeat_accepts_the_current_lease_id_in_the_query_or_the_body(
    http_client, base_url, clock
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url, 10)
    lease_id = task["lease_id"]

    by_query = await put(
        http_client, base_url, task["id"], "heartbeat", query=f"?lease=10&lease_id={lease_id}"
    )
    clock.advance(1)
    by_body = await put(
        http_client, base_url, task["id"], "heartbeat", {"lease_id": lease_id}, query="?lease=10"
    )

    assert parse_timestamp(assert_json(by_query, 200)["lease_expires_at"]) == at(clock.now + 9)
    assert parse_timestamp(assert_json(by_body, 200)["lease_expires_at"]) == at(clock.now + 10)


@pytest.mark.gen_test
@pytest.mark.parametrize("seconds", ["0", "43201", "x", "nan", "inf"])
async def test_heartbeat_with_a_bad_lease_is_a_400_naming_lease_and_changes_nothing(
    http_client, base_url, seconds
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url, 10)

    response = await put(http_client, base_url, task["id"], "heartbeat", query=f"?lease={seconds}")

    problem = assert_problem(response, 400)
    assert "'lease'" in problem["detail"]
    after = await get_task(http_client, base_url, task["id"])
    assert after["lease_expires_at"] == task["lease_expires_at"]


@pytest.mark.gen_test
async def test_heartbeat_of_a_pending_task_is_a_409_naming_its_state(http_client, base_url):
    created = await enqueue(http_client, base_url)

    response = await put(http_client, base_url, created["id"], "heartbeat")

    problem = assert_problem(response, 409)
    assert "pending" in problem["detail"]
    assert (await get_task(http_client, base_url, created["id"]))["status"] == "pending"


@pytest.mark.gen_test
async def test_heartbeat_of_a_completed_task_is_a_409(http_client, base_url):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    await complete(http_client, base_url, task["id"])

    response = await put(http_client, base_url, task["id"], "heartbeat")

    problem = assert_problem(response, 409)
    assert "completed" in problem["detail"]


@pytest.mark.gen_test
async def test_heartbeat_of_an_unknown_task_is_a_404(http_client, base_url):
    unknown = str(uuid.uuid4())

    response = await put(http_client, base_url, unknown, "heartbeat")

    assert unknown in assert_problem(response, 404)["detail"]


@pytest.mark.gen_test
async def test_heartbeat_with_an_unknown_body_field_is_a_400(http_client, base_url):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    response = await put(http_client, base_url, task["id"], "heartbeat", {"lease": 10})

    assert "lease" in assert_problem(response, 400)["detail"]


# --- PUT /tasks/{id}/complete with a result and a lease id -----------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "result",
    [
        {"url": "https://example.com/a.png", "size": [640, 480]},
        [1, "two", None, True, {"three": 3.5}],
        42,
        -0.125,
        "done",
        True,
        None,
        {},
        [],
    ],
    ids=repr,
)
async def test_complete_stores_any_json_result_and_sets_finished_at(
    http_client, base_url, clock, result
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    clock.advance(3)

    response = await put(http_client, base_url, task["id"], "complete", {"result": result})

    done = assert_task_document(assert_json(response, 200))
    assert done["status"] == "completed"
    assert done["result"] == result
    assert parse_timestamp(done["finished_at"]) == at(clock.now)
    assert done["lease_id"] is None
    assert done["lease_expires_at"] is None
    fetched = await get_task(http_client, base_url, task["id"])
    assert fetched["result"] == result
    assert fetched == done


@pytest.mark.gen_test
async def test_complete_without_a_body_keeps_the_seed_behaviour_with_a_null_result(
    http_client, base_url
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    done = await complete(http_client, base_url, task["id"])

    assert done["status"] == "completed"
    assert done["result"] is None
    assert done["finished_at"] is not None


@pytest.mark.gen_test
@pytest.mark.parametrize("where", ["query", "body", "both"])
async def test_complete_accepts_the_current_lease_id_in_the_query_or_the_body(
    http_client, base_url, where
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    lease_id = task["lease_id"]
    query = f"?lease_id={lease_id}" if where in ("query", "both") else ""
    body = {"result": 7}
    if where in ("body", "both"):
        body["lease_id"] = lease_id

    response = await put(http_client, base_url, task["id"], "complete", body, query=query)

    done = assert_json(response, 200)
    assert done["status"] == "completed"
    assert done["result"] == 7


@pytest.mark.gen_test
async def test_a_lease_id_in_the_query_and_another_in_the_body_is_a_400_that_changes_nothing(
    http_client, base_url
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    response = await put(
        http_client, base_url, task["id"], "complete",
        {"lease_id": task["lease_id"]}, query="?lease_id=someone-else",
    )  # fmt: skip

    problem = assert_problem(response, 400)
    assert "lease_id" in problem["detail"]
    after = await get_task(http_client, base_url, task["id"])
    assert after["status"] == "processing"
    assert after["lease_id"] == task["lease_id"]


@pytest.mark.gen_test
@pytest.mark.parametrize("action", ["complete", "fail", "heartbeat"])
async def test_a_stale_lease_id_is_a_409_saying_the_lease_was_lost_and_changes_nothing(
    http_client, base_url, clock, action
):
    # Given a task redelivered to a second consumer after the first one's lease ran out
    await enqueue(http_client, base_url)
    stale = await lease(http_client, base_url, 10)
    clock.advance(10)
    current = await lease(http_client, base_url, 60)

    # When the first consumer acts with its old lease id (in the body this time)
    response = await put(
        http_client, base_url, stale["id"], action, {"lease_id": stale["lease_id"]}
    )

    # Then it is refused, and the second consumer's lease is untouched
    problem = assert_problem(response, 409)
    assert "lost" in problem["detail"]
    assert stale["lease_id"] in problem["detail"]
    after = await get_task(http_client, base_url, current["id"])
    assert after["status"] == "processing"
    assert after["lease_id"] == current["lease_id"]
    assert after["lease_expires_at"] == current["lease_expires_at"]
    assert after["attempts"] == 2
    assert after["error"] is None


@pytest.mark.gen_test
async def test_a_lease_id_on_a_finished_task_is_a_409_saying_the_lease_was_lost(
    http_client, base_url
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    await complete(http_client, base_url, task["id"])

    response = await put(
        http_client, base_url, task["id"], "complete", query=f"?lease_id={task['lease_id']}"
    )

    assert "lost" in assert_problem(response, 409)["detail"]


# --- PUT /tasks/{id}/fail --------------------------------------------------------------------


@pytest.mark.gen_test
async def test_fail_with_retry_schedules_the_task_after_the_backoff_then_it_is_pending(
    http_client, base_url, clock
):
    created = await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    failed = await fail(http_client, base_url, task["id"], {"error": "boom", "retry": True})

    # Scheduled for the 1 s base backoff, not ready yet
    assert failed["status"] == "scheduled"
    assert failed["error"] == "boom"
    assert failed["attempts"] == 1
    assert failed["lease_id"] is None
    assert failed["finished_at"] is None
    assert parse_timestamp(failed["available_at"]) == at(clock.now + 1)
    assert parse_timestamp(failed["available_at"]) > parse_timestamp(created["available_at"])
    assert await stats(http_client, base_url) == {**ZERO_STATS, "scheduled": 1}
    await assert_queue_empty(http_client, base_url)

    # Once the backoff has passed it is pending again, by itself
    clock.advance(1)
    assert await stats(http_client, base_url) == {**ZERO_STATS, "pending": 1}
    again = await lease(http_client, base_url)
    assert again["id"] == created["id"]
    assert again["attempts"] == 2


@pytest.mark.gen_test
async def test_the_retry_backoff_doubles_with_each_failed_attempt(http_client, base_url, clock):
    await create(http_client, base_url, max_attempts=4)
    waits = []
    for _ in range(3):
        task = await lease(http_client, base_url)
        failed = await fail(http_client, base_url, task["id"], {"error": "boom"})
        assert failed["status"] == "scheduled"
        waits.append((parse_timestamp(failed["available_at"]) - at(clock.now)).total_seconds())
        clock.advance(waits[-1])

    assert waits == [1.0, 2.0, 4.0]


@pytest.mark.gen_test
async def test_fail_without_a_body_retries_with_a_null_error(http_client, base_url):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    failed = await fail(http_client, base_url, task["id"])

    assert failed["status"] == "scheduled"
    assert failed["error"] is None


@pytest.mark.gen_test
async def test_fail_with_retry_false_makes_the_task_failed_at_once(http_client, base_url, clock):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    clock.advance(2)

    failed = await fail(http_client, base_url, task["id"], {"error": "boom", "retry": False})

    assert failed["status"] == "failed"
    assert failed["error"] == "boom"
    assert failed["attempts"] == 1
    assert failed["lease_id"] is None
    assert parse_timestamp(failed["finished_at"]) == at(clock.now)
    assert await get_task(http_client, base_url, task["id"]) == failed
    assert await stats(http_client, base_url) == {**ZERO_STATS, "failed": 1}
    clock.advance(3600 - 1)
    await assert_queue_empty(http_client, base_url)


@pytest.mark.gen_test
async def test_fail_on_the_last_attempt_makes_the_task_failed_even_with_retry(
    http_client, base_url, clock
):
    created = await create(http_client, base_url, max_attempts=2)
    first = await lease(http_client, base_url)
    assert (await fail(http_client, base_url, first["id"], {"error": "e1"}))["status"] == (
        "scheduled"
    )
    clock.advance(1)
    second = await lease(http_client, base_url)

    dead = await fail(http_client, base_url, second["id"], {"error": "e2", "retry": True})

    assert dead["id"] == created["id"]
    assert dead["status"] == "failed"
    assert dead["attempts"] == 2
    assert dead["error"] == "e2"
    assert dead["finished_at"] is not None
    clock.advance(3600 - 1)
    await assert_queue_empty(http_client, base_url)
    assert await stats(http_client, base_url) == {**ZERO_STATS, "failed": 1}


@pytest.mark.gen_test
async def test_a_task_with_max_attempts_1_fails_for_good_on_its_first_failure(
    http_client, base_url
):
    await create(http_client, base_url, max_attempts=1)
    task = await lease(http_client, base_url)

    dead = await fail(http_client, base_url, task["id"], {"error": "boom"})

    assert dead["status"] == "failed"
    assert dead["attempts"] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("where", ["query", "body"])
async def test_fail_accepts_the_current_lease_id_in_the_query_or_the_body(
    http_client, base_url, where
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    body: dict[str, Any] = {"error": "boom", "retry": False}
    query = ""
    if where == "body":
        body["lease_id"] = task["lease_id"]
    else:
        query = f"?lease_id={task['lease_id']}"

    failed = await fail(http_client, base_url, task["id"], body, query=query)

    assert failed["status"] == "failed"


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"error": 5}, "error"),
        ({"error": ["boom"]}, "error"),
        ({"error": {"message": "boom"}}, "error"),
        ({"retry": "yes"}, "retry"),
        ({"retry": 1}, "retry"),
        ({"retry": None}, "retry"),
        ({"error": "boom", "reason": "disk full"}, "reason"),
        ({"errors": "boom"}, "errors"),
        ({"lease_id": 12}, "lease_id"),
        (["boom"], "object"),
        ('"boom"', "object"),
    ],
    ids=repr,
)
async def test_fail_with_a_bad_body_is_a_400_naming_the_problem_and_changes_nothing(
    http_client, base_url, body, named
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    response = await put(http_client, base_url, task["id"], "fail", body)

    problem = assert_problem(response, 400)
    assert named in problem["detail"]
    after = await get_task(http_client, base_url, task["id"])
    assert after == task
    assert await stats(http_client, base_url) == {**ZERO_STATS, "processing": 1}


@pytest.mark.gen_test
async def test_fail_of_a_pending_task_is_a_409(http_client, base_url):
    created = await enqueue(http_client, base_url)

    response = await put(http_client, base_url, created["id"], "fail", {"error": "boom"})

    assert "pending" in assert_problem(response, 409)["detail"]
    after = await get_task(http_client, base_url, created["id"])
    assert after["status"] == "pending"
    assert after["error"] is None


@pytest.mark.gen_test
async def test_fail_of_an_unknown_task_is_a_404(http_client, base_url):
    response = await put(http_client, base_url, str(uuid.uuid4()), "fail", {"error": "boom"})

    assert_problem(response, 404)


# --- POST /tasks/{id}/retry ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_retry_puts_a_failed_task_back_to_pending_with_attempts_reset(
    http_client, base_url, clock
):
    created = await create(http_client, base_url, max_attempts=2)
    task = await lease(http_client, base_url)
    await fail(http_client, base_url, task["id"], {"error": "boom", "retry": False})
    clock.advance(5)

    response = await request(http_client, base_url, "POST", f"/tasks/{task['id']}/retry")

    retried = assert_task_document(assert_json(response, 200))
    assert retried["status"] == "pending"
    assert retried["attempts"] == 0
    assert retried["max_attempts"] == 2
    assert retried["payload"] == created["payload"]
    assert retried["created_at"] == created["created_at"]
    assert parse_timestamp(retried["available_at"]) == at(clock.now)
    for field in ("error", "finished_at", "result", "lease_id", "lease_expires_at"):
        assert retried[field] is None, field
    assert await stats(http_client, base_url) == {**ZERO_STATS, "pending": 1}
    again = await lease(http_client, base_url)
    assert again["id"] == created["id"]
    assert again["attempts"] == 1


@pytest.mark.gen_test
async def test_a_retried_task_has_no_started_at_like_any_other_pending_task(http_client, base_url):
    # Every other way back to pending (expired lease, release, a due retry) clears started_at
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    await fail(http_client, base_url, task["id"], {"error": "boom", "retry": False})

    response = await request(http_client, base_url, "POST", f"/tasks/{task['id']}/retry")

    retried = assert_json(response, 200)
    assert retried["status"] == "pending"
    assert retried["started_at"] is None
    assert (await get_task(http_client, base_url, task["id"]))["started_at"] is None


@pytest.mark.gen_test
async def test_a_task_dead_from_expired_leases_can_be_retried(http_client, base_url, clock):
    created = await create(http_client, base_url, max_attempts=1)
    await lease(http_client, base_url, 1)
    clock.advance(1)
    assert (await get_task(http_client, base_url, created["id"]))["error"] == "lease expired"

    response = await request(http_client, base_url, "POST", f"/tasks/{created['id']}/retry")

    assert assert_json(response, 200)["status"] == "pending"
    assert (await lease(http_client, base_url))["attempts"] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("state", ["pending", "processing", "completed", "scheduled"])
async def test_retry_of_a_task_that_is_not_failed_is_a_409_naming_its_state(
    http_client, base_url, state
):
    task = await task_in_state(http_client, base_url, state)

    response = await request(http_client, base_url, "POST", f"/tasks/{task['id']}/retry")

    assert state in assert_problem(response, 409)["detail"]
    assert (await get_task(http_client, base_url, task["id"]))["status"] == state


@pytest.mark.gen_test
async def test_retry_of_an_unknown_task_is_a_404(http_client, base_url):
    response = await request(http_client, base_url, "POST", f"/tasks/{uuid.uuid4()}/retry")

    assert_problem(response, 404)


# --- DELETE /tasks/{id} ----------------------------------------------------------------------


async def task_in_state(http_client, base_url, state: str) -> dict[str, Any]:
    """A task brought to `state` through the API (the queue holds nothing else)."""
    created = await enqueue(http_client, base_url)
    if state != "pending":
        task = await lease(http_client, base_url)
        if state == "completed":
            await complete(http_client, base_url, task["id"])
        elif state == "failed":
            await fail(http_client, base_url, task["id"], {"retry": False})
        elif state == "scheduled":
            await fail(http_client, base_url, task["id"], {"error": "later"})
    task = await get_task(http_client, base_url, created["id"])
    assert task["status"] == state
    return task


@pytest.mark.gen_test
@pytest.mark.parametrize("state", ["pending", "scheduled", "completed", "failed"])
async def test_delete_removes_a_task_that_is_not_processing_with_an_empty_204(
    http_client, base_url, clock, state
):
    task = await task_in_state(http_client, base_url, state)

    response = await request(http_client, base_url, "DELETE", f"/tasks/{task['id']}")

    assert response.code == 204
    assert response.body == b""
    gone = await request(http_client, base_url, "GET", f"/tasks/{task['id']}")
    assert_problem(gone, 404)
    assert await stats(http_client, base_url) == ZERO_STATS
    # Whatever was due for it later (a retry, retention) finds nothing and counts nothing
    clock.advance(3600 * 2)
    assert await stats(http_client, base_url) == ZERO_STATS
    await assert_queue_empty(http_client, base_url)


@pytest.mark.gen_test
async def test_delete_of_a_processing_task_is_a_409_and_keeps_it(http_client, base_url):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)

    response = await request(http_client, base_url, "DELETE", f"/tasks/{task['id']}")

    assert "processing" in assert_problem(response, 409)["detail"]
    assert await get_task(http_client, base_url, task["id"]) == task


@pytest.mark.gen_test
async def test_delete_of_an_unknown_task_is_a_404_and_a_second_delete_too(http_client, base_url):
    created = await enqueue(http_client, base_url)
    unknown = str(uuid.uuid4())

    assert (
        unknown
        in assert_problem(await request(http_client, base_url, "DELETE", f"/tasks/{unknown}"), 404)[
            "detail"
        ]
    )
    assert (await request(http_client, base_url, "DELETE", f"/tasks/{created['id']}")).code == 204
    assert_problem(await request(http_client, base_url, "DELETE", f"/tasks/{created['id']}"), 404)


@pytest.mark.gen_test
async def test_deleting_a_task_from_the_middle_keeps_the_others_in_order(http_client, base_url):
    tasks = [await enqueue(http_client, base_url, {"n": n}) for n in range(5)]

    for task in (tasks[1], tasks[3]):
        response = await request(http_client, base_url, "DELETE", f"/tasks/{task['id']}")
        assert response.code == 204

    view = await request(http_client, base_url, "GET", "/queue/view")
    assert [task["id"] for task in assert_json(view, 200)] == [tasks[n]["id"] for n in (0, 2, 4)]
    assert view.headers["X-Total-Count"] == "3"
    dequeued = [(await lease(http_client, base_url))["id"] for _ in range(3)]
    assert dequeued == [tasks[n]["id"] for n in (0, 2, 4)]
    await assert_queue_empty(http_client, base_url)


# --- retention -------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_finished_task_is_forgotten_after_the_retention_period(
    http_client, base_url, clock
):
    await enqueue(http_client, base_url)
    task = await lease(http_client, base_url)
    await complete(http_client, base_url, task["id"])

    clock.advance(3599)
    assert (await get_task(http_client, base_url, task["id"]))["status"] == "completed"
    clock.advance(1)

    assert_problem(await request(http_client, base_url, "GET", f"/tasks/{task['id']}"), 404)
    assert await stats(http_client, base_url) == ZERO_STATS


# --- POST /tasks with max_attempts -----------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize("max_attempts", [1, 7, 1000])
async def test_enqueue_takes_max_attempts_from_1_to_1000(http_client, base_url, max_attempts):
    created = await create(http_client, base_url, max_attempts=max_attempts)

    assert created["max_attempts"] == max_attempts
    assert (await get_task(http_client, base_url, created["id"]))["max_attempts"] == max_attempts


@pytest.mark.gen_test
async def test_enqueue_without_max_attempts_uses_the_configured_default(http_client, base_url):
    created = await enqueue(http_client, base_url)

    assert created["max_attempts"] == 3


@pytest.mark.gen_test
@pytest.mark.parametrize("max_attempts", [0, -1, 1001, "3", True, 2.5, [3]], ids=repr)
async def test_enqueue_with_a_bad_max_attempts_is_a_400_naming_it_and_creates_nothing(
    http_client, base_url, max_attempts
):
    body = {"payload": {"job": "x"}, "max_attempts": max_attempts}

    response = await request(http_client, base_url, "POST", "/tasks", body)

    assert "max_attempts" in assert_problem(response, 400)["detail"]
    assert await stats(http_client, base_url) == ZERO_STATS


# --- GET /queue/stats ------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_stats_count_every_state_including_failed_and_scheduled(http_client, base_url, clock):
    for state in ("completed", "failed", "scheduled", "processing", "pending"):
        await task_in_state(http_client, base_url, state)

    assert await stats(http_client, base_url) == {
        "pending": 1,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "scheduled": 1,
        "waiting": 0,
    }
    clock.advance(1)  # the scheduled retry falls due
    assert await stats(http_client, base_url) == {
        "pending": 2,
        "processing": 1,
        "completed": 1,
        "failed": 1,
        "scheduled": 0,
        "waiting": 0,
    }
