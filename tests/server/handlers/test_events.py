"""The event stream over HTTP, on every store (docs/api.md, The event stream): `GET /events`
answers at once with the SSE head and an opening, then one event per change with its id,
name and one line of JSON; `?queue=` filters; `Last-Event-ID` (or `?last_event_id=`) replays
exactly what was missed, or a `resync`; a client that does not read is dropped without
slowing the others; streams are bounded and cleaned up when they close.

Streams are read raw (see `sse`); the store runs on the FakeClock, so every `at` is known."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from tornado.ioloop import IOLoop

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    at,
    check_problem_document,
    parse_timestamp,
    request,
)
from tests.server.handlers.sse import Block, EventStream, within
from tornado_queue.models import NewTask
from tornado_queue.server import event_hub
from tornado_queue.server.event_hub import EventHub

WORKER = "box-1/4127/0"


@pytest.fixture
def hub(app) -> EventHub:
    return app.services.event_hub


@pytest.fixture
def port(http_server, http_port) -> int:
    """The test server's port (requesting it starts the server)."""
    return http_port


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = IOLoop.current().time() + timeout
    while not condition():
        assert IOLoop.current().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def call(client, base_url: str, method: str, path: str, body: Any = None, **kw) -> Any:
    response = await request(client, base_url, method, path, body, **kw)
    assert response.code in (200, 201), response.body
    return assert_json(response, response.code)


async def enqueue(client, base_url: str, queue: str = "default") -> dict[str, Any]:
    return await call(client, base_url, "POST", "/tasks", {"payload": {}, "queue": queue})


async def opened(port: int, path: str = "/events", **headers: str) -> EventStream:
    """A stream whose opening has been read: what follows is events."""
    sent = {name.replace("_", "-"): value for name, value in headers.items()}
    stream = await EventStream.open(port, path, sent)
    assert stream.status == 200
    opening = await stream.block()
    assert (opening.fields, opening.comments) == ({"retry": "2000"}, ["tornado_queue events"])
    return stream


def names(blocks: list[Block]) -> list[str]:
    return [block.fields["event"] for block in blocks]


# --- the head and the events ------------------------------------------------------------------


@pytest.mark.gen_test(timeout=20)
async def test_the_head_and_the_opening_arrive_at_once_before_any_event(port, hub):
    stream = await EventStream.open(port)  # nothing has happened: no event to wait for

    assert stream.status == 200
    assert stream.headers["Content-Type"] == "text/event-stream"
    assert stream.headers["Cache-Control"] == "no-cache"
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert stream.headers["X-Request-ID"]
    opening = await stream.block()
    assert opening.fields == {"retry": "2000"}
    assert opening.comments == ["tornado_queue events"]
    assert hub.count() == 1
    stream.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_lifecycle_arrives_in_order_with_every_field(
    http_client, base_url, port, clock: FakeClock
):
    stream = await opened(port)
    task = await enqueue(http_client, base_url)
    clock.advance(1)
    leased = await call(
        http_client, base_url, "POST", "/tasks/dequeue", headers={"X-Worker-Id": WORKER}
    )
    clock.advance(2)
    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"result": 1})

    enqueued, delivered, completed = await stream.events(3)

    assert names([enqueued, delivered, completed]) == ["enqueued", "delivered", "completed"]
    assert enqueued.data == {
        "id": task["id"],
        "queue": "default",
        "status": "pending",
        "at": task["created_at"],
        "attempts": 0,
    }
    assert parse_timestamp(enqueued.data["at"]) == at(clock.now - 3)
    assert delivered.data == {
        "id": task["id"],
        "queue": "default",
        "status": "processing",
        "at": delivered.data["at"],
        "attempts": 1,
        "lease_id": leased["lease_id"],
        "worker": WORKER,
    }
    assert parse_timestamp(delivered.data["at"]) == at(clock.now - 2)
    assert parse_timestamp(completed.data["at"]) == at(clock.now)
    assert (completed.data["status"], completed.data["lease_id"]) == (
        "completed",
        leased["lease_id"],
    )
    assert completed.data["worker"] == WORKER
    ids = [block.fields["id"] for block in (enqueued, delivered, completed)]
    assert len(set(ids)) == 3
    stream.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_failure_carries_its_error_and_a_delete_is_an_event(http_client, base_url, port):
    stream = await opened(port)
    task = await call(http_client, base_url, "POST", "/tasks", {"payload": {}, "max_attempts": 1})
    leased = await call(http_client, base_url, "POST", "/tasks/dequeue")
    path = f"/tasks/{task['id']}/fail?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {"error": "no\nway"})
    response = await request(http_client, base_url, "DELETE", f"/tasks/{task['id']}")
    assert response.code == 204

    blocks = await stream.events(4)

    assert names(blocks) == ["enqueued", "delivered", "dead", "deleted"]
    assert (blocks[2].data["status"], blocks[2].data["error"]) == ("failed", "no\nway")
    assert blocks[3].data["id"] == task["id"]
    stream.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_queue_filter_gets_that_queues_events_only(http_client, base_url, port):
    stream = await opened(port, "/events?queue=mine")
    await enqueue(http_client, base_url, "other")
    mine = await enqueue(http_client, base_url, "mine")
    await enqueue(http_client, base_url, "other")
    last = await enqueue(http_client, base_url, "mine")

    first, second = await stream.events(2)

    assert [first.data["id"], second.data["id"]] == [mine["id"], last["id"]]
    assert {first.data["queue"], second.data["queue"]} == {"mine"}
    stream.close()


