"""A Redis reply lost after the script ran: the operation was applied, the server never heard.

A TCP proxy between a real server process and a real redis-server forwards every command and,
when told, closes the connection instead of passing back the reply to the next command that
names an operation. The server must then answer the truth: a fenced complete or fail is
applied again and answers 200 as the first application would have; a dequeue, which cannot be
applied again safely, answers 503 of type outcome-unknown and its task comes back when its
lease expires. Never a 503 that claims nothing changed.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import call, wait_until
from tornado_queue.testing import ServerProcess

OUTCOME_UNKNOWN = "urn:tornado-queue:problem:outcome-unknown"


class ReplyDropper:
    """A loopback TCP proxy to `port`. `drop_reply_to(marker)` makes it lose the reply to the
    next command containing `marker`: the command reaches Redis and runs, then the proxy closes
    that connection instead of forwarding what Redis answered."""

    def __init__(self, port: int) -> None:
        self.target = port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._marker: bytes | None = None
        self._lock = threading.Lock()
        self.dropped = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def drop_reply_to(self, marker: bytes) -> None:
        with self._lock:
            self._marker = marker

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            doomed = threading.Event()
            threading.Thread(target=self._commands, args=(client, upstream, doomed)).start()
            threading.Thread(target=self._replies, args=(upstream, client, doomed)).start()

    def _commands(self, client: socket.socket, upstream: socket.socket, doomed: threading.Event):
        while data := _read(client):
            with self._lock:
                if self._marker is not None and self._marker in data:
                    self._marker = None
                    doomed.set()  # before Redis can answer
            try:
                upstream.sendall(data)
            except OSError:
                break
        _close(client, upstream)

    def _replies(self, upstream: socket.socket, client: socket.socket, doomed: threading.Event):
        while data := _read(upstream):
            if doomed.is_set():
                self.dropped += 1
                break
            try:
                client.sendall(data)
            except OSError:
                break
        _close(client, upstream)


def _read(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[ReplyDropper]:
    dropper = ReplyDropper(int(redis_url.rsplit(":", 1)[1].split("/", maxsplit=1)[0]))
    yield dropper
    dropper.close()


@pytest.fixture
def server(proxy: ReplyDropper, tmp_path: Path) -> Iterator[ServerProcess]:
    prefix = "{tq-" + uuid.uuid4().hex + "}"
    url = f"redis://127.0.0.1:{proxy.port}/0"
    flags = ("--backend", "redis", "--redis-url", url, "--redis-prefix", prefix)
    with ServerProcess(tmp_path / "server.log", *flags) as process:
        yield process


def leased_task(server: ServerProcess, lease: int = 30) -> dict:
    assert call(server.url, "POST", "/tasks", {"payload": {"n": 1}})[0] == 201
    status, task = call(server.url, "POST", f"/tasks/dequeue?lease={lease}")
    assert status == 200, task
    return task


def test_a_complete_whose_reply_was_lost_is_answered_200_with_the_first_result(server, proxy):
    task = leased_task(server)
    proxy.drop_reply_to(b"complete")

    body = {"result": {"sent": True}, "lease_id": task["lease_id"]}
    status, done = call(server.url, "PUT", f"/tasks/{task['id']}/complete", body)

    assert proxy.dropped == 1, "the reply was not lost: the test proved nothing"
    assert status == 200, done
    assert (done["status"], done["result"]) == ("completed", {"sent": True})
    assert call(server.url, "GET", "/queue/stats")[1]["completed"] == 1
    log = server.log()
    assert log.count("the store stopped answering") == 1
    assert log.count("the store is answering again") == 1
    assert "Traceback" not in log


def test_a_fail_whose_reply_was_lost_counts_one_attempt_and_one_backoff(server, proxy):
    task = leased_task(server)
    proxy.drop_reply_to(b"fail")

    body = {"error": "boom", "lease_id": task["lease_id"]}
    status, failed = call(server.url, "PUT", f"/tasks/{task['id']}/fail", body)

    assert proxy.dropped == 1
    assert status == 200, failed
    assert (failed["status"], failed["attempts"], failed["error"]) == ("scheduled", 1, "boom")
    assert call(server.url, "GET", f"/tasks/{task['id']}")[1] == failed


def test_a_dequeue_whose_reply_was_lost_says_the_outcome_is_unknown_and_the_task_comes_back(
    server, proxy
):
    assert call(server.url, "POST", "/tasks", {"payload": {"n": 1}})[0] == 201
    proxy.drop_reply_to(b"dequeue")

    status, problem = call(server.url, "POST", "/tasks/dequeue?lease=1")

    assert proxy.dropped == 1
    assert status == 503, problem
    assert problem["type"] == OUTCOME_UNKNOWN
    assert "returns to the queue when its lease expires" in problem["detail"]
    assert call(server.url, "GET", "/queue/stats")[1]["processing"] == 1, "leased to nobody"
    # When the lease runs out, the task is delivered to the next consumer.
    assert wait_until(lambda: call(server.url, "POST", "/tasks/dequeue")[0] == 200, timeout=10)
