"""The real process: `python main.py` starts, serves, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from main import main
from tornado_queue.testing import ServerProcess

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Server(ServerProcess):
    """A server process with a JSON request helper (never through an HTTP proxy)."""

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


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until `condition()` is truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(*flags: str) -> Server:
        server = Server(tmp_path / f"server{len(started)}.log", *flags)
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
