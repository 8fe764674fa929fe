"""The real process: `python main.py` starts, serves, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from main import main
from tests.support import NO_PROXY
from tornado_queue.testing import ROOT, ServerProcess


class Server(ServerProcess):
    """A server process with a JSON request helper (never through an HTTP proxy)."""

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None
        return port

    def connect(self) -> socket.socket:
        """A raw TCP connection to the server, for requests urllib cannot make."""
        return socket.create_connection(("127.0.0.1", self.port), timeout=IO_SECONDS)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(self.url + path, body, headers, method=method)
        try:
            with NO_PROXY.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop_and_count(self, signum: int) -> tuple[int, dict[str, int]]:
        """Send `signum`, wait for the exit, and return the exit code and the final counts."""
        code = self.stop(signum, timeout=15)
        counts = self.final_counts()
        assert counts is not None, f"no clean-stop line in the log:\n{self.log()}"
        return code, counts


STATES = ("pending", "processing", "completed", "failed", "scheduled", "waiting")
IO_SECONDS = 10.0
"""Longest a raw socket waits for the server before the test fails."""


def read_until(sock: socket.socket, received: bytes, marker: bytes) -> bytes:
    """Read from `sock` until `received` holds `marker`; fail if the connection closes first."""
    while marker not in received:
        data = sock.recv(65536)
        assert data, f"connection closed before {marker!r}; got {received[:300]!r}"
        received += data
    return received


def read_response(sock: socket.socket, received: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (after any 1xx) sized by its Content-Length: (status, headers,
    body). Header names are lower-cased."""
    while True:
        received = read_until(sock, received, b"\r\n\r\n")
        head, _, received = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        if status >= 200:
            break
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    assert "content-length" in headers, f"a bare {status} without a body: {head!r}"
    length = int(headers["content-length"])
    while len(received) < length:
        data = sock.recv(65536)
        assert data, f"connection closed inside the body; got {received[:300]!r}"
        received += data
    return status, headers, received[:length]


def start_request(server: Server, body_length: int) -> socket.socket:
    """Send the headers of a `POST /tasks` of `body_length` bytes and wait for the server's
    `100 Continue`, which Tornado sends only once the handler has taken the request in: from
    then on the request is in progress, waiting for its body."""
    sock = server.connect()
    try:
        sock.sendall(
            b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % body_length
        )
        assert read_until(sock, b"", b"\r\n\r\n").startswith(b"HTTP/1.1 100")
    except BaseException:
        sock.close()
        raise
    return sock


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until `condition()` is truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*flags: str, start_timeout: float = 30.0) -> Server:
        server = Server(tmp_path / f"server{len(started)}.log", *flags, start_timeout=start_timeout)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_with_exit_code_0_and_no_task_lost(servers, signum):
    # Given a server whose workers are busy with slow tasks and more tasks waiting
    server = servers("--workers", "2", "--work-seconds", "5")
    for number in range(20):
        status, _ = server.request(
            "POST", "/tasks", json.dumps({"payload": {"n": number}}).encode()
        )
        assert status == 201
    assert wait_for(lambda: server.request("GET", "/queue/stats")[1]["processing"] == 2)

    # When the signal arrives
    started = time.monotonic()
    code, counts = server.stop_and_count(signum)

    # Then it exits 0 within seconds and every task is still there, none stuck in processing
    assert code == 0
    assert time.monotonic() - started < 5
    assert counts["processing"] == 0
    assert counts["pending"] + counts["completed"] == 20


def test_the_server_serves_the_contract_and_logs_its_url_and_requests(servers):
    # Given a server started the way the README starts it
    server = servers()

    # When a task goes through its whole life over HTTP
    status, created = server.request("POST", "/tasks", b'{"payload": {"job": "send_email"}}')
    dequeue_status, task = server.request("POST", "/tasks/dequeue")
    complete_status, done = server.request("PUT", f"/tasks/{task['id']}/complete")

    # Then each step answers as the contract says, and the access log shows the requests
    assert (status, dequeue_status, complete_status) == (201, 200, 200)
    assert task["id"] == created["id"] and done["status"] == "completed"
    assert server.url.startswith("http://127.0.0.1:")
    assert wait_for(lambda: "200 PUT /tasks/" in server.log())


