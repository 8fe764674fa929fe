"""The worker runner: real worker processes (`python -m tornado_queue worker`) against a real
server, and the runner in-process for what a task's function returns or raises.

Task functions append one line per event to a file opened with O_APPEND, so lines from many
processes never interleave; the tests count runs from those lines."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.client.support import real_server
from tests.support import wait_until
from tornado_queue.client import Client
from tornado_queue.testing import ROOT, ServerProcess
from tornado_queue.validation import MAX_ERROR_CHARS
from tornado_queue.worker import report_progress
from tornado_queue.worker.execution import error_text, load_function
from tornado_queue.worker.runner import Runner, WorkerConfig, current_task

TASKS_MODULE = """
import os
import time
from pathlib import Path

from tornado_queue.worker.runner import current_task

EVENTS = Path(os.environ["TQ_TEST_EVENTS"])


def record(event):
    task = current_task()
    line = f"{event} {task.payload['n']} {task.attempts} {os.getpid()}\\n"
    fd = os.open(EVENTS, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def count(payload):
    record("run")
    return {"n": payload["n"]}


def hang_first(payload):
    record("start")
    if current_task().attempts == 1:
        time.sleep(3600)  # the test kills this process meanwhile
    record("done")


def slow(payload):
    record("start")
    time.sleep(payload["seconds"])
    record("done")


def gated(payload):
    record("start")
    deadline = time.monotonic() + 30
    while not EVENTS.with_name("gate").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    record("done")
"""

DEADLINE = 15.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    with real_server(tmp_path) as process:
        yield process


@pytest.fixture
def events(tmp_path: Path) -> Path:
    (tmp_path / "tasks.py").write_text(TASKS_MODULE)
    return tmp_path / "events.log"


def read_events(events: Path) -> list[tuple[str, int, int, int]]:
    """(event, n, attempt, pid) per line."""
    if not events.exists():
        return []
    lines = events.read_text().splitlines()
    return [(e, int(n), int(a), int(pid)) for e, n, a, pid in (line.split() for line in lines)]


class Workers:
    """Worker processes started by a test, each logging to its own file; killed at the end."""

    def __init__(self, directory: Path, url: str) -> None:
        self.directory = directory
        self.url = url
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, function: str, *flags: str) -> subprocess.Popen[bytes]:
        log = (self.directory / f"worker{len(self.started)}.log").open("w")
        env = os.environ | {
            "PYTHONPATH": os.pathsep.join([str(self.directory), str(ROOT)]),
            "TQ_TEST_EVENTS": str(self.directory / "events.log"),
        }
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tornado_queue",
                "worker",
                f"tasks:{function}",
                *flags,
                "--url",
                self.url,
                "--report-seconds",
                "1",
            ],
            cwd=self.directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.started.append(process)
        assert wait_until(lambda: "worker running" in self.log(process), DEADLINE), self.log(
            process
        )
        return process

    def log(self, process: subprocess.Popen[bytes]) -> str:
        return (self.directory / f"worker{self.started.index(process)}.log").read_text()

    def kill_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url) as client:
        yield client


@pytest.fixture
def workers(tmp_path: Path, server: ServerProcess, events: Path) -> Iterator[Workers]:
    started = Workers(tmp_path, server.url)
    yield started
    started.kill_all()


def completed(client: Client, count: int) -> Callable[[], bool]:
    return lambda: client.stats()["completed"] == count


# --- worker processes ------------------------------------------------------------------------


def test_four_worker_processes_run_each_task_exactly_once(client, workers, events):
    # Given four worker processes of four threads each, and 200 tasks
    processes = [workers.start("count", "--concurrency", "4") for _ in range(4)]
    client.enqueue_many([{"n": n} for n in range(200)])

    # When they have worked the queue empty
    assert wait_until(completed(client, 200), DEADLINE), client.stats()

    # Then every task's function ran exactly once, and the work was shared
    runs = Counter(n for _, n, _, _ in read_events(events))
    assert runs == Counter(range(200))
    for process in processes:
        process.send_signal(signal.SIGTERM)
    assert [process.wait(DEADLINE) for process in processes] == [0, 0, 0, 0]
    assert len({pid for *_, pid in read_events(events)}) > 1
    late = client.enqueue({"n": 0})
    assert client.get(late).status == "pending", workers.log(processes[0])  # nobody consumes


def test_a_task_of_a_killed_worker_is_handed_to_another_and_done_there(client, workers, events):
    # Given a worker that took a task and hangs in it
    task_id = client.enqueue({"n": 7})
    first = workers.start("hang_first", "--lease", "1")
    assert wait_until(lambda: len(read_events(events)) == 1, DEADLINE)

    # When it is killed (kill -9: no chance to give the task back) and another worker runs
    first.kill()
    first.wait()
    second = workers.start("hang_first", "--lease", "1")

    # Then its lease lapses and the other worker does the task, on its second attempt
    assert wait_until(completed(client, 1), DEADLINE), client.stats()
    assert read_events(events) == [
        ("start", 7, 1, first.pid),
        ("start", 7, 2, second.pid),
        ("done", 7, 2, second.pid),
    ]
    task = client.get(task_id)
    assert (task.status, task.attempts) == ("completed", 2)


def test_heartbeats_keep_a_task_longer_than_its_lease(client, workers, events):
    # Given a worker with a 1 s lease and a task that takes 2.5 s
    task_id = client.enqueue({"n": 1, "seconds": 2.5})
    workers.start("slow", "--lease", "1")

    # When it finishes, then it ran once, on one lease that never expired
    assert wait_until(completed(client, 1), DEADLINE), client.stats()
    assert [event for event, *_ in read_events(events)] == ["start", "done"]
    assert client.get(task_id).attempts == 1
    assert client.totals()["lease_expired"] == 0


def test_each_slot_names_itself_host_pid_slot_in_workers_and_histories(client, workers, events):
    # Given a worker of two slots, each running one slow task
    ids = client.enqueue_many([{"n": 1, "seconds": 1.5}, {"n": 2, "seconds": 1.5}])
    worker = workers.start("slow", "--concurrency", "2", "--lease", "1")
    names = {f"{socket.gethostname()}/{worker.pid}/{slot}" for slot in (0, 1)}

    # While they run, the server lists both slots, each holding its task
    assert wait_until(lambda: len(read_events(events)) == 2, DEADLINE)
    holding = {listed.id: listed.tasks for listed in client.workers()}
    assert set(holding) == names
    assert sorted(task for tasks in holding.values() for task in tasks) == sorted(ids)

    # Once done, each task's history names the slot that took it, and no lease ran out
    assert wait_until(completed(client, 2), DEADLINE), client.stats()
    takers = {client.get(task_id).history[1].worker for task_id in ids}
    assert takers == names
    done = {listed.id: listed.completed for listed in client.workers()}
    assert done == dict.fromkeys(names, 1)
    assert client.totals()["lease_expired"] == 0


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_finishes_running_tasks_takes_no_more_and_exits_0(
    client, workers, events, tmp_path, signum
):
    # Given a worker of three threads: two run tasks, one long-polls (for up to 20 s)
    client.enqueue_many([{"n": 1}, {"n": 2}])
    worker = workers.start("gated", "--concurrency", "3", "--wait", "20")
    assert wait_until(lambda: len(read_events(events)) == 2, DEADLINE)

    # When it gets the signal (Ctrl-C is SIGINT) and a task arrives after it
    worker.send_signal(signum)
    assert wait_until(lambda: "taking no more tasks" in workers.log(worker), DEADLINE)
    late = client.enqueue({"n": 3})
    assert worker.poll() is None  # still finishing its two tasks

    # Then once the running tasks end it exits 0 at once, both completed, the late one untouched
    (tmp_path / "gate").touch()
    assert worker.wait(DEADLINE) == 0
    assert client.stats() == {
        "pending": 1,
        "processing": 0,
        "completed": 2,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }
    assert client.get(late).attempts == 0
    assert "worker stopped: 2 done, 0 failed" in workers.log(worker)


def test_a_function_that_cannot_be_imported_exits_2_with_the_reason(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "tornado_queue", "worker", "no_such_module:run"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert process.returncode == 2
    assert "cannot import 'no_such_module'" in process.stderr


# --- the runner in-process -------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with real_server(tmp_path_factory.mktemp("runner")) as process:
        yield process


def run_in_process(server: ServerProcess, queue: str, function: Callable[[dict], Any]) -> None:
    """Run `function` on `queue` until nothing is pending or processing there."""
    config = WorkerConfig(url=server.url, queue=queue, concurrency=2, wait=1)
    runner = Runner(config, function)
    runner.start()
    try:
        with Client(server.url) as client:
            done = lambda: not any(client.stats(queue)[s] for s in ("pending", "processing"))  # noqa: E731
            assert wait_until(done, DEADLINE), client.stats(queue)
    finally:
        runner.stop()
        assert runner.join(DEADLINE)


@pytest.fixture
def shared_client(shared_server: ServerProcess) -> Iterator[Client]:
    with Client(shared_server.url) as client:
        yield client


def test_an_exception_fails_the_attempt_with_its_type_message_and_traceback(
    shared_server, shared_client
):
    def send_email(payload: dict) -> None:
        raise ConnectionError(f"SMTP server refused {payload['to']}")

    client = shared_client
    task_id = client.enqueue({"to": "a@example.com"}, queue="raises", max_attempts=1)
    run_in_process(shared_server, "raises", send_email)

    task = client.get(task_id)
    assert task.status == "failed"
    head, _, trace = task.error.partition("\n")
    assert head == "ConnectionError: SMTP server refused a@example.com"
    assert trace.startswith("Traceback (most recent call last):")
    assert "in send_email" in trace


def test_a_huge_error_is_cut_to_what_the_server_accepts_keeping_both_ends(
    shared_server, shared_client
):
    def verbose(payload: dict) -> None:
        raise ValueError("x" * 50_000)

    client = shared_client
    task_id = client.enqueue({}, queue="huge-error", max_attempts=1)
    run_in_process(shared_server, "huge-error", verbose)

    error = client.get(task_id).error
    assert len(error) <= MAX_ERROR_CHARS
    assert error.startswith("ValueError: xxx") and "[…]" in error
    assert error.rstrip().endswith("x")  # the traceback's last line, the exception itself
    assert len(error_text(ValueError("short"))) < 200


def test_a_result_that_is_not_json_fails_the_task_without_a_retry(shared_server, shared_client):
    client = shared_client
    task_id = client.enqueue({}, queue="not-json", max_attempts=3)
    run_in_process(shared_server, "not-json", lambda payload: {1, 2})

    task = client.get(task_id)
    assert (task.status, task.attempts) == ("failed", 1)
    assert task.error.startswith("TypeError: the return value of")
    assert "not JSON-serialisable" in task.error


def test_a_result_the_server_refuses_fails_the_task_once_with_the_reason(
    shared_server, shared_client
):
    # Over the server's --max-body-bytes (1 MiB): running it again would give the same result.
    client = shared_client
    task_id = client.enqueue({}, queue="too-big", max_attempts=3)
    runs: list[int] = []

    def too_big(payload: dict) -> str:
        runs.append(1)
        return "x" * (2 << 20)

    run_in_process(shared_server, "too-big", too_big)

    task = client.get(task_id)
    assert (task.status, task.attempts, len(runs)) == ("failed", 1, 1)
    assert task.error.startswith("result refused by the server:")


def test_an_async_function_is_awaited_and_sees_its_task(shared_server, shared_client):
    async def handler(payload: dict) -> dict:
        await asyncio.sleep(0.01)
        return {"id": current_task().id, "doubled": payload["n"] * 2}

    client = shared_client
    ids = client.enqueue_many([{"n": 1}, {"n": 2}, {"n": 3}], queue="async-fn")
    run_in_process(shared_server, "async-fn", handler)

    results = [client.get(task_id).result for task_id in ids]
    assert results == [{"id": i, "doubled": n * 2} for i, n in zip(ids, (1, 2, 3), strict=True)]


def test_a_function_reports_progress_under_its_lease(shared_server, shared_client):
    def handler(payload: dict) -> int:
        for step in range(1, payload["steps"] + 1):
            shown = report_progress({"step": step})
            assert shown.progress == {"step": step}
        return payload["steps"]

    client = shared_client
    task_id = client.enqueue({"steps": 3}, queue="progress-fn")
    run_in_process(shared_server, "progress-fn", handler)

    task = client.get(task_id)
    assert (task.status, task.result, task.progress) == ("completed", 3, {"step": 3})


def test_report_progress_outside_a_task_function_is_a_lookup_error():
    with pytest.raises(LookupError):
        report_progress(1)


def test_load_function_explains_what_is_wrong():
    assert load_function("os.path:join") is os.path.join
    for spec, reason in [
        ("os.path", "expected MODULE:FUNCTION"),
        ("os:no_such_name", "has no attribute"),
        ("os:sep", "is not callable"),
    ]:
        with pytest.raises(ValueError, match=reason):
            load_function(spec)
