"""Queue control over HTTP, on every store: the delivery settings, ordered groups, dead-letter
queues, expiry, purging a queue's tasks and listing every state; bad input is a 400 naming it
and changes nothing; parked consumers wake when a slot frees or a rate window opens."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    at,
    request,
)
from tornado_queue.models import NewTask, QueueSettings, RateLimit, TaskStatus

SETTINGS = {
    "paused": False,
    "max_processing": 4,
    "rate_limit": {"tasks": 10, "seconds": 2.5},
    "lease_seconds": 60.0,
    "max_attempts": 5,
    "retry_backoff": 0.5,
    "dead_letter_queue": "emails-dead",
    "ttl_seconds": 3600.0,
}


async def call(client, base_url: str, method: str, path: str, body: Any = None) -> Any:
    """A request that must succeed; its document (None for an empty answer)."""
    response = await request(client, base_url, method, path, body)
    assert response.code in (200, 201, 204), response.body
    return assert_json(response, response.code) if response.body else None


async def enqueue(client, base_url: str, **fields: Any) -> dict[str, Any]:
    return await call(client, base_url, "POST", "/tasks", {"payload": {}, **fields})


async def dequeue(client, base_url: str, queue: str = "default") -> dict[str, Any] | None:
    response = await request(client, base_url, "POST", f"/tasks/dequeue?queue={queue}")
    return None if response.code == 404 else assert_json(response, 200)


async def complete(client, base_url: str, task: dict[str, Any]) -> None:
    path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
    await call(client, base_url, "PUT", path)


async def parked_until(app, predicate) -> None:
    loop = IOLoop.current()
    deadline = loop.time() + 5
    while not predicate(app.services.waiters.count()):
        assert loop.time() < deadline, "the consumer never parked"
        await asyncio.sleep(0.005)


# -- settings ---------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_every_setting_is_set_shown_and_cleared(http_client, base_url, store):
    shown = await call(http_client, base_url, "PATCH", "/queues/emails", SETTINGS)

    every = {**SETTINGS, "push": None}  # every setting is shown, push unset
    assert shown["settings"] == every
    assert (await call(http_client, base_url, "GET", "/queues/emails"))["settings"] == every
    assert store.queue_settings("emails").rate_limit == RateLimit(10, 2.5)

    cleared = await call(http_client, base_url, "PATCH", "/queues/emails", dict.fromkeys(SETTINGS))

    assert cleared["settings"] == dict.fromkeys(QueueSettings.NAMES)
    assert store.configured_queues() == {}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"max_processing": 0}, "setting 'max_processing' must be from 1 to 100000"),
        ({"max_processing": 2.5}, "setting 'max_processing' must be an integer"),
        ({"rate_limit": 5}, "setting 'rate_limit' must be an object"),
        ({"rate_limit": {"tasks": 5}}, "setting 'rate_limit' needs field 'seconds'"),
        ({"rate_limit": {"tasks": 5, "seconds": 1, "burst": 2}}, "unknown field 'burst'"),
        ({"rate_limit": {"tasks": 0, "seconds": 1}}, "setting 'rate_limit.tasks' must be from"),
        ({"rate_limit": {"tasks": 5, "seconds": 0}}, "'rate_limit.seconds' must be more than 0"),
        ({"rate_limit": {"tasks": 5, "seconds": "1"}}, "'rate_limit.seconds' must be a number"),
        ({"retry_backoff": -1}, "setting 'retry_backoff' must be from 0 to 3600"),
        ({"retry_backoff": 3601}, "setting 'retry_backoff' must be from 0 to 3600"),
        ({"dead_letter_queue": "emails"}, "must name another queue, not 'emails' itself"),
        ({"dead_letter_queue": "no spaces"}, "setting 'dead_letter_queue' must be 1 to 64"),
        ({"dead_letter_queue": 3}, "setting 'dead_letter_queue' must be 1 to 64"),
        ({"ttl_seconds": 0.5}, "setting 'ttl_seconds' must be from 1 to 31536000"),
        ({"ttl_seconds": True}, "setting 'ttl_seconds' must be a number"),
        ({"max_processing": 3, "ttl_seconds": 0}, "setting 'ttl_seconds'"),
    ],
)
@pytest.mark.gen_test
async def test_a_bad_setting_is_400_naming_it_and_changes_nothing(
    http_client, base_url, store, body, named
):
    await call(http_client, base_url, "PATCH", "/queues/emails", {"max_processing": 9})

    response = await request(http_client, base_url, "PATCH", "/queues/emails", body)

    assert named in assert_problem(response, 400)["detail"]
    assert store.queue_settings("emails") == QueueSettings(max_processing=9)


# -- task fields ------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_task_shows_its_group_and_expiry(http_client, base_url, clock: FakeClock):
    task = await enqueue(http_client, base_url, group="customer-42", expires_in=90)

    assert_task_document(task)
    assert task["group"] == "customer-42" and task["dead_lettered_from"] is None
    assert task["expires_at"] == at(clock.time() + 90).isoformat().replace("+00:00", "Z")
    plain = await enqueue(http_client, base_url)
    assert (plain["group"], plain["expires_at"]) == (None, None)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"group": ""}, "field 'group' must be 1 to 128 characters"),
        ({"group": "g" * 129}, "field 'group' must be 1 to 128 characters"),
        ({"group": "a\u0000b"}, "without control characters"),
        ({"group": 7}, "field 'group' must be a string"),
        ({"expires_in": 0}, "field 'expires_in' must be from 1 to 31536000"),
        ({"expires_in": "60"}, "field 'expires_in' must be a number"),
    ],
)
@pytest.mark.gen_test
async def test_a_bad_group_or_expiry_is_400_and_creates_nothing(
    http_client, base_url, store, fields, named
):
    for path, body in (
        ("/tasks", {"payload": {}, **fields}),
        ("/tasks/batch", {"tasks": [{"payload": {}}, {"payload": {}, **fields}]}),
    ):
        response = await request(http_client, base_url, "POST", path, body)
        detail = assert_problem(response, 400)["detail"]
        assert named.replace("field 'group'", "").replace("field 'expires_in'", "") in detail
    assert "tasks[1].group" in detail or "tasks[1].expires_in" in detail
    assert store.stats() == dict.fromkeys(TaskStatus, 0)


# -- groups, caps, rates ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_group_is_delivered_one_task_at_a_time(http_client, base_url):
    batch = [{"payload": {"n": n}, "group": "order-7"} for n in range(3)]
    await call(http_client, base_url, "POST", "/tasks/batch", {"tasks": batch})
    await enqueue(http_client, base_url, payload={"n": "other"})

    first = await dequeue(http_client, base_url)
    other = await dequeue(http_client, base_url)
    assert (first["payload"], other["payload"]) == ({"n": 0}, {"n": "other"})
    assert await dequeue(http_client, base_url) is None
    view = await call(http_client, base_url, "GET", "/queue/view")
    assert [task["payload"] for task in view] == [{"n": 1}, {"n": 2}]

    await complete(http_client, base_url, first)

    assert (await dequeue(http_client, base_url))["payload"] == {"n": 1}


@pytest.mark.gen_test(timeout=10)
async def test_a_freed_slot_wakes_a_consumer_parked_on_a_capped_queue(
    http_client, base_url, store, app
):
    store.enqueue_many([NewTask(payload=b"{}")] * 2)
    await call(http_client, base_url, "PATCH", "/queues/default", {"max_processing": 1})
    held = await dequeue(http_client, base_url)
    consumer = AsyncHTTPClient(force_instance=True)
    try:
        parked = asyncio.ensure_future(request(consumer, base_url, "POST", "/tasks/dequeue?wait=8"))
        await parked_until(app, lambda count: count == 1)
        freed_at = IOLoop.current().time()

        await complete(http_client, base_url, held)

        assert_json(await parked, 200)
        assert IOLoop.current().time() - freed_at < 1.0
    finally:
        consumer.close()


@pytest.mark.gen_test(timeout=10)
async def test_a_consumer_parked_on_a_rate_limited_queue_gets_a_task_when_the_window_opens(
    http_client, base_url, store, app, clock: FakeClock
):
    store.enqueue_many([NewTask(payload=b"{}")] * 3)
    limit = {"rate_limit": {"tasks": 1, "seconds": 60}}
    await call(http_client, base_url, "PATCH", "/queues/default", limit)
    assert await dequeue(http_client, base_url) is not None
    consumer = AsyncHTTPClient(force_instance=True)
    try:
        parked = asyncio.ensure_future(request(consumer, base_url, "POST", "/tasks/dequeue?wait=8"))
        await parked_until(app, lambda count: count == 1)
        clock.advance(60)  # the window opens; the next store call finds it due

        await call(http_client, base_url, "GET", "/queue/stats")

        assert_json(await parked, 200)
    finally:
        consumer.close()


# -- dead letters and expiry ------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_dead_task_moves_to_the_dead_letter_queue(http_client, base_url):
    await call(http_client, base_url, "PATCH", "/queues/emails", {"dead_letter_queue": "parked"})
    task = await enqueue(http_client, base_url, queue="emails")
    leased = await dequeue(http_client, base_url, "emails")

    path = f"/tasks/{task['id']}/fail?lease_id={leased['lease_id']}"
    moved = await call(http_client, base_url, "PUT", path, {"error": "bounced", "retry": False})

    assert (moved["queue"], moved["status"], moved["attempts"]) == ("parked", "pending", 0)
    assert (moved["error"], moved["dead_lettered_from"]) == ("bounced", "emails")
    totals = await call(http_client, base_url, "GET", "/queue/totals")
    assert (totals["dead_lettered"], totals["failed"]) == (1, 0)
    assert (await dequeue(http_client, base_url, "parked"))["id"] == task["id"]
    metrics = (await request(http_client, base_url, "GET", "/metrics")).body.decode()
    assert "taskqueue_dead_lettered_total" in metrics


@pytest.mark.gen_test
async def test_an_expired_task_is_failed_undelivered_and_counted(
    http_client, base_url, clock: FakeClock
):
    await call(http_client, base_url, "PATCH", "/queues/default", {"ttl_seconds": 30})
    task = await enqueue(http_client, base_url)
    clock.advance(30)

    assert await dequeue(http_client, base_url) is None
    expired = await call(http_client, base_url, "GET", f"/tasks/{task['id']}")
    assert expired["status"] == "failed" and expired["error"].startswith("expired")
    totals = await call(http_client, base_url, "GET", "/queue/totals")
    assert (totals["expired"], totals["failed"]) == (1, 0)
    metrics = (await request(http_client, base_url, "GET", "/metrics")).body.decode()
    assert 'taskqueue_expired_total{queue="default"} 1.0' in metrics


# -- purge and listing ------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_purge_deletes_one_states_tasks_and_says_how_many(http_client, base_url, store):
    store.enqueue_many([NewTask(payload=b"{}", queue="emails")] * 3)
    store.enqueue_many([NewTask(payload=b"{}", queue="emails", delay=60)] * 2)
    held = store.dequeue(queue="emails")

    pending = await call(http_client, base_url, "DELETE", "/queues/emails/tasks?status=pending")
    scheduled = await call(http_client, base_url, "DELETE", "/queues/emails/tasks?status=scheduled")
    nothing = await call(http_client, base_url, "DELETE", "/queues/nobody/tasks?status=failed")

    assert (pending, scheduled, nothing) == ({"deleted": 2}, {"deleted": 2}, {"deleted": 0})
    assert store.stats("emails")[TaskStatus.PROCESSING] == 1
    assert store.get(held.id) is not None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("?status=processing", "processing tasks are never purged"),
        ("", "query parameter 'status' is required"),
        ("?status=done", "must be one of pending, scheduled, waiting, completed, failed"),
        ("?status=failed&status=pending", "'status'"),
    ],
)
@pytest.mark.gen_test
async def test_a_purge_without_a_purgeable_status_is_400_and_deletes_nothing(
    http_client, base_url, store, query, named
):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))
    store.dequeue(queue="emails")
    store.enqueue(NewTask(payload=b"{}", queue="emails"))

    response = await request(http_client, base_url, "DELETE", f"/queues/emails/tasks{query}")

    assert named in assert_problem(response, 400)["detail"]
    assert store.stats("emails")[TaskStatus.PENDING] == 1
    assert store.stats("emails")[TaskStatus.PROCESSING] == 1


@pytest.mark.gen_test
async def test_every_state_can_be_listed(http_client, base_url, store):
    store.enqueue(NewTask(payload=b"{}", delay=60))
    store.enqueue_many([NewTask(payload=b"{}")] * 2)
    done = store.dequeue()
    store.complete(done.id, None, done.lease_id)

    for status, count in (("scheduled", 1), ("completed", 1), ("pending", 1)):
        response = await request(http_client, base_url, "GET", f"/queue/view?status={status}")
        listed = assert_json(response, 200)
        assert [task["status"] for task in listed] == [status] * count
        assert response.headers["X-Total-Count"] == str(count)