def test_an_oversized_body_gets_a_json_413_from_the_real_server(servers):
    # Given a server with a 1 KiB body limit
    server = servers("--max-body-bytes", "1024")

    # When a 64 KiB body is posted
    status, problem = server.request(
        "POST", "/tasks", b'{"payload": {"x": "' + b"y" * 65536 + b'"}}'
    )

    # Then the answer is a problem document naming the limit, and nothing was enqueued
    assert status == 413
    assert "1024" in problem["detail"]
    assert server.request("GET", "/queue/stats")[1]["pending"] == 0


def test_main_help_lists_the_flags_and_exits_0(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "--workers" in capsys.readouterr().out


def test_main_refuses_a_bad_flag_with_exit_code_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--port", "99999"])
    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err


def test_a_request_in_progress_when_sigterm_arrives_is_answered_and_its_task_kept(servers):
    # Given a request whose headers and half of its body have arrived
    server = servers()
    body = json.dumps({"payload": {"late": "but kept"}}).encode()
    with start_request(server, len(body)) as sock:
        sock.sendall(body[: len(body) // 2])

        # When SIGTERM arrives, and only then the rest of the body
        server.process.send_signal(signal.SIGTERM)
        assert wait_for(lambda: "shutting down" in server.log())
        sock.sendall(body[len(body) // 2 :])
        status, headers, reply = read_response(sock)

    # Then the request is answered in full, and the server exits 0 with the task counted
    assert status == 201, reply
    assert headers["content-type"] == "application/json"
    task = json.loads(reply)
    assert task["payload"] == {"late": "but kept"}
    assert task["status"] == "pending"
    assert server.process.wait(timeout=15) == 0  # the shutdown SIGTERM began goes on alone
    assert server.final_counts() == {**dict.fromkeys(STATES, 0), "pending": 1}


def test_a_second_signal_during_a_slow_shutdown_exits_at_once_with_a_nonzero_code(servers):
    # Given a shutdown kept waiting by a request whose body never comes (it would wait 10 s)
    server = servers("--workers", "1", "--work-seconds", "30")
    with start_request(server, 100) as sock:
        sock.sendall(b'{"payload":')
        server.process.send_signal(signal.SIGINT)
        assert wait_for(lambda: "shutting down" in server.log())
        assert server.process.poll() is None, "the shutdown did not wait for the request"

        # When a second SIGINT arrives
        started = time.monotonic()
        server.process.send_signal(signal.SIGINT)
        code = server.process.wait(timeout=5)
        elapsed = time.monotonic() - started

    # Then the process ends within moments, with a non-zero code and a line saying why
    assert elapsed < 2.0
    assert code != 0
    assert "second SIGINT: exiting now" in server.log()
    assert "stopped cleanly" not in server.log()


def test_a_busy_port_exits_1_saying_it_cannot_listen_without_a_traceback(servers):
    # Given a server on a port
    server = servers()

    # When a second server is started on the same port
    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "main.py", "--port", str(server.port)],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )

    # Then it exits 1 within seconds with one readable line, and the first one still serves
    assert second.returncode == 1
    assert time.monotonic() - started < 10
    assert second.stderr.startswith("error: --host/--port: cannot listen")
    assert len(second.stderr.splitlines()) == 1
    assert f":{server.port}" in second.stderr
    assert "Traceback" not in second.stderr
    assert server.request("GET", "/queue/stats")[0] == 200


CHUNK = b"x" * (64 * 1024)


def test_a_huge_chunked_body_gets_a_json_413_before_the_connection_closes(servers):
    # Given a server with a 1 KiB limit, and a client streaming a 12 MiB chunked body, which
    # is past the limit plus the bytes the server would read and discard (8 MiB)
    server = servers("--max-body-bytes", "1024")
    sock = server.connect()
    sock.sendall(
        b"POST /tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    def send_body() -> None:
        frame = b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK)
        with contextlib.suppress(OSError):  # the server closes the connection after answering
            for _ in range((12 << 20) // len(CHUNK)):
                sock.sendall(frame)
            sock.sendall(b"0\r\n\r\n")

    sender = threading.Thread(target=send_body, name="chunked-sender", daemon=True)

    # When the body is streamed while the answer is read as soon as it comes
    try:
        sender.start()
        status, headers, reply = read_response(sock)
    finally:
        with contextlib.suppress(OSError):  # not connected any more: the server closed it
            sock.shutdown(socket.SHUT_RDWR)  # unblocks the sender if it is still writing
        sender.join(IO_SECONDS)
        sock.close()

    # Then the answer is a problem document naming the limit, and nothing was enqueued
    assert not sender.is_alive()
    assert status == 413, reply
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(reply)
    assert problem["status"] == 413
    assert "1024" in problem["detail"]
    assert server.request("GET", "/queue/stats")[1]["pending"] == 0


def children_of(pid: int) -> list[int]:
    """The ids of the live processes whose parent is `pid` (Linux /proc)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def test_dev_py_serve_is_the_server_itself_and_exits_0_on_sigterm(tmp_path):
    # Given `python3 dev.py serve` (the venv is set up, so dev.py goes straight to the server)
    log_path = tmp_path / "dev-serve.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [sys.executable, "dev.py", "serve", "--port", "0"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stderr=log_file,
        )
    children: list[int] = []
    try:
        assert wait_for(lambda: "listening on" in log_path.read_text(), timeout=30), (
            log_path.read_text()
        )
        children = children_of(process.pid)
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")

        # When SIGTERM goes to the process that was started
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
    finally:
        for pid in [process.pid, *children]:  # only what this test started, if still running
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=5)

    # Then that process was the server (dev.py replaced itself), with no child of its own,
    # and it stopped cleanly with exit code 0
    assert children == []
    assert b"main.py" in command_line
    assert b"dev.py" not in command_line
    assert code == 0
    assert "stopped cleanly" in log_path.read_text()


def test_log_level_warning_still_prints_the_listening_line_and_hides_access_logs(servers):
    # Given a server started with --log-level warning
    server = servers("--log-level", "warning", start_timeout=10)

    # When it serves a request and stops
    assert server.request("GET", "/queue/stats")[0] == 200
    code, counts = server.stop_and_count(signal.SIGTERM)

    # Then the start-up and stop lines are there (the start-up line is the only place the port
    # is told with --port 0), and the info-level access log is not
    log = server.log()
    assert f"listening on {server.url}" in log
    assert "200 GET /queue/stats" not in log
    assert code == 0
    assert counts["pending"] == 0


def test_a_shutdown_answers_parked_long_polls_at_once_instead_of_waiting_them_out(servers):
    # Given a consumer long-polling an empty queue for up to 30 s, taken in by the server (its
    # 100 Continue has come) and parked (a later request has been answered since)
    server = servers()
    with server.connect() as sock:
        sock.sendall(
            b"POST /tasks/dequeue?wait=30 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Expect: 100-continue\r\nContent-Length: 0\r\n\r\n"
        )
        assert read_until(sock, b"", b"\r\n\r\n").startswith(b"HTTP/1.1 100")
        assert server.request("GET", "/queue/stats")[0] == 200

        # When the server is told to stop
        started = time.monotonic()
        code = server.stop(signal.SIGTERM, timeout=15)
        status, _, body = read_response(sock)

    # Then the poll got its empty-queue 404 at once and the server exited 0, well within the
    # 10 s it gives a request that is still running
    assert status == 404
    assert json.loads(body)["status"] == 404
    assert code == 0
    assert time.monotonic() - started < 3
    assert "requests still in progress" not in server.log()
