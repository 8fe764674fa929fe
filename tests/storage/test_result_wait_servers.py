"""Waiting for a result across real server processes on one Redis: a request parked on one
server (`GET /tasks/{id}?wait=`) is answered the moment another server completes the task,
fails it for good or deletes it, long before its wait runs out."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.storage.test_redis_servers import start_pair
from tests.support import NO_PROXY, call, wait_until
from tornado_queue.testing import ServerProcess

WAIT = 20
"""The wait the parked request asks for."""
PROMPT = 2.0
"""A wake-up across servers (pub/sub, then the IOLoop, then loopback HTTP) comes well within
this, a tenth of the wait."""


def result_waiters(server: ServerProcess) -> float:
    """`taskqueue_waiters{kind="result"}` on the server's /metrics."""
    with NO_PROXY.open(server.url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    for line in text.splitlines():
        if line.startswith('taskqueue_waiters{kind="result"}'):
            return float(line.split()[-1])
    raise AssertionError("no taskqueue_waiters gauge")


class Parked:
    """A `GET /tasks/{id}?wait=` sent to a server from a thread, parked there on return."""

    def __init__(self, server: ServerProcess, task_id: str) -> None:
        self.answer: tuple[int, Any] | None = None
        self.answered_at = 0.0
        self._thread = threading.Thread(
            target=self._run, args=(server.url, f"/tasks/{task_id}?wait={WAIT}"), daemon=True
        )
        self._thread.start()
        assert wait_until(lambda: result_waiters(server) == 1), "the request never parked"

    def _run(self, url: str, path: str) -> None:
        self.answer = call(url, "GET", path, timeout=WAIT + 10)
        self.answered_at = time.monotonic()

    def result(self) -> tuple[int, Any]:
        self._thread.join(WAIT + 10)
        assert self.answer is not None
        return self.answer


def enqueue_and_lease(server: ServerProcess, **fields: Any) -> dict[str, Any]:
    status, task = call(server.url, "POST", "/tasks", {"payload": {}, **fields})
    assert status == 201, task
    status, leased = call(server.url, "POST", "/tasks/dequeue")
    assert (status, leased["id"]) == (200, task["id"]), leased
    return leased


def test_a_waiter_on_one_server_is_answered_when_the_other_completes(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        task = enqueue_and_lease(b)
        parked = Parked(a, task["id"])

        completed_at = time.monotonic()
        path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
        assert call(b.url, "PUT", path, {"result": {"sum": 3}})[0] == 200

        status, answer = parked.result()
        assert (status, answer["status"], answer["result"]) == (200, "completed", {"sum": 3})
        assert parked.answered_at - completed_at < PROMPT
        assert result_waiters(a) == 0


def test_a_waiter_on_one_server_is_answered_when_the_other_fails_the_task_for_good(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        task = enqueue_and_lease(a, max_attempts=1)
        parked = Parked(a, task["id"])

        failed_at = time.monotonic()
        path = f"/tasks/{task['id']}/fail?lease_id={task['lease_id']}"
        assert call(b.url, "PUT", path, {"error": "no disk"})[0] == 200

        status, answer = parked.result()
        assert (status, answer["status"], answer["error"]) == (200, "failed", "no disk")
        assert parked.answered_at - failed_at < PROMPT


def test_a_waiter_on_one_server_is_404_when_the_other_deletes_the_task(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        status, task = call(a.url, "POST", "/tasks", {"payload": {}})
        assert status == 201
        parked = Parked(a, task["id"])

        deleted_at = time.monotonic()
        assert call_status(b, "DELETE", f"/tasks/{task['id']}") == 204

        status, answer = parked.result()
        assert status == 404, answer
        assert parked.answered_at - deleted_at < PROMPT


def call_status(server: ServerProcess, method: str, path: str) -> int:
    """The status of a request whose answer has no body (a 204)."""
    request = urllib.request.Request(server.url + path, method=method)
    with NO_PROXY.open(request, timeout=10) as response:
        return response.status
