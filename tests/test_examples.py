"""The runnable examples in examples/ do what the README's tour says, against a real server:
the producer enqueues three e-mails, the worker runner sends them with examples/tasks.py, and
the asyncio example produces and consumes its own queue. They leave no file behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import wait_until
from tornado_queue.client import Client
from tornado_queue.testing import ROOT, ServerProcess

EXAMPLES = ROOT / "examples"
WORKER = (sys.executable, "-m", "tornado_queue", "worker")
ENVIRONMENT = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"}
"""The package from this checkout, and no bytecode written next to the examples."""


@pytest.fixture
def server(tmp_path: Path):
    with ServerProcess(tmp_path / "server.log") as process:
        yield process


def run_example(name: str, url: str) -> str:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--url", url],
        cwd=EXAMPLES,
        env=ENVIRONMENT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def files_in_examples() -> set[Path]:
    return {path for path in EXAMPLES.rglob("*") if "__pycache__" not in path.parts}


def test_the_producer_and_the_worker_runner_send_the_three_emails(server):
    before = files_in_examples()

    out = run_example("producer.py", server.url)
    assert out.count("enqueued ") == 3
    worker = subprocess.Popen(
        [*WORKER, "tasks:send_email", "--queue", "emails", "--url", server.url],
        cwd=EXAMPLES,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENVIRONMENT,
    )
    try:
        with Client(server.url) as client:
            assert wait_until(lambda: client.stats("emails")["completed"] == 3, timeout=30)
            worker.send_signal(signal.SIGTERM)
            output, _ = worker.communicate(timeout=30)
            assert worker.returncode == 0, output
            assert "sending 'Welcome #0' to ada@example.com (attempt 1)" in output
    finally:
        if worker.poll() is None:
            worker.kill()
    assert files_in_examples() == before


def test_the_async_example_produces_and_consumes_its_own_queue(server):
    out = run_example("async_client.py", server.url)

    assert "enqueued 5 tasks in one request" in out
    assert "completed 5 tasks" in out
    with Client(server.url) as client:
        assert client.stats("squares")["completed"] == 5