@pytest.mark.parametrize(
    "path",
    [
        "/events?queue=bad%20name",
        "/events?queue=a&queue=b",
        "/events?last_event_id=" + "x" * 129,
        "/events?last_event_id=a%01b",
    ],
)
@pytest.mark.gen_test(timeout=20)
async def test_a_bad_parameter_is_a_400_problem_before_any_stream(http_client, base_url, hub, path):
    response = await request(http_client, base_url, "GET", path)

    assert_problem(response, 400)
    assert hub.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_a_bad_last_event_id_header_is_a_400_problem(port, hub):
    stream = await EventStream.open(port, headers={"Last-Event-ID": "y" * 200})

    assert stream.status == 400
    assert stream.headers["Content-Type"] == "application/problem+json"
    problem = check_problem_document(orjson.loads(await stream.body()), 400)
    assert "Last-Event-ID" in problem["detail"]
    assert hub.count() == 0


@pytest.mark.gen_test(timeout=20)
async def test_an_idle_stream_gets_a_keep_alive_comment(port, monkeypatch):
    monkeypatch.setattr(event_hub, "KEEPALIVE_SECONDS", 0.05)  # 15 s in service
    stream = await opened(port)

    block = await stream.block()

    assert (block.fields, block.comments) == ({}, ["keep-alive"])
    stream.close()


# --- resuming ---------------------------------------------------------------------------------


async def one_seen_then_three_missed(http_client, base_url, port, hub) -> tuple[str, list[str]]:
    """A client saw one event and left; three more happened: (its last id, what it missed,
    by name)."""
    first = await opened(port)
    task = await enqueue(http_client, base_url)
    seen = await first.event()
    first.close()
    await until(lambda: hub.count() == 0)
    leased = await call(http_client, base_url, "POST", "/tasks/dequeue")
    path = f"/tasks/{task['id']}/complete?lease_id={leased['lease_id']}"
    await call(http_client, base_url, "PUT", path, {})
    await enqueue(http_client, base_url)
    return seen.fields["id"], ["delivered", "completed", "enqueued"]


@pytest.mark.parametrize("how", ["header", "query", "header over query"])
@pytest.mark.gen_test(timeout=20)
async def test_resuming_replays_exactly_what_was_missed_then_goes_on_live(
    http_client, base_url, port, hub, how
):
    last_id, missed = await one_seen_then_three_missed(http_client, base_url, port, hub)

    if how == "header":
        stream = await opened(port, Last_Event_ID=last_id)
    elif how == "query":
        stream = await opened(port, f"/events?last_event_id={last_id}")
    else:  # a reconnecting EventSource keeps the URL it was opened with: the header wins
        stream = await opened(port, "/events?last_event_id=stale-1", Last_Event_ID=last_id)
    replayed = await stream.events(3)
    live = await enqueue(http_client, base_url)
    after = await stream.event()

    assert names(replayed) == missed
    assert (after.fields["event"], after.data["id"]) == ("enqueued", live["id"])
    stream.close()


@pytest.mark.gen_test(timeout=20)
async def test_resuming_from_the_latest_event_replays_nothing(http_client, base_url, port, hub):
    first = await opened(port)
    await enqueue(http_client, base_url)
    seen = await first.event()
    first.close()

    stream = await opened(port, Last_Event_ID=seen.fields["id"])
    live = await enqueue(http_client, base_url)
    after = await stream.event()

    assert after.data["id"] == live["id"]
    stream.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_replay_keeps_to_the_queue_filter(http_client, base_url, port, hub):
    first = await opened(port, "/events?queue=mine")
    await enqueue(http_client, base_url, "mine")
    seen = await first.event()
    first.close()
    await enqueue(http_client, base_url, "other")
    missed = await enqueue(http_client, base_url, "mine")

    stream = await opened(port, "/events?queue=mine", Last_Event_ID=seen.fields["id"])
    replayed = await stream.event()
    live = await enqueue(http_client, base_url, "mine")
    after = await stream.event()

    assert [replayed.data["id"], after.data["id"]] == [missed["id"], live["id"]]
    stream.close()


