"""The real process: `python main.py` starts, serves, and stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from main import main

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (http://\S+)")
STOPPED = re.compile(r"stopped cleanly: (.*)")


class ServerProcess:
    """`python main.py` on a free port, logging to a file the test can read."""

    def __init__(self, log_path: Path, *flags: str) -> None:
        self.log_path = log_path
        self.log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "--port", "0", *flags],
            cwd=ROOT,
            stderr=self.log_file,
        )
        self.url = self._wait_for_url()

    def log(self) -> str:
        return self.log_path.read_text()

    def _wait_for_url(self) -> str:
        match = wait_for(lambda: LISTENING.search(self.log()))
        assert match, f"server did not start:\n{self.log()}"
        return match.group(1)

    def request(self, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(self.url + path, body, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self, signum: int) -> tuple[int, dict[str, int]]:
        """Send `signum`, wait for the exit, and return the exit code and the final counts."""
        self.process.send_signal(signum)
        code = self.process.wait(timeout=15)
        self.log_file.close()
        stopped = STOPPED.search(self.log())
        assert stopped, f"no clean-stop line in the log:\n{self.log()}"
        counts = dict(item.split("=") for item in stopped.group(1).split(", "))
        return code, {status: int(count) for status, count in counts.items()}


def wait_for(condition: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll until `condition()` is truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while not (result := condition()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(*flags: str) -> ServerProcess:
        server = ServerProcess(tmp_path / f"server{len(started)}.log", *flags)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()
        server.log_file.close()


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
    code, counts = server.stop(signum)

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
