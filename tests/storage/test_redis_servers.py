"""Several tornado_queue servers on one Redis behave as one server."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

from tests.support import NO_PROXY, call
from tornado_queue.testing import ServerProcess

TASKS = 300
CONSUMERS_PER_SERVER = 4


def start_pair(tmp_path: Path, redis_url: str) -> tuple[ServerProcess, ServerProcess]:
    prefix = "{tq-" + uuid.uuid4().hex + "}"
    flags = ("--backend", "redis", "--redis-url", redis_url, "--redis-prefix", prefix)
    first = ServerProcess(tmp_path / "a.log", *flags)
    try:
        return first, ServerProcess(tmp_path / "b.log", *flags)
    except BaseException:
        first.kill()
        raise


def park(sock: socket.socket, url: str, path: str) -> None:
    """A consumer long-polling `path` on the server at `url` over `sock`: taken in (its 100
    Continue came) and parked (the server has answered a later request since)."""
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n".encode()
        + b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"
    )
    assert sock.recv(4096).startswith(b"HTTP/1.1 100")
    assert call(url, "GET", "/queue/stats")[0] == 200


def read_reply(sock: socket.socket) -> bytes:
    """The parked consumer's whole answer (a JSON body ends it)."""
    reply = b""
    while not reply.endswith(b"}"):
        chunk = sock.recv(65536)
        assert chunk, f"connection closed early: {reply!r}"
        reply += chunk
    return reply


def test_two_servers_share_one_queue_with_each_task_delivered_once_and_exact_stats(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given tasks enqueued through both servers
        for number in range(TASKS):
            server = a if number % 2 else b
            assert call(server.url, "POST", "/tasks", {"payload": {"n": number}})[0] == 201

        # When consumers on both servers drain the queue at the same time
        received: list[str] = []
        lock = threading.Lock()

        def consume(url: str) -> None:
            while True:
                status, task = call(url, "POST", "/tasks/dequeue")
                if status == 404:
                    return
                assert status == 200
                done = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
                assert call(url, "PUT", done)[0] == 200
                with lock:
                    received.append(task["id"])

        threads = [
            threading.Thread(target=consume, args=(server.url,))
            for server in (a, b)
            for _ in range(CONSUMERS_PER_SERVER)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        # Then every task was delivered exactly once, and both servers report the same counts
        assert len(received) == TASKS
        assert max(Counter(received).values()) == 1
        stats_a, stats_b = (
            call(a.url, "GET", "/queue/stats")[1],
            call(b.url, "GET", "/queue/stats")[1],
        )
        assert stats_a == stats_b
        assert stats_a["completed"] == TASKS and stats_a["pending"] == 0
        # and the same event totals, whichever server did the work
        totals_a, totals_b = (
            call(a.url, "GET", "/queue/totals")[1],
            call(b.url, "GET", "/queue/totals")[1],
        )
        assert totals_a == totals_b
        assert totals_a["enqueued"] == totals_a["completed"] == TASKS
        assert scrape_line(a.url, "taskqueue_completed_total") == f"{TASKS}.0"
        assert scrape_line(b.url, "taskqueue_completed_total") == f"{TASKS}.0"


def scrape_line(url: str, name: str) -> str:
    """The value of the default queue's sample `name` in a server's /metrics."""
    with NO_PROXY.open(url + "/metrics", timeout=30) as response:
        text = response.read().decode()
    prefix = f'{name}{{queue="default"}} '
    return next(line[len(prefix) :] for line in text.splitlines() if line.startswith(prefix))


def test_a_long_poll_on_one_server_gets_a_task_enqueued_on_the_other_within_milliseconds(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    host, port = urlsplit(b.url).hostname, urlsplit(b.url).port
    with a, b, socket.create_connection((host, port), timeout=15) as sock:
        # Given a consumer long-polling server B
        park(sock, b.url, "/tasks/dequeue?wait=10")

        # When a task is enqueued on server A
        enqueued_at = time.monotonic()
        status, created = call(a.url, "POST", "/tasks", {"payload": {"hello": "B"}})
        reply = read_reply(sock)
        waited = time.monotonic() - enqueued_at

    # Then B's consumer got it at once, not when its wait ran out
    assert status == 201
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["id"] == created["id"]
    assert waited < 1.0


def test_a_pause_on_one_server_holds_the_queue_on_the_other_and_a_resume_wakes_it(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    host, port = urlsplit(b.url).hostname, urlsplit(b.url).port
    with a, b, socket.create_connection((host, port), timeout=15) as sock:
        # Given a task in a queue paused on server A: server B delivers nothing from it
        status, created = call(a.url, "POST", "/tasks", {"payload": {}, "queue": "held"})
        assert status == 201
        assert call(a.url, "PATCH", "/queues/held", {"paused": True})[0] == 200
        assert call(b.url, "POST", "/tasks/dequeue?queue=held")[0] == 404
        assert call(b.url, "GET", "/queues/held")[1]["settings"]["paused"] is True

        # and a consumer long-polling the queue on B
        park(sock, b.url, "/tasks/dequeue?queue=held&wait=10")

        # When A resumes the queue
        resumed_at = time.monotonic()
        assert call(a.url, "PATCH", "/queues/held", {"paused": None})[0] == 200
        reply = read_reply(sock)
        waited = time.monotonic() - resumed_at

    # Then B's consumer got the task at once
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body)["id"] == created["id"]
    assert waited < 1.0


def test_a_complete_repeated_on_another_server_answers_as_the_first_did(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        call(a.url, "POST", "/tasks", {"payload": {"n": 1}})
        status, task = call(a.url, "POST", "/tasks/dequeue")
        assert status == 200
        path = f"/tasks/{task['id']}/complete"
        first = call(a.url, "PUT", path, {"result": "first", "lease_id": task["lease_id"]})

        # A consumer whose answer was lost tries again through the other server
        again = call(b.url, "PUT", path, {"result": "second", "lease_id": task["lease_id"]})

        assert first[0] == 200
        assert again == first
        assert again[1]["result"] == "first"
        assert call(b.url, "GET", "/queue/stats")[1]["completed"] == 1
