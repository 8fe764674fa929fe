"""GET and PATCH /queues/{name}: a queue's counts and settings; pausing and resuming a queue,
on every store."""

from __future__ import annotations

import asyncio

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop

from tests.server.handlers.helpers import assert_json, assert_problem, parse_timestamp, request
from tornado_queue.models import NewTask, QueueSettings, TaskStatus

UNSET = dict.fromkeys(QueueSettings.NAMES)
PAUSED = {**UNSET, "paused": True}


async def show(http_client, base_url, name: str) -> dict:
    return assert_json(await request(http_client, base_url, "GET", f"/queues/{name}"), 200)


async def patch(http_client, base_url, name: str, body) -> dict:
    response = await request(http_client, base_url, "PATCH", f"/queues/{name}", body)
    return assert_json(response, 200)


async def queue_names(http_client, base_url) -> list[str]:
    listed = assert_json(await request(http_client, base_url, "GET", "/queues"), 200)
    return [queue["name"] for queue in listed]


async def dequeue_status(http_client, base_url, queue: str) -> int:
    response = await request(http_client, base_url, "POST", f"/tasks/dequeue?queue={queue}")
    return response.code


@pytest.mark.gen_test
async def test_a_queue_shows_its_counts_and_unset_settings(http_client, base_url, store):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))

    shown = await show(http_client, base_url, "emails")

    assert shown == {
        "name": "emails",
        "pending": 1,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
        "settings": UNSET,
        "push_status": None,
    }
    listed = assert_json(await request(http_client, base_url, "GET", "/queues"), 200)
    counts = {key: value for key, value in shown.items() if key not in ("settings", "push_status")}
    assert counts in listed
    nothing = await show(http_client, base_url, "never-used")
    assert nothing["pending"] == 0 and nothing["settings"] == UNSET


@pytest.mark.gen_test
async def test_a_paused_queue_takes_tasks_but_delivers_none_until_resumed(
    http_client, base_url, store
):
    store.enqueue(NewTask(payload=b'{"n":1}', queue="emails"))
    store.enqueue(NewTask(payload=b'{"n":2}', queue="other"))

    paused = await patch(http_client, base_url, "emails", {"paused": True})

    assert paused["settings"] == PAUSED and paused["pending"] == 1
    assert await dequeue_status(http_client, base_url, "emails") == 404
    assert await dequeue_status(http_client, base_url, "other") == 200  # others go on
    created = await request(
        http_client, base_url, "POST", "/tasks", {"payload": {}, "queue": "emails"}
    )
    assert created.code == 201
    batch = await request(http_client, base_url, "POST", "/tasks/dequeue/batch?queue=emails")
    assert assert_json(batch, 200) == {"tasks": []}
    assert store.stats("emails")[TaskStatus.PENDING] == 2
    assert (await show(http_client, base_url, "emails"))["settings"] == PAUSED

    resumed = await patch(http_client, base_url, "emails", {"paused": None})

    assert resumed["settings"] == UNSET
    assert await dequeue_status(http_client, base_url, "emails") == 200


@pytest.mark.gen_test(timeout=10)
async def test_resuming_wakes_a_consumer_parked_on_the_paused_queue(
    http_client, base_url, store, app
):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))
    await patch(http_client, base_url, "emails", {"paused": True})
    waiters = app.services.waiters
    consumer = AsyncHTTPClient(force_instance=True)
    try:
        parked = asyncio.ensure_future(
            request(consumer, base_url, "POST", "/tasks/dequeue?queue=emails&wait=8")
        )
        loop = IOLoop.current()
        deadline = loop.time() + 5
        while waiters.count() == 0:  # parked: the paused queue answers as if empty
            assert loop.time() < deadline, "the consumer never parked"
            await asyncio.sleep(0.005)

        resumed_at = loop.time()
        await patch(http_client, base_url, "emails", {"paused": False})
        response = await parked

        assert assert_json(response, 200)["queue"] == "emails"
        assert loop.time() - resumed_at < 1.0  # at once, not when the wait runs out
    finally:
        consumer.close()


