"""The durable stores keep every acknowledged task across a kill -9 of the server, in order,
and never bring a finished task back."""

from __future__ import annotations

import signal
import threading
import uuid
from pathlib import Path

import pytest

from tests.support import call
from tornado_queue.testing import ServerProcess

PRODUCERS = 4


def produce(url: str, acknowledged: list[str], stop: threading.Event) -> None:
    """Enqueue until the server dies, keeping the ids of tasks that got their 201."""
    number = 0
    while not stop.is_set():
        try:
            status, task = call(url, "POST", "/tasks", {"payload": {"n": number}})
        except OSError:
            return  # the server was killed mid-request: that task was never acknowledged
        if status == 201:
            acknowledged.append(task["id"])
        number += 1


@pytest.fixture(params=["sqlite", "redis"])
def backend_flags(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, ...]:
    if request.param == "sqlite":
        return ("--backend", "sqlite", "--db", str(tmp_path / "tasks.db"))
    prefix = "{tq-" + uuid.uuid4().hex + "}"
    redis_url = request.getfixturevalue("redis_url")
    return ("--backend", "redis", "--redis-url", redis_url, "--redis-prefix", prefix)


def test_every_acknowledged_task_survives_kill_9_once_in_order_and_finished_ones_stay_finished(
    tmp_path: Path, backend_flags: tuple[str, ...]
):
    server = ServerProcess(tmp_path / "first.log", *backend_flags)
    try:
        # Given some tasks completed, and producers enqueueing as fast as they can
        finished = []
        for number in range(5):
            call(server.url, "POST", "/tasks", {"payload": {"early": number}})
            status, leased = call(server.url, "POST", "/tasks/dequeue")
            assert status == 200
            call(server.url, "PUT", f"/tasks/{leased['id']}/complete")
            finished.append(leased["id"])
        acknowledged: list[list[str]] = [[] for _ in range(PRODUCERS)]
        stop = threading.Event()
        producers = [
            threading.Thread(target=produce, args=(server.url, ids, stop)) for ids in acknowledged
        ]
        for producer in producers:
            producer.start()

        # When the server is killed with SIGKILL while they are writing
        while sum(map(len, acknowledged)) < 200:
            stop.wait(0.01)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        stop.set()
        for producer in producers:
            producer.join(timeout=15)
    finally:
        server.kill()

    # Then a server restarted on the same file has every acknowledged task exactly once,
    # pending in the order each producer got its acknowledgements, and the finished ones stay
    # finished
    with ServerProcess(tmp_path / "second.log", *backend_flags) as restarted:
        total = sum(map(len, acknowledged))
        status, pending = call(restarted.url, "GET", "/queue/view?limit=10000")
        assert status == 200
        pending_ids = [task["id"] for task in pending]
        assert len(pending_ids) == len(set(pending_ids))
        assert set().union(*map(set, acknowledged)) <= set(pending_ids)
        for ids in acknowledged:
            positions = [pending_ids.index(task_id) for task_id in ids]
            assert positions == sorted(positions)
        for task_id in finished:
            status, task = call(restarted.url, "GET", f"/tasks/{task_id}")
            assert (status, task["status"]) == (200, "completed")
        status, stats = call(restarted.url, "GET", "/queue/stats")
        assert stats["completed"] == len(finished)
        # At most one task per producer can have been written without its 201 arriving
        assert total <= stats["pending"] <= total + PRODUCERS


def test_a_complete_and_a_fail_repeated_after_a_kill_9_answer_as_the_first_did(
    tmp_path: Path, backend_flags: tuple[str, ...]
):
    # Given one task completed and one failed, each under its lease, then the server killed
    with ServerProcess(tmp_path / "first.log", *backend_flags) as server:
        leased = []
        for number in range(2):
            call(server.url, "POST", "/tasks", {"payload": {"n": number}})
            status, task = call(server.url, "POST", "/tasks/dequeue")
            assert status == 200
            leased.append(task)
        done, failed = leased
        complete = {"result": "first", "lease_id": done["lease_id"]}
        fail = {"error": "boom", "retry": False, "lease_id": failed["lease_id"]}
        first_complete = call(server.url, "PUT", f"/tasks/{done['id']}/complete", complete)
        first_fail = call(server.url, "PUT", f"/tasks/{failed['id']}/fail", fail)
        server.process.send_signal(signal.SIGKILL)

    # When the same commands come again to a restarted server
    with ServerProcess(tmp_path / "second.log", *backend_flags) as restarted:
        complete["result"] = "second"
        again_complete = call(restarted.url, "PUT", f"/tasks/{done['id']}/complete", complete)
        again_fail = call(restarted.url, "PUT", f"/tasks/{failed['id']}/fail", fail)

    # Then they are answered as the first time: 200, the first result, one attempt each
    assert first_complete[0] == first_fail[0] == 200
    assert again_complete == first_complete
    assert again_fail == first_fail
    assert again_complete[1]["result"] == "first"
    assert again_fail[1]["attempts"] == 1
