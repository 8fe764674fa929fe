"""Workers and named queues: `--worker-queues a,b` limits what the workers consume; without it
they take every queue in turn, so a busy queue cannot starve another.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest

from tests.support import NO_PROXY, wait_until
from tornado_queue.config import Settings
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.server.simulation import SimulatedWorker, SimulatedWorkers
from tornado_queue.storage import MemoryStore
from tornado_queue.testing import ServerProcess


def put(store: MemoryStore, queue: str, count: int = 1) -> list[str]:
    new = NewTask(payload=b'{"q":"%s"}' % queue.encode(), queue=queue)
    return [outcome.task_id for outcome in store.enqueue_many([new] * count)]


def worker(store: MemoryStore, *queues: str) -> SimulatedWorker:
    return SimulatedWorker(store, work_seconds=0, stopping=threading.Event(), queues=queues)


# --- SimulatedWorker -----------------------------------------------------------------------------


def test_a_worker_with_queues_takes_only_from_them(store):
    [in_c] = put(store, "c")
    in_a = put(store, "a", 2)
    [in_b] = put(store, "b")
    consumer = worker(store, "a", "b")

    taken = [consumer.run_once() for _ in range(4)]

    assert [task.queue for task in taken[:3]] == ["a", "b", "a"]
    assert {task.id for task in taken[:3]} == {*in_a, in_b}
    assert taken[3] is None
    assert store.get(in_c).status is TaskStatus.PENDING
    assert store.get(in_c).attempts == 0
    assert store.stats("c")[TaskStatus.PENDING] == 1


def test_a_worker_without_queues_takes_every_queue_in_turn(store):
    busy = put(store, "a", 100)
    [quiet] = put(store, "b")
    consumer = worker(store)

    first, second, third = (consumer.run_once() for _ in range(3))

    assert (first.id, second.id, third.id) == (busy[0], quiet, busy[1])
    assert store.get(quiet).status is TaskStatus.COMPLETED
    assert store.stats("a")[TaskStatus.PENDING] == 98


def test_a_worker_without_queues_rotates_over_three_queues_and_skips_empty_ones(store):
    put(store, "x", 3)
    put(store, "y", 1)
    put(store, "z", 2)
    consumer = worker(store)

    queues = [consumer.run_once().queue for _ in range(6)]

    assert queues == ["x", "y", "z", "x", "z", "x"]
    assert consumer.run_once() is None


def test_a_worker_without_queues_finds_a_queue_created_after_it_started(store):
    consumer = worker(store)
    assert consumer.run_once() is None

    [task_id] = put(store, "late")

    assert consumer.run_once().id == task_id


def test_a_worker_with_queues_skips_an_empty_one(store):
    [in_b] = put(store, "b")
    consumer = worker(store, "a", "b")

    assert consumer.run_once().id == in_b
    assert consumer.run_once() is None


# --- SimulatedWorkers ----------------------------------------------------------------------------


def test_a_pool_with_queues_completes_theirs_and_leaves_the_rest_pending(store, pools):
    [in_c] = put(store, "c")
    pool = SimulatedWorkers(store, 2, work_seconds=0, queues=("a", "b"))
    pools.append(pool)
    pool.start()
    put(store, "a", 5)
    put(store, "b", 5)

    assert wait_until(lambda: pool.done == 10)
    assert pool.stop(timeout=5)
    assert store.stats("a")[TaskStatus.COMPLETED] == 5
    assert store.stats("b")[TaskStatus.COMPLETED] == 5
    assert store.get(in_c).status is TaskStatus.PENDING
    assert store.get(in_c).attempts == 0


def test_a_pool_without_queues_serves_a_quiet_queue_while_a_busy_one_is_full(pools):
    store = MemoryStore()
    put(store, "busy", 200)
    [quiet] = put(store, "quiet")
    pool = SimulatedWorkers(store, 1, work_seconds=0.01)
    pools.append(pool)
    pool.start()

    assert wait_until(lambda: store.get(quiet).status is TaskStatus.COMPLETED)
    done_when_quiet_served = pool.done
    assert pool.stop(timeout=5)
    assert done_when_quiet_served <= 3


# --- --worker-queues / TQ_WORKER_QUEUES ----------------------------------------------------------


def test_worker_queues_default_to_all():
    assert Settings.from_args([], environ={}).worker_queues == ()


@pytest.mark.parametrize(
    ("text", "queues"),
    [
        ("a,b", ("a", "b")),
        ("emails", ("emails",)),
        (" a , b.c ,", ("a", "b.c")),
        ("Q-1_x", ("Q-1_x",)),
    ],
)
def test_worker_queues_are_parsed_from_the_flag_and_the_environment(text, queues):
    from_flag = Settings.from_args(["--worker-queues", text], environ={})
    from_env = Settings.from_args([], environ={"TQ_WORKER_QUEUES": text})

    assert from_flag.worker_queues == queues
    assert from_env.worker_queues == queues


def test_the_worker_queues_flag_wins_over_the_environment():
    settings = Settings.from_args(["--worker-queues=a"], environ={"TQ_WORKER_QUEUES": "b,c"})

    assert settings.worker_queues == ("a",)


@pytest.mark.parametrize("text", ["a b", "a,b/c", "q" * 65, "caf\u00e9", "a,*"])
def test_an_invalid_queue_name_exits_with_status_2(capsys, text):
    with pytest.raises(SystemExit) as flag:
        Settings.from_args(["--worker-queues", text], environ={})
    flag_error = capsys.readouterr().err
    with pytest.raises(SystemExit) as env:
        Settings.from_args([], environ={"TQ_WORKER_QUEUES": text})
    env_error = capsys.readouterr().err

    assert flag.value.code == env.value.code == 2
    assert "--worker-queues" in flag_error
    assert "TQ_WORKER_QUEUES" in env_error


def test_the_server_workers_consume_only_the_named_queues(tmp_path: Path):
    def call(method: str, path: str, body: dict | None = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        sent = urllib.request.Request(server.url + path, data, headers, method=method)
        with NO_PROXY.open(sent, timeout=10) as response:
            return json.loads(response.read())

    flags = ("--workers", "2", "--work-seconds", "0", "--worker-queues", "a,b")
    with ServerProcess(tmp_path / "server.log", *flags) as server:
        tasks = [{"payload": {}, "queue": queue} for queue in ("c", "a", "b", "a")]
        call("POST", "/tasks/batch", {"tasks": tasks})

        def completed() -> int:
            return call("GET", "/queue/stats")["completed"]

        assert wait_until(lambda: completed() == 3)
        listing = {queue.pop("name"): queue for queue in call("GET", "/queues")}
        assert server.stop(timeout=15) == 0

    assert listing["a"]["completed"] == 2
    assert listing["b"]["completed"] == 1
    assert listing["c"] == {
        "pending": 1,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }
