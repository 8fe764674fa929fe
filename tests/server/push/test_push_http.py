"""Push delivery over HTTP on every store (docs/push.md): the server POSTs a push queue's tasks
to a real loopback receiver, signed per Standard Webhooks (checked with the independent
`standardwebhooks` package), and completes, retries or kills each by the receiver's answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.server.handlers.helpers import assert_json, assert_problem, parse_timestamp, request
from tests.server.push.receiver import Answer, Received, Receiver
from tornado_queue.config import Settings
from tornado_queue.server.push.dispatcher import LEASE_MARGIN_SECONDS


@pytest.fixture
def settings() -> Settings:
    return Settings(max_body_bytes=64 * 1024, push_allow="127.0.0.1")


async def call(client, base_url: str, method: str, path: str, body: Any = None, **kw) -> Any:
    response = await request(client, base_url, method, path, body, **kw)
    assert response.code in (200, 201), response.body
    return assert_json(response, response.code)


async def set_push(client, base_url: str, url: str, queue: str = "hooks", **more: Any) -> dict:
    extra = more.pop("settings", {})
    return await call(
        client,
        base_url,
        "PATCH",
        f"/queues/{queue}",
        {"push": {"url": url, **more}, **extra},
    )


async def enqueue(client, base_url: str, queue: str = "hooks", **fields: Any) -> dict:
    return await call(
        client, base_url, "POST", "/tasks", {"payload": {"n": 1}, "queue": queue, **fields}
    )


async def task_when(
    client, base_url: str, task_id: str, done: Callable[[dict], bool], timeout: float = 10.0
) -> dict:
    """The task once `done(task)` holds (polled: the pusher works on its own)."""
    deadline = time.monotonic() + timeout
    while True:
        task = await call(client, base_url, "GET", f"/tasks/{task_id}")
        if done(task):
            return task
        assert time.monotonic() < deadline, f"task never got there: {task}"
        await asyncio.sleep(0.02)


def verify(secret: str, push: Received) -> None:
    """Raise unless the push carries a valid signature by `secret` (standardwebhooks)."""
    headers = {name.lower(): value for name, value in push.headers.get_all()}
    Webhook(secret).verify(push.body, headers)


# --- success ------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_a_2xx_completes_the_task_with_the_answer_as_its_result(
    http_client, base_url, pusher
):
    async with Receiver(lambda _push: Answer(200, b'{"sent": true}')) as receiver:
        queue = await set_push(http_client, base_url, receiver.url)
        secret = queue["settings"]["push"]["secret"]
        task = await enqueue(http_client, base_url)

        done = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "completed"
        )

        assert done["result"] == {"sent": True}
        assert done["attempts"] == 1
        [push] = receiver.pushes
        assert push.headers["webhook-id"] == task["id"]
        assert push.headers["Content-Type"] == "application/json"
        body = push.document
        assert body["id"] == task["id"]
        assert body["status"] == "processing"
        assert body["payload"] == {"n": 1}
        assert body["attempts"] == 1
        assert body["lease_id"]
        verify(secret, push)
        with pytest.raises(WebhookVerificationError):
            verify("whsec_" + "A" * 32, push)
        workers = [
            entry.get("worker") for entry in done["history"] if entry["event"] == "delivered"
        ]
        assert workers and workers[0].startswith("push/")


@pytest.mark.gen_test(timeout=30)
async def test_a_non_json_answer_completes_the_task_without_a_result(http_client, base_url, pusher):
    async with Receiver(lambda _push: Answer(204)) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url)
        done = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "completed"
        )
        assert done["result"] is None
    async with Receiver(lambda _push: Answer(200, b"<p>thanks</p>")) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url)
        done = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "completed"
        )
        assert done["result"] is None


@pytest.mark.gen_test(timeout=30)
async def test_headers_of_the_target_are_sent_and_get_shows_no_secret(
    http_client, base_url, pusher
):
    async with Receiver() as receiver:
        answer = await set_push(
            http_client, base_url, receiver.url, timeout_seconds=5, headers={"X-Token": "t0p"}
        )
        assert answer["settings"]["push"]["secret"].startswith("whsec_")
        assert answer["push_status"] == {
            "in_flight": 0,
            "pushed": 0,
            "failed": 0,
            "last_success_at": None,
            "last_error": None,
            "last_error_at": None,
        }
        shown = await call(http_client, base_url, "GET", "/queues/hooks")
        assert shown["settings"]["push"] == {
            "url": receiver.url,
            "timeout_seconds": 5.0,
            "headers": {"X-Token": "t0p"},
            "secret_rotated_at": None,
        }
        task = await enqueue(http_client, base_url)
        await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "completed")
        assert receiver.pushes[0].headers["X-Token"] == "t0p"
        status = (await call(http_client, base_url, "GET", "/queues/hooks"))["push_status"]
        assert status["pushed"] == 1
        assert status["last_success_at"] is not None


@pytest.mark.gen_test(timeout=30)
async def test_changing_the_target_keeps_its_secret(http_client, base_url, pusher):
    async with Receiver() as first, Receiver() as second:
        secret = (await set_push(http_client, base_url, first.url))["settings"]["push"]["secret"]

        changed = await set_push(http_client, base_url, second.url, timeout_seconds=3)

        assert "secret" not in changed["settings"]["push"]
        task = await enqueue(http_client, base_url)
        await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "completed")
        assert first.pushes == []
        verify(secret, second.pushes[0])


@pytest.mark.gen_test(timeout=30)
async def test_a_null_timeout_or_headers_is_the_default(http_client, base_url):
    target = "http://127.0.0.1:9/hook"
    answer = await set_push(http_client, base_url, target, timeout_seconds=None, headers=None)

    shown = answer["settings"]["push"]
    assert (shown["url"], shown["timeout_seconds"], shown["headers"]) == (target, 30, {})


# --- failures -----------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_a_503_with_retry_after_is_retried_then_and_keeps_its_webhook_id(
    http_client, base_url, pusher, clock
):
    answers = [Answer(503, b"busy", {"Retry-After": "120"}), Answer(200, b"{}")]
    async with Receiver(lambda _push: answers.pop(0)) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url)

        waiting = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "scheduled"
        )

        assert waiting["error"] == "push answered 503: busy"
        assert waiting["attempts"] == 1
        retry_in = parse(waiting["available_at"]) - clock.now
        assert retry_in == pytest.approx(120, abs=1)
        clock.advance(119)
        await call(http_client, base_url, "GET", "/queue/stats")
        assert len(receiver.pushes) == 1
        clock.advance(1)
        done = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "completed"
        )
        assert done["attempts"] == 2
        assert [push.headers["webhook-id"] for push in receiver.pushes] == [task["id"]] * 2
        status = (await call(http_client, base_url, "GET", "/queues/hooks"))["push_status"]
        assert status["last_error"] == "push answered 503: busy"
        assert (status["pushed"], status["failed"]) == (1, 1)


@pytest.mark.gen_test(timeout=30)
async def test_a_5xx_without_retry_after_backs_off_and_the_last_attempt_dies(
    http_client, base_url, pusher, clock
):
    async with Receiver(lambda _push: Answer(500, b"x" * 500)) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url, max_attempts=2)

        waiting = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "scheduled"
        )

        assert waiting["error"] == "push answered 500: " + "x" * 200
        assert parse(waiting["available_at"]) - clock.now == pytest.approx(1.0, abs=0.01)
        clock.advance(1)
        dead = await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "failed")
        assert dead["attempts"] == 2
        assert len(receiver.pushes) == 2


@pytest.mark.parametrize("status", [400, 404, 410])
@pytest.mark.gen_test(timeout=30)
async def test_another_4xx_kills_the_task_at_once(http_client, base_url, pusher, status):
    async with Receiver(lambda _push: Answer(status, b"nope")) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url, max_attempts=5)

        dead = await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "failed")

        assert dead["error"] == f"push answered {status}: nope"
        assert dead["attempts"] == 1
        assert len(receiver.pushes) == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_rejected_task_moves_to_the_dead_letter_queue(http_client, base_url, pusher):
    async with Receiver(lambda _push: Answer(422, b"bad payload")) as receiver:
        await set_push(
            http_client, base_url, receiver.url, settings={"dead_letter_queue": "hooks-dead"}
        )
        task = await enqueue(http_client, base_url)

        moved = await task_when(
            http_client, base_url, task["id"], lambda t: t["queue"] == "hooks-dead"
        )

        assert moved["status"] == "pending"
        assert moved["error"] == "push answered 422: bad payload"


@pytest.mark.gen_test(timeout=30)
async def test_a_redirect_is_not_followed_and_kills_the_task(http_client, base_url, pusher):
    async with Receiver() as elsewhere:
        redirect = Answer(302, b"moved", {"Location": elsewhere.url})
        async with Receiver(lambda _push: redirect) as receiver:
            await set_push(http_client, base_url, receiver.url)
            task = await enqueue(http_client, base_url)

            dead = await task_when(
                http_client, base_url, task["id"], lambda t: t["status"] == "failed"
            )

            assert dead["error"] == "push answered 302 (redirects are not followed): moved"
            assert elsewhere.pushes == []


@pytest.mark.gen_test(timeout=30)
async def test_a_receiver_slower_than_the_timeout_is_a_retried_attempt(
    http_client, base_url, pusher
):
    release = asyncio.Event()

    async def slow(_push: Received) -> Answer:
        await release.wait()
        return Answer()

    async with Receiver(slow) as receiver:
        await set_push(http_client, base_url, receiver.url, timeout_seconds=1)
        task = await enqueue(http_client, base_url)

        waiting = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "scheduled"
        )

        release.set()
        assert waiting["error"] == "push timed out after 1 s"
        assert waiting["attempts"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_a_refused_connection_is_a_retried_attempt(http_client, base_url, pusher):
    async with Receiver() as receiver:
        closed = receiver.url
    await set_push(http_client, base_url, closed)
    task = await enqueue(http_client, base_url)

    waiting = await task_when(
        http_client, base_url, task["id"], lambda t: t["status"] == "scheduled"
    )

    assert waiting["error"].startswith("push failed: ")
    assert waiting["attempts"] == 1


@pytest.mark.gen_test(timeout=30)
async def test_the_lease_of_a_push_outlasts_its_timeout(http_client, base_url, pusher, clock):
    release = asyncio.Event()

    async def held(_push: Received) -> Answer:
        await release.wait()
        return Answer()

    async with Receiver(held) as receiver:
        await set_push(http_client, base_url, receiver.url, timeout_seconds=7)
        task = await enqueue(http_client, base_url)
        await receiver.wait_for(1)
        leased = await call(http_client, base_url, "GET", f"/tasks/{task['id']}")
        release.set()
        lease = parse(leased["lease_expires_at"]) - parse(leased["started_at"])
        assert lease == pytest.approx(7 + LEASE_MARGIN_SECONDS, abs=0.01)


# --- secrets ------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=30)
async def test_after_a_rotation_pushes_carry_both_signatures(http_client, base_url, pusher):
    async with Receiver() as receiver:
        old = (await set_push(http_client, base_url, receiver.url))["settings"]["push"]["secret"]

        rotated = await call(http_client, base_url, "POST", "/queues/hooks/push/rotate-secret")

        new = rotated["secret"]
        assert new.startswith("whsec_") and new != old
        assert parse(rotated["previous_secret_valid_until"]) == pytest.approx(
            time.time() + 86_400, abs=60
        )
        task = await enqueue(http_client, base_url)
        await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "completed")
        push = receiver.pushes[0]
        assert len(push.headers["webhook-signature"].split(" ")) == 2
        verify(new, push)
        verify(old, push)
        shown = (await call(http_client, base_url, "GET", "/queues/hooks"))["settings"]["push"]
        assert shown["secret_rotated_at"] is not None
        assert "secret" not in shown and "previous_secret" not in shown


@pytest.mark.gen_test(timeout=30)
async def test_rotating_the_secret_of_a_queue_without_push_is_a_409(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/queues/plain/push/rotate-secret")
    assert "has no push setting" in assert_problem(response, 409)["detail"]


# --- pull refused, settings refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/tasks/dequeue?queue=hooks", "/tasks/dequeue/batch?queue=hooks&count=3"]
)
@pytest.mark.gen_test(timeout=30)
async def test_a_dequeue_from_a_push_queue_is_a_409(http_client, base_url, path):
    async with Receiver() as receiver:
        await set_push(http_client, base_url, receiver.url, settings={"paused": True})
        task = await enqueue(http_client, base_url)

        response = await request(http_client, base_url, "POST", path)

        assert "is a push queue" in assert_problem(response, 409)["detail"]
        still = await call(http_client, base_url, "GET", f"/tasks/{task['id']}")
        assert (still["status"], still["attempts"]) == ("pending", 0)
        await call(http_client, base_url, "PATCH", "/queues/hooks", {"push": None})
        await call(http_client, base_url, "PATCH", "/queues/hooks", {"paused": False})
        taken = await call(http_client, base_url, "POST", path)
        items = taken.get("tasks", [taken])
        ids = [item["id"] for item in items]
        assert ids == [task["id"]]


@pytest.mark.parametrize(
    ("push", "fragment"),
    [
        ({"url": "http://127.0.0.2:9/"}, "--push-allow does not list its host '127.0.0.2'"),
        ({"url": "ftp://127.0.0.1/"}, "must use http or https"),
        ({"url": "http://user:pw@127.0.0.1/"}, "user name or password"),
        ({"url": 5}, "setting 'push.url' must be a string"),
        ({}, "needs field 'url'"),
        ({"url": "http://127.0.0.1/", "extra": 1}, "unknown field 'extra'"),
        ({"url": "http://127.0.0.1/", "timeout_seconds": 0}, "push.timeout_seconds"),
        ({"url": "http://127.0.0.1/", "timeout_seconds": 1801}, "push.timeout_seconds"),
        ({"url": "http://127.0.0.1/", "headers": {"webhook-id": "x"}}, "the server sets it"),
        ({"url": "http://127.0.0.1/", "headers": {"X-A": 1}}, "push.headers.X-A"),
        ({"url": "http://127.0.0.1/", "headers": {"X-A": "a\nb"}}, "push.headers.X-A"),
        ({"url": "http://127.0.0.1/", "headers": {"bad name": "v"}}, "bad header name"),
        ({"url": "http://127.0.0.1/", "headers": []}, "setting 'push.headers'"),
        ("http://127.0.0.1/", "setting 'push' must be an object"),
    ],
)
@pytest.mark.gen_test(timeout=30)
async def test_a_bad_push_setting_is_a_400_that_changes_nothing(
    http_client, base_url, push, fragment
):
    response = await request(
        http_client, base_url, "PATCH", "/queues/hooks", {"push": push, "paused": True}
    )

    assert fragment in assert_problem(response, 400)["detail"]
    shown = await call(http_client, base_url, "GET", "/queues/hooks")
    assert shown["settings"]["push"] is None
    assert shown["settings"]["paused"] is None
    assert shown["push_status"] is None


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.gen_test(timeout=60)
async def test_pushes_in_flight_never_pass_max_processing(http_client, base_url, pusher):
    async def slowish(_push: Received) -> Answer:
        await asyncio.sleep(0.01)
        return Answer()

    async with Receiver(slowish) as receiver:
        await set_push(http_client, base_url, receiver.url, settings={"max_processing": 3})
        tasks = [{"payload": {"n": n}, "queue": "hooks"} for n in range(60)]
        await call(http_client, base_url, "POST", "/tasks/batch", {"tasks": tasks})

        await receiver.wait_for(60, timeout=30)

        assert receiver.most_in_flight == 3
        deadline = time.monotonic() + 10
        while (await call(http_client, base_url, "GET", "/queue/stats?queue=hooks"))[
            "completed"
        ] < 60:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)


@pytest.mark.gen_test(timeout=30)
async def test_a_paused_push_queue_pushes_nothing_until_resumed(http_client, base_url, pusher):
    async with Receiver() as receiver:
        await set_push(http_client, base_url, receiver.url, settings={"paused": True})
        task = await enqueue(http_client, base_url)
        await call(http_client, base_url, "GET", f"/tasks/{task['id']}")
        await asyncio.sleep(0)
        assert receiver.pushes == []

        await call(http_client, base_url, "PATCH", "/queues/hooks", {"paused": False})

        await task_when(http_client, base_url, task["id"], lambda t: t["status"] == "completed")


@pytest.mark.gen_test(timeout=30)
async def test_push_metrics_count_attempts_successes_and_failures(http_client, base_url, pusher):
    answers = [Answer(404, b"no"), Answer(200)]
    async with Receiver(lambda _push: answers.pop(0)) as receiver:
        await set_push(http_client, base_url, receiver.url)
        first = await enqueue(http_client, base_url)
        await task_when(http_client, base_url, first["id"], lambda t: t["status"] == "failed")
        second = await enqueue(http_client, base_url)
        await task_when(http_client, base_url, second["id"], lambda t: t["status"] == "completed")

        text = (await request(http_client, base_url, "GET", "/metrics")).body.decode()

        assert 'taskqueue_push_attempts_total{queue="hooks"} 2.0' in text
        assert 'taskqueue_push_succeeded_total{queue="hooks"} 1.0' in text
        assert 'taskqueue_push_failed_total{queue="hooks",reason="rejected"} 1.0' in text
        assert 'taskqueue_push_duration_seconds_count{queue="hooks"} 2.0' in text


def parse(text: str) -> float:
    return parse_timestamp(text).timestamp()


@pytest.mark.gen_test(timeout=30)
async def test_a_push_in_flight_when_push_is_cleared_still_completes_its_task(
    http_client, base_url, pusher
):
    release = asyncio.Event()

    async def held(_push: Received) -> Answer:
        await release.wait()
        return Answer(200, b'{"late": true}')

    async with Receiver(held) as receiver:
        await set_push(http_client, base_url, receiver.url)
        task = await enqueue(http_client, base_url)
        await receiver.wait_for(1)

        await call(http_client, base_url, "PATCH", "/queues/hooks", {"push": None})
        deadline = time.monotonic() + 5
        while pusher.status("hooks") is not None:  # until the pusher has retired the queue
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        release.set()

        done = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "completed"
        )
        assert done["result"] == {"late": True}
        assert len(receiver.pushes) == 1