@pytest.mark.parametrize("last_id", ["unknown-1", "nonsense"])
@pytest.mark.gen_test(timeout=20)
async def test_an_id_that_cannot_be_resumed_from_gets_one_resync_then_live(
    http_client, base_url, port, last_id
):
    stream = await opened(port, Last_Event_ID=last_id)

    resync = await stream.event()
    live = await enqueue(http_client, base_url)
    after = await stream.event()

    assert resync.fields["event"] == "resync"
    assert "id" not in resync.fields
    assert isinstance(resync.data["reason"], str)
    assert (after.fields["event"], after.data["id"]) == ("enqueued", live["id"])
    stream.close()


# --- slow clients, limits and cleaning up ------------------------------------------------------


def silent_client(port: int) -> socket.socket:
    """A client that asks for the stream and never reads: a tiny receive buffer, so the
    server's writes back up soon."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /events HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    sock.setblocking(False)
    return sock


async def closed_by_server(sock: socket.socket) -> None:
    """Read (and discard) what the server sent until it closes the connection."""
    deadline = IOLoop.current().time() + 20
    while IOLoop.current().time() < deadline:
        try:
            if not sock.recv(1 << 20):
                return
        except BlockingIOError:
            await asyncio.sleep(0.005)
    raise AssertionError("the server never closed the silent client's connection")


@pytest.mark.gen_test(timeout=90)
async def test_a_client_that_does_not_read_is_dropped_and_the_others_get_every_event(
    store, port, hub
):
    hub.buffer = 8
    silent = silent_client(port)
    reader = await opened(port)
    await until(lambda: hub.count() == 2)
    count = 1000  # 10 kB errors: ten megabytes, far past what the kernel buffers for one socket
    task_ids = [store.enqueue(NewTask(payload=b"{}", max_attempts=5)).id for _ in range(count)]
    leased = store.dequeue_many(count)
    heard = asyncio.ensure_future(reader.events(3 * count))
    for task in leased:
        store.fail(task.id, "x" * 10_000, lease_id=task.lease_id)
        await asyncio.sleep(0)  # the streams are written between changes, as a server serves

    blocks = await within(heard, 60)

    assert names(blocks) == ["enqueued"] * count + ["delivered"] * count + ["failed"] * count
    assert [block.data["id"] for block in blocks[-count:]] == [task.id for task in leased]
    assert sorted(block.data["id"] for block in blocks[:count]) == sorted(task_ids)
    await closed_by_server(silent)
    silent.close()
    assert hub.dropped == 1
    assert hub.count() == 1  # the reader is still there
    reader.close()
    await until(lambda: hub.count() == 0)


@pytest.mark.gen_test(timeout=20)
async def test_streams_past_the_limit_are_refused_with_503_until_one_closes(
    http_client, base_url, port, hub
):
    hub.max_clients = 2
    first, second = await opened(port), await opened(port)

    refused = await EventStream.open(port)
    assert refused.status == 503
    assert refused.headers["Retry-After"] == "1"
    problem = check_problem_document(orjson.loads(await refused.body()), 503)
    assert "2 event streams" in problem["detail"]

    first.close()
    await until(lambda: hub.count() == 1)
    third = await opened(port)
    task = await enqueue(http_client, base_url)
    assert (await third.event()).data["id"] == task["id"]
    assert (await second.event()).data["id"] == task["id"]
    second.close()
    third.close()


@pytest.mark.gen_test(timeout=20)
async def test_a_stream_that_closes_leaves_nothing_behind(app, port, hub):
    before = app.services.tracker.active
    streams = [await opened(port) for _ in range(3)]
    await until(lambda: hub.count() == 3)

    for stream in streams:
        stream.close()

    await until(lambda: hub.count() == 0)
    await until(lambda: app.services.tracker.active == before)


@pytest.mark.gen_test(timeout=20)
async def test_closing_the_hub_ends_every_stream_and_refuses_new_ones(
    http_client, base_url, port, hub
):
    stream = await opened(port)

    hub.close()

    assert await stream.body() == b""  # the answer ends: the server closes the connection
    response = await request(http_client, base_url, "GET", "/events")
    assert "shutting down" in assert_problem(response, 503)["detail"]
