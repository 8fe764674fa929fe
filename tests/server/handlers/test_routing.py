"""Routing and scheduling over HTTP (docs/api.md): queue, priority, delay and max_attempts
on POST /tasks; ?queue= on the consumer and queue routes; GET /queues; Idempotency-Key; batches;
view paging. Time is the `clock` fixture; the long-poll `wait` is in test_long_poll.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    at,
    parse_timestamp,
    request,
    stats,
)

ZERO = {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "scheduled": 0, "waiting": 0}
YEAR = 365 * 86400
BIG = 2**31 - 1


async def post(http_client, base_url, path: str, body: Any = None, **kwargs: Any):
    return await request(http_client, base_url, "POST", path, body, **kwargs)


async def get(http_client, base_url, path: str):
    return await request(http_client, base_url, "GET", path)


async def create(http_client, base_url, n: int = 0, **fields: Any) -> dict[str, Any]:
    response = await post(http_client, base_url, "/tasks", {"payload": {"n": n}, **fields})
    return assert_task_document(assert_json(response, 201))


async def batch(http_client, base_url, items: list[dict[str, Any]], status: int = 201):
    response = await post(http_client, base_url, "/tasks/batch", {"tasks": items})
    return assert_json(response, status)["ids"]


async def queue_stats(http_client, base_url, queue: str) -> dict[str, int]:
    return assert_json(await get(http_client, base_url, f"/queue/stats?queue={queue}"), 200)


async def view_ids(http_client, base_url, query: str = "") -> list[str]:
    document = assert_json(await get(http_client, base_url, f"/queue/view{query}"), 200)
    return [task["id"] for task in document]


def counts(**named: int) -> dict[str, int]:
    return {**ZERO, **named}


def named(problem: dict[str, Any], *words: str) -> None:
    for word in words:
        assert word in problem["detail"], (word, problem["detail"])


# --- POST /tasks fields --------------------------------------------------------------------


@pytest.mark.gen_test
async def test_enqueue_takes_queue_priority_delay_and_max_attempts_with_defaults(
    http_client, base_url, clock
):
    plain = await create(http_client, base_url)
    task = await create(
        http_client, base_url, queue="Mail_v2.eu-1", priority=-7, delay=90.5, max_attempts=9
    )

    assert (plain["queue"], plain["priority"], plain["status"]) == ("default", 0, "pending")
    assert (plain["max_attempts"], plain["available_at"]) == (3, plain["created_at"])
    assert (task["queue"], task["priority"], task["max_attempts"]) == ("Mail_v2.eu-1", -7, 9)
    assert task["status"] == "scheduled"
    assert parse_timestamp(task["available_at"]) == at(clock.now + 90.5)
    assert await queue_stats(http_client, base_url, "Mail_v2.eu-1") == counts(scheduled=1)


LIMITS = [("queue", "q" * 64), ("priority", BIG), ("priority", -BIG), ("max_attempts", 1000)]
LIMITS += [("delay", 0), ("delay", 0.25), ("delay", YEAR)]
BAD_FIELDS = [("queue", v) for v in ("", "a b", "q" * 65, "caf\u00e9", "a/b", 5, None, ["a"])]
BAD_FIELDS += [("priority", v) for v in ("1", 1.5, True, 2**31, -(2**31) - 1, None)]
BAD_FIELDS += [("delay", v) for v in (-1, -0.001, "5", YEAR + 1, False, None)]
BAD_FIELDS += [("max_attempts", v) for v in (0, 1001, "3", 2.5)]


@pytest.mark.gen_test
@pytest.mark.parametrize(("field", "value"), LIMITS)
async def test_enqueue_accepts_the_limits(http_client, base_url, field, value):
    task = await create(http_client, base_url, **{field: value})

    if field == "delay":
        assert task["status"] == ("scheduled" if value else "pending")
    else:
        assert task[field] == value


@pytest.mark.gen_test
@pytest.mark.parametrize(("field", "value"), BAD_FIELDS)
async def test_enqueue_refuses_a_bad_field_naming_it(http_client, base_url, field, value):
    response = await post(http_client, base_url, "/tasks", {"payload": {}, field: value})

    named(assert_problem(response, 400), f"'{field}'")
    assert await stats(http_client, base_url) == ZERO
    assert assert_json(await get(http_client, base_url, "/queues"), 200) == []


# --- ?queue= and GET /queues -----------------------------------------------------------------


@pytest.mark.gen_test
async def test_queues_are_separate_and_listed_with_their_counts(http_client, base_url):
    assert assert_json(await get(http_client, base_url, "/queues"), 200) == []
    a1 = await create(http_client, base_url, 1, queue="a")
    a2 = await create(http_client, base_url, 2, queue="a", priority=1)
    b1 = await create(http_client, base_url, 3, queue="b")
    await create(http_client, base_url, 4, queue="b", delay=60)

    assert_problem(await post(http_client, base_url, "/tasks/dequeue"), 404)
    taken = assert_json(await post(http_client, base_url, "/tasks/dequeue?queue=a"), 200)
    assert taken["id"] == a2["id"]
    assert await view_ids(http_client, base_url, "?queue=a") == [a1["id"]]
    assert await view_ids(http_client, base_url, "?queue=b") == [b1["id"]]
    assert await view_ids(http_client, base_url) == []
    assert await queue_stats(http_client, base_url, "a") == counts(pending=1, processing=1)
    assert await queue_stats(http_client, base_url, "zzz") == ZERO
    assert await stats(http_client, base_url) == counts(pending=2, processing=1, scheduled=1)
    listing = assert_json(await get(http_client, base_url, "/queues"), 200)
    assert listing == [
        {"name": "a", **ZERO, "pending": 1, "processing": 1},
        {"name": "b", **ZERO, "pending": 1, "scheduled": 1},
    ]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "path", ["/tasks/dequeue", "/tasks/dequeue/batch", "/queue/view", "/queue/stats"]
)
@pytest.mark.parametrize(
    "query", ["queue=", "queue=a%20b", "queue=" + "q" * 65, "queue=%C3%A9", "queue=a&queue=a"]
)
async def test_a_bad_queue_parameter_is_400_naming_it(http_client, base_url, path, query):
    await create(http_client, base_url)
    method = "POST" if path.startswith("/tasks") else "GET"

    response = await request(http_client, base_url, method, f"{path}?{query}")

    named(assert_problem(response, 400), "'queue'")
    assert await stats(http_client, base_url) == counts(pending=1)


# --- Idempotency-Key --------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_the_same_key_and_body_gives_the_same_task_and_creates_nothing(http_client, base_url):
    headers = {"Idempotency-Key": "~" * 255}  # the longest key
    body = b'{"payload": {"a": 1, "b": [1, 2]}, "priority": 3, "queue": "q"}'
    first = await post(http_client, base_url, "/tasks", body, headers=headers)
    task = assert_task_document(assert_json(first, 201))

    same = b'{ "queue":"q",\n "payload" : {"b":[1,2],"a":1},"priority":3 }'
    again = await post(http_client, base_url, "/tasks", same, headers=headers)

    replay = assert_task_document(assert_json(again, 200))
    assert replay["id"] == task["id"]
    assert again.headers["Location"] == f"/tasks/{task['id']}"
    assert await stats(http_client, base_url) == counts(pending=1)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "other",
    [{"payload": {"a": 2}}, {"payload": {"a": 1}, "queue": "x"}, {"payload": {"a": 1}, "delay": 1}],
)
async def test_the_same_key_with_another_body_is_422(http_client, base_url, other):
    headers = {"Idempotency-Key": "k-1"}
    await post(http_client, base_url, "/tasks", {"payload": {"a": 1}}, headers=headers)

    response = await post(http_client, base_url, "/tasks", other, headers=headers)

    assert_problem(response, 422)
    assert await stats(http_client, base_url) == counts(pending=1)


@pytest.mark.gen_test
@pytest.mark.parametrize("key", ["", "k" * 256, "cl\u00e9", "a b"])
async def test_an_invalid_idempotency_key_is_400(http_client, base_url, key):
    headers = {"Idempotency-Key": key}
    response = await post(http_client, base_url, "/tasks", {"payload": {}}, headers=headers)

    named(assert_problem(response, 400), "Idempotency-Key")
    assert await stats(http_client, base_url) == ZERO


@pytest.mark.gen_test
async def test_a_replay_of_a_deleted_task_answers_its_id(http_client, base_url):
    headers = {"Idempotency-Key": "gone"}
    first = assert_json(
        await post(http_client, base_url, "/tasks", {"payload": {}}, headers=headers), 201
    )
    deleted = await request(http_client, base_url, "DELETE", f"/tasks/{first['id']}")
    assert deleted.code == 204

    again = await post(http_client, base_url, "/tasks", {"payload": {}}, headers=headers)

    assert assert_json(again, 200) == {"id": first["id"]}
    assert await stats(http_client, base_url) == ZERO


# --- POST /tasks/batch -----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_batch_creates_every_task_in_order(http_client, base_url):
    items = [
        {"payload": {"n": 1}},
        {"payload": {"n": 2}, "priority": 9},
        {"payload": {}, "queue": "x"},
    ]
    ids = await batch(http_client, base_url, items)

    assert len(set(ids)) == 3
    assert await view_ids(http_client, base_url) == [ids[1], ids[0]]
    assert await view_ids(http_client, base_url, "?queue=x") == [ids[2]]


@pytest.mark.gen_test
async def test_a_batch_of_1000_goes_in_with_one_request(http_client, base_url):
    ids = await batch(http_client, base_url, [{"payload": {"n": n}} for n in range(1000)])

    assert len(set(ids)) == 1000
    assert await stats(http_client, base_url) == counts(pending=1000)
    assert await view_ids(http_client, base_url) == ids


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"tasks": [{"payload": {}}] * 1001}, ["'tasks'", "1001"]),
        ({"tasks": []}, ["'tasks'"]),
        ({"tasks": {"payload": {}}}, ["'tasks'"]),
        ({}, ["'tasks'"]),
        ({"tasks": [{"payload": {}}], "extra": 1}, ["'extra'"]),
        ({"tasks": [{"payload": {}}, {"payload": {}}, {"payload": 1}]}, ["tasks[2].payload"]),
        ({"tasks": [{"payload": {}}, {"payload": {}, "priority": "9"}]}, ["tasks[1].priority"]),
        ({"tasks": [{"payload": {}}, {"payload": {}, "queue": "a b"}]}, ["tasks[1].queue"]),
        ({"tasks": [{"payload": {}}, "not an object"]}, ["tasks[1]"]),
        ({"tasks": [{"payload": {}, "idempotency_key": ""}]}, ["tasks[0].idempotency_key"]),
        ({"tasks": [{"payload": {}, "bogus": 1}]}, ["tasks[0]", "'bogus'"]),
    ],
)
async def test_a_bad_batch_is_400_naming_the_item_and_creates_nothing(
    http_client, base_url, body, words
):
    response = await post(http_client, base_url, "/tasks/batch", body)

    named(assert_problem(response, 400), *words)
    assert await stats(http_client, base_url) == ZERO


@pytest.mark.gen_test
async def test_batch_items_carry_their_own_idempotency_keys(http_client, base_url):
    items = [{"payload": {"n": 1}, "idempotency_key": "one"}, {"payload": {"n": 2}}]
    ids = await batch(http_client, base_url, items)

    replayed = await batch(http_client, base_url, items[:1], status=200)
    mixed = await batch(http_client, base_url, [items[0], {"payload": {"n": 3}}])
    clash = {"tasks": [{"payload": {"n": 4}}, {"payload": {"n": 9}, "idempotency_key": "one"}]}
    conflict = await post(http_client, base_url, "/tasks/batch", clash)

    assert replayed == [ids[0]]
    assert mixed[0] == ids[0]
    assert mixed[1] not in ids
    assert_problem(conflict, 422)
    assert await stats(http_client, base_url) == counts(pending=3)


@pytest.mark.gen_test
async def test_a_header_key_and_a_batch_item_key_are_the_same_key(http_client, base_url):
    body = {"payload": {"n": 1}, "priority": 2}
    headers = {"Idempotency-Key": "shared"}
    first = await post(http_client, base_url, "/tasks", body, headers=headers)
    task_id = assert_json(first, 201)["id"]

    ids = await batch(http_client, base_url, [{**body, "idempotency_key": "shared"}], status=200)
    other = {"tasks": [{"payload": {"n": 2}, "idempotency_key": "shared"}]}
    conflict = await post(http_client, base_url, "/tasks/batch", other)

    assert ids == [task_id]
    assert_problem(conflict, 422)
    assert await stats(http_client, base_url) == counts(pending=1)


# --- POST /tasks/dequeue/batch ---------------------------------------------------------------


@pytest.mark.gen_test
async def test_dequeue_batch_leases_up_to_count_in_dequeue_order(http_client, base_url, clock):
    ids = await batch(
        http_client, base_url, [{"payload": {"n": n}, "priority": n % 2} for n in range(5)]
    )

    response = await post(http_client, base_url, "/tasks/dequeue/batch?count=3&lease=45")

    tasks = assert_json(response, 200)["tasks"]
    assert [task["id"] for task in tasks] == [ids[1], ids[3], ids[0]]
    for task in map(assert_task_document, tasks):
        assert (task["status"], task["attempts"]) == ("processing", 1)
        assert task["lease_id"]
        assert parse_timestamp(task["lease_expires_at"]) == at(clock.now + 45)
    assert len({task["lease_id"] for task in tasks}) == 3
    rest = assert_json(await post(http_client, base_url, "/tasks/dequeue/batch?count=1000"), 200)
    assert [task["id"] for task in rest["tasks"]] == [ids[2], ids[4]]
    assert assert_json(await post(http_client, base_url, "/tasks/dequeue/batch"), 200) == {
        "tasks": []
    }
    [other] = await batch(http_client, base_url, [{"payload": {}, "queue": "w"}] * 1)
    one = assert_json(await post(http_client, base_url, "/tasks/dequeue/batch?queue=w"), 200)
    assert [task["id"] for task in one["tasks"]] == [other]
    assert await stats(http_client, base_url) == counts(processing=6)


@pytest.mark.gen_test
@pytest.mark.parametrize("count", ["0", "1001", "-1", "abc", "1.5", "", "%201"])
async def test_a_bad_count_is_400(http_client, base_url, count):
    await create(http_client, base_url)

    response = await post(http_client, base_url, f"/tasks/dequeue/batch?count={count}")

    named(assert_problem(response, 400), "'count'")
    assert await stats(http_client, base_url) == counts(pending=1)


# --- POST /tasks/complete/batch --------------------------------------------------------------


@pytest.mark.gen_test
async def test_complete_batch_judges_each_item_on_its_own(http_client, base_url):
    ids = await batch(http_client, base_url, [{"payload": {"n": n}} for n in range(4)])
    leased = await post(http_client, base_url, "/tasks/dequeue/batch?count=3")
    one, two, three = assert_json(leased, 200)["tasks"]
    items = [
        {"id": one["id"], "lease_id": one["lease_id"], "result": {"ok": True}},
        {"id": "no-such-task"},
        {"id": two["id"], "lease_id": "stale-lease"},
        {"id": ids[3]},
        {"id": three["id"]},
    ]

    response = await post(http_client, base_url, "/tasks/complete/batch", {"tasks": items})

    results = assert_json(response, 200)["results"]
    assert [(r["id"], r["status"]) for r in results] == [
        (one["id"], 200),
        ("no-such-task", 404),
        (two["id"], 409),
        (ids[3], 409),
        (three["id"], 200),
    ]
    assert all(set(r) == {"id", "status"} for r in results if r["status"] == 200)
    assert all(r["detail"] for r in results if r["status"] != 200)
    assert "lost" in results[2]["detail"]
    done = assert_json(await get(http_client, base_url, f"/tasks/{one['id']}"), 200)
    assert done["result"] == {"ok": True}
    assert await stats(http_client, base_url) == counts(pending=1, processing=1, completed=2)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("extra", "word"),
    [
        ([], "'tasks'"),
        ([{"id": "x"}] * 1000, "'tasks'"),
        ([{"id": "x"}, {"lease_id": "l"}], "tasks[2].id"),
        ([{"id": 5}], "tasks[1].id"),
        ([{"id": "x", "error": "e"}], "'error'"),
    ],
)
async def test_a_bad_complete_batch_is_400_and_completes_nothing(
    http_client, base_url, extra, word
):
    await create(http_client, base_url)
    leased = assert_json(await post(http_client, base_url, "/tasks/dequeue"), 200)
    items = [{"id": leased["id"]}, *extra] if extra else []

    response = await post(http_client, base_url, "/tasks/complete/batch", {"tasks": items})

    named(assert_problem(response, 400), word)
    assert await stats(http_client, base_url) == counts(processing=1)


# --- GET /queue/view paging ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_view_pages_one_queue_with_its_total(http_client, base_url):
    ids = await batch(
        http_client, base_url, [{"payload": {"n": n}, "queue": "p"} for n in range(5)]
    )
    await create(http_client, base_url)

    response = await get(http_client, base_url, "/queue/view?queue=p&limit=2&offset=1")
    empty = await get(http_client, base_url, "/queue/view?queue=p&limit=0")
    past = await get(http_client, base_url, "/queue/view?queue=p&offset=99")

    assert [task["id"] for task in assert_json(response, 200)] == ids[1:3]
    assert response.headers["X-Total-Count"] == "5"
    assert (assert_json(empty, 200), empty.headers["X-Total-Count"]) == ([], "5")
    assert (assert_json(past, 200), past.headers["X-Total-Count"]) == ([], "5")


@pytest.mark.gen_test
async def test_view_shows_1000_by_default_and_refuses_a_limit_over_10000(http_client, base_url):
    first = await batch(http_client, base_url, [{"payload": {}}] * 1000)
    await batch(http_client, base_url, [{"payload": {}}])

    response = await get(http_client, base_url, "/queue/view")
    too_many = await get(http_client, base_url, "/queue/view?limit=10001")

    assert [task["id"] for task in assert_json(response, 200)] == first
    assert response.headers["X-Total-Count"] == "1001"
    named(assert_problem(too_many, 400), "'limit'")
