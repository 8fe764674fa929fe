"""The SSRF rules over HTTP (docs/push.md, What push URLs may reach): push is off without
--push-allow, and a host name on the list reaches only public addresses: one that resolves to
loopback is refused when the pusher connects, not only when the setting is saved."""

from __future__ import annotations

import pytest

from tests.server.handlers.helpers import assert_problem, request
from tests.server.push.receiver import Receiver
from tests.server.push.test_push_http import call, enqueue, task_when
from tornado_queue.config import Settings


@pytest.fixture
def settings(request: pytest.FixtureRequest) -> Settings:
    allow = "localhost" if "pusher" in request.fixturenames else ""
    return Settings(max_body_bytes=64 * 1024, push_allow=allow)


@pytest.mark.gen_test(timeout=30)
async def test_without_push_allow_push_cannot_be_set(http_client, base_url, app):
    assert app.services.pusher is None

    response = await request(
        http_client, base_url, "PATCH", "/queues/hooks", {"push": {"url": "http://127.0.0.1/"}}
    )

    assert assert_problem(response, 400)["detail"] == (
        "push is off: start the server with --push-allow (or TQ_PUSH_ALLOW) listing the host "
        "names or networks that push URLs may target"
    )
    shown = await call(http_client, base_url, "GET", "/queues/hooks")
    assert shown["settings"]["push"] is None


@pytest.mark.gen_test(timeout=30)
async def test_a_listed_name_that_resolves_to_loopback_is_refused_at_connect_time(
    http_client, base_url, pusher
):
    async with Receiver() as receiver:
        url = receiver.url.replace("127.0.0.1", "localhost")
        await call(http_client, base_url, "PATCH", "/queues/hooks", {"push": {"url": url}})
        task = await enqueue(http_client, base_url)

        waiting = await task_when(
            http_client, base_url, task["id"], lambda t: t["status"] == "scheduled"
        )

        assert waiting["error"].startswith("push failed: host 'localhost' resolves to ")
        assert waiting["error"].endswith(", which --push-allow does not allow")
        assert receiver.pushes == []
        status = (await call(http_client, base_url, "GET", "/queues/hooks"))["push_status"]
        assert status["last_error"] == waiting["error"]
