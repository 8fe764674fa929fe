"""The event stream read by a real SSE client (httpx-sse) from a real server process: the
client reads events, disconnects, and reconnecting with `Last-Event-ID` gets exactly what it
missed, then the live events; a server told to stop ends its open streams at once instead of
waiting for them through its grace period."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import EventSource, ServerSentEvent, connect_sse

from tests.support import call
from tornado_queue.testing import ServerProcess


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path / "server.log", "--host", "127.0.0.1", "--backend", "memory") as s:
        yield s


def events(source: EventSource) -> Iterator[ServerSentEvent]:
    """The events a browser's EventSource would dispatch (blocks without data are not)."""
    return (event for event in source.iter_sse() if event.data)


def enqueue(server: ServerProcess, name: str) -> str:
    status, task = call(server.url, "POST", "/tasks", {"payload": {"name": name}})
    assert status == 201, task
    return task["id"]


def seen(event: ServerSentEvent) -> tuple[str, str]:
    data: dict[str, Any] = json.loads(event.data)
    return event.event, data["id"]


def test_a_real_sse_client_resumes_with_last_event_id_getting_exactly_what_it_missed(
    server: ServerProcess,
):
    with httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http:
        with connect_sse(http, "GET", "/events") as source:
            assert source.response.headers["content-type"] == "text/event-stream"
            heard = events(source)
            b, c = enqueue(server, "b"), enqueue(server, "c")
            first = [next(heard), next(heard)]
        assert [seen(event) for event in first] == [("enqueued", b), ("enqueued", c)]
        last_id = first[-1].id
        assert last_id

        # While it is away: b is delivered and completed, d is enqueued.
        status, leased = call(server.url, "POST", "/tasks/dequeue")
        assert (status, leased["id"]) == (200, b)
        path = f"/tasks/{b}/complete?lease_id={leased['lease_id']}"
        assert call(server.url, "PUT", path, {})[0] == 200
        d = enqueue(server, "d")

        with connect_sse(http, "GET", "/events", headers={"Last-Event-ID": last_id}) as source:
            heard = events(source)
            missed = [next(heard) for _ in range(3)]
            e = enqueue(server, "e")
            live = next(heard)

    assert [seen(event) for event in missed] == [
        ("delivered", b),
        ("completed", b),
        ("enqueued", d),
    ]
    assert seen(live) == ("enqueued", e)
    ids = [event.id for event in (*first, *missed, live)]
    assert len(set(ids)) == len(ids)
    assert json.loads(missed[0].data)["lease_id"] == leased["lease_id"]


def test_a_shutdown_ends_open_streams_at_once(server: ServerProcess):
    with (
        httpx.Client(base_url=server.url, timeout=10, trust_env=False) as http,
        connect_sse(http, "GET", "/events") as source,
    ):
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        after = list(events(source))  # returns when the server ends the answer
        ended = time.monotonic() - started

    assert after == []
    assert ended < 3  # well within the 10 s a shutdown gives requests still running
    assert server.process.wait(15) == 0  # (a second signal would make it exit at once, 1)
    assert "requests still in progress" not in server.log()
    assert "Traceback" not in server.log()
