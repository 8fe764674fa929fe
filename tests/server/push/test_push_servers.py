"""Push delivery against real server processes (docs/push.md): a server killed with SIGKILL
mid-push loses only its lease, and another server (on Redis) or the restarted one (on SQLite)
pushes the task again, which is then completed once; and under 1,000 tasks the pushes in
flight never pass the queue's `max_processing` nor its deliveries its `rate_limit`, on every
store (two servers sharing one Redis)."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.server.push.threaded_receiver import Push, ThreadedReceiver
from tests.support import call, wait_until
from tornado_queue.testing import ServerProcess

ALLOW = ("--push-allow", "127.0.0.1")
TIMEOUT_SECONDS = 1
"""The push timeout of these tests: its lease is 6 s (timeout + 5 s), the wait for a redo."""


def redis_pair(tmp_path: Path, redis_url: str) -> list[ServerProcess]:
    """Two servers sharing one Redis (a prefix of their own), both pushing."""
    prefix = "{tq-" + uuid.uuid4().hex + "}"
    flags = ("--backend", "redis", "--redis-url", redis_url, "--redis-prefix", prefix, *ALLOW)
    first = ServerProcess(tmp_path / "a.log", *flags)
    try:
        return [first, ServerProcess(tmp_path / "b.log", *flags)]
    except BaseException:
        first.kill()
        raise


def ok(url: str, method: str, path: str, body: Any = None) -> Any:
    status, document = call(url, method, path, body)
    assert status in (200, 201), document
    return document


def push_to(
    url: str,
    receiver: ThreadedReceiver,
    queue: str = "hooks",
    timeout: float = TIMEOUT_SECONDS,
    **settings: Any,
) -> None:
    body = {"push": {"url": receiver.url, "timeout_seconds": timeout}, **settings}
    ok(url, "PATCH", f"/queues/{queue}", body)


def task(url: str, task_id: str) -> dict:
    return ok(url, "GET", f"/tasks/{task_id}")


def holder_pid(url: str, task_id: str) -> int:
    """The process id of the server whose pusher holds the task (its worker id's last part)."""
    delivered = [entry for entry in task(url, task_id)["history"] if entry["event"] == "delivered"]
    return int(delivered[-1]["worker"].rsplit("/", 1)[1])


class HoldFirst:
    """Holds the first push unanswered until `release`; answers every later push 200."""

    def __init__(self) -> None:
        self.first = threading.Event()
        self.release = threading.Event()

    def __call__(self, _push: Push) -> int:
        if not self.first.is_set():
            self.first.set()
            self.release.wait(30)
        return 200


def assert_pushed_again_and_completed_once(url: str, receiver: ThreadedReceiver, task_id: str):
    assert wait_until(lambda: task(url, task_id)["status"] == "completed", 30), task(url, task_id)
    done = task(url, task_id)
    assert [push.webhook_id for push in receiver.pushes] == [task_id, task_id]
    events = [entry["event"] for entry in done["history"]]
    assert events.count("completed") == 1
    assert events.count("lease_expired") == 1
    assert done["attempts"] == 2


def test_redis_a_server_killed_mid_push_loses_only_its_lease(tmp_path: Path, redis_url: str):
    hold = HoldFirst()
    with ThreadedReceiver(hold) as receiver:
        first, second = redis_pair(tmp_path, redis_url)
        servers = {first.process.pid: first, second.process.pid: second}
        try:
            # Given a push queue both servers push, and a push held by the receiver
            push_to(first.url, receiver)
            made = ok(first.url, "POST", "/tasks", {"payload": {"n": 1}, "queue": "hooks"})
            assert hold.first.wait(10)
            pushing = servers[holder_pid(first.url, made["id"])]
            other = second if pushing is first else first

            # When the server pushing it dies
            pushing.kill()

            # Then, its lease run out, the other server pushes it again, and it completes once
            assert_pushed_again_and_completed_once(other.url, receiver, made["id"])
        finally:
            hold.release.set()
            for server in servers.values():
                server.kill()


def test_sqlite_a_server_killed_mid_push_pushes_it_again_after_a_restart(tmp_path: Path):
    hold = HoldFirst()
    flags = ("--backend", "sqlite", "--db", str(tmp_path / "q.db"), *ALLOW)
    with ThreadedReceiver(hold) as receiver:
        server = ServerProcess(tmp_path / "first.log", *flags)
        try:
            push_to(server.url, receiver)
            made = ok(server.url, "POST", "/tasks", {"payload": {"n": 1}, "queue": "hooks"})
            assert hold.first.wait(10)

            server = server.restart(tmp_path / "second.log")

            assert_pushed_again_and_completed_once(server.url, receiver, made["id"])
        finally:
            hold.release.set()
            server.kill()


TASKS = 1000
CAP = 8
RATE = {"tasks": 250, "seconds": 0.5}


def servers_of(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> list[ServerProcess]:
    if kind == "memory":
        return [ServerProcess(tmp_path / "m.log", *ALLOW)]
    if kind == "sqlite":
        db = str(tmp_path / "q.db")
        return [ServerProcess(tmp_path / "s.log", "--backend", "sqlite", "--db", db, *ALLOW)]
    return redis_pair(tmp_path, request.getfixturevalue("redis_url"))


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
def test_under_a_thousand_tasks_pushes_keep_the_cap_and_the_rate(
    tmp_path: Path, request: pytest.FixtureRequest, kind: str
):
    def respond(_push: Push) -> int:
        threading.Event().wait(0.002)  # a receiver that takes a moment
        return 200

    servers = servers_of(kind, tmp_path, request)
    try:
        with ThreadedReceiver(respond) as receiver:
            url = servers[0].url
            ok(url, "PATCH", "/queues/hooks", {"paused": True})
            # (a timeout long enough that no push is timed out, and so redelivered, under load)
            push_to(url, receiver, timeout=30, max_processing=CAP, rate_limit=RATE)
            for start in range(0, TASKS, 500):
                items = [{"payload": {"n": n}, "queue": "hooks"} for n in range(start, start + 500)]
                ok(url, "POST", "/tasks/batch", {"tasks": items})
            ok(url, "PATCH", "/queues/hooks", {"paused": False})

            def all_done() -> bool:
                return ok(url, "GET", "/queue/stats?queue=hooks")["completed"] == TASKS

            assert wait_until(all_done, 60)

            assert receiver.most_in_flight <= CAP
            assert len({push.webhook_id for push in receiver.pushes}) == TASKS
            assert len(receiver.pushes) == TASKS
            done = ok(url, "GET", f"/queue/view?queue=hooks&status=completed&limit={TASKS}")
            delivered = sorted(
                entry_time(entry)
                for item in done
                for entry in item["history"]
                if entry["event"] == "delivered"
            )
            assert len(delivered) == TASKS
            assert most_in_any_window(delivered, RATE["seconds"]) <= RATE["tasks"]
    finally:
        for server in servers:
            server.kill()


def entry_time(entry: dict) -> float:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()


CLOCK_SLACK = 0.000_001
"""Delivery times are written to the microsecond: a window is judged this much shorter, so
that rounding alone never moves a delivery into it."""


def most_in_any_window(times: list[float], seconds: float) -> int:
    """The most of the sorted `times` within any window (t - seconds + CLOCK_SLACK, t]."""
    most, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - seconds + CLOCK_SLACK:
            start += 1
        most = max(most, end - start + 1)
    return most