@pytest.mark.gen_test
async def test_a_queue_with_a_setting_is_kept_while_empty_and_goes_when_cleared(
    http_client, base_url, store
):
    created = await patch(http_client, base_url, "reports", {"paused": True})

    assert created["pending"] == 0 and created["settings"] == PAUSED
    names = [
        q["name"] for q in assert_json(await request(http_client, base_url, "GET", "/queues"), 200)
    ]
    assert "reports" in names
    assert store.configured_queues() == {"reports": QueueSettings(paused=True)}

    await patch(http_client, base_url, "reports", {"paused": None})

    names = [
        q["name"] for q in assert_json(await request(http_client, base_url, "GET", "/queues"), 200)
    ]
    assert "reports" not in names
    assert store.configured_queues() == {}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"paused": "yes"}, "setting 'paused'"),
        ({"paused": 1}, "setting 'paused'"),
        ({"paused": True, "speed": 3}, "unknown field 'speed'"),
        ([], "must be a JSON object"),
        (None, "is empty"),
    ],
)
@pytest.mark.gen_test
async def test_a_bad_patch_is_400_naming_the_problem_and_changes_nothing(
    http_client, base_url, store, body, named
):
    await patch(http_client, base_url, "emails", {"paused": True})

    response = await request(http_client, base_url, "PATCH", "/queues/emails", body)

    assert named in assert_problem(response, 400)["detail"]
    assert store.queue_settings("emails") == QueueSettings(paused=True)


@pytest.mark.gen_test
async def test_a_name_that_is_not_a_queue_name_is_400(http_client, base_url, store):
    for method, body in (("GET", None), ("PATCH", {"paused": True})):
        response = await request(http_client, base_url, method, "/queues/no%20spaces", body)
        assert "path parameter 'name'" in assert_problem(response, 400)["detail"]
    assert store.configured_queues() == {}


@pytest.mark.gen_test
async def test_metrics_show_which_queues_are_paused(http_client, base_url, store):
    store.enqueue(NewTask(payload=b"{}", queue="running"))
    await patch(http_client, base_url, "held", {"paused": True})

    response = await request(http_client, base_url, "GET", "/metrics")

    text = response.body.decode()
    assert 'taskqueue_queue_paused{queue="held"} 1.0' in text
    assert 'taskqueue_queue_paused{queue="running"} 0.0' in text


def lease_length(task: dict) -> float:
    started = parse_timestamp(task["started_at"])
    return (parse_timestamp(task["lease_expires_at"]) - started).total_seconds()


@pytest.mark.gen_test
async def test_a_queues_defaults_apply_where_the_request_gives_none(
    http_client, base_url, store, clock
):
    before = store.enqueue(NewTask(payload=b"{}", queue="emails"))

    shown = await patch(http_client, base_url, "emails", {"lease_seconds": 120, "max_attempts": 2})

    assert shown["settings"] == {**UNSET, "lease_seconds": 120.0, "max_attempts": 2}
    assert store.get(before.id).max_attempts == 3  # tasks enqueued before keep theirs

    async def enqueue(**fields) -> dict:
        body = {"payload": {}, "queue": "emails", **fields}
        return assert_json(await request(http_client, base_url, "POST", "/tasks", body), 201)

    assert (await enqueue())["max_attempts"] == 2
    assert (await enqueue(max_attempts=5))["max_attempts"] == 5
    other = await request(http_client, base_url, "POST", "/tasks", {"payload": {}})
    assert assert_json(other, 201)["max_attempts"] == 3  # the server's default elsewhere

    async def dequeue(query: str) -> dict:
        path = f"/tasks/dequeue?queue=emails{query}"
        return assert_json(await request(http_client, base_url, "POST", path), 200)

    assert lease_length(await dequeue("")) == pytest.approx(120)
    assert lease_length(await dequeue("&lease=10")) == pytest.approx(10)
    leased = await dequeue("")
    clock.advance(100)
    path = f"/tasks/{leased['id']}/heartbeat?lease_id={leased['lease_id']}"
    beat = assert_json(await request(http_client, base_url, "PUT", path), 200)
    expires = parse_timestamp(beat["lease_expires_at"]).timestamp()
    assert expires == pytest.approx(clock.time() + 120)
    default = await request(http_client, base_url, "POST", "/tasks/dequeue")
    assert lease_length(assert_json(default, 200)) == pytest.approx(30)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"lease_seconds": 0}, "setting 'lease_seconds' must be from 1"),
        ({"lease_seconds": "60"}, "setting 'lease_seconds' must be a number"),
        ({"max_attempts": 0}, "setting 'max_attempts' must be from 1"),
        ({"max_attempts": 1.5}, "setting 'max_attempts' must be an integer"),
        ({"max_attempts": True}, "setting 'max_attempts' must be an integer"),
        ({"max_attempts": 2, "lease_seconds": -1}, "setting 'lease_seconds'"),
    ],
)
@pytest.mark.gen_test
async def test_a_bad_default_is_400_and_changes_nothing(http_client, base_url, store, body, named):
    response = await request(http_client, base_url, "PATCH", "/queues/emails", body)

    assert named in assert_problem(response, 400)["detail"]
    assert store.queue_settings("emails") == QueueSettings()
