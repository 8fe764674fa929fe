"""Concurrent clients through the real server: no task is lost, duplicated or moved twice.

Every test runs in both store-call modes (see `store_calls` in tests/conftest.py). In "executor"
mode the store calls of concurrent requests run on Tornado's default pool threads. A store call
takes microseconds and parsing the next request takes longer, so left alone those calls would
seldom overlap: a `StartingGate` holds them and lets them go RACERS at a time, and the switch
interval is cut to a microsecond, so they really interleave inside the store. Checked by
replacing the store's lock with a no-op: the racing completes (and the threaded test) then fail
on every run. (A racing dequeue cannot hand a task out twice even then, since the pending queue
pops atomically; that test guards the contract, not the lock.)
"""

from __future__ import annotations

import asyncio
import sys
import threading
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.conftest import STORE_CALLS
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    request,
    stats,
)
from tests.support import NO_PROXY
from tornado_queue.config import Settings
from tornado_queue.models import NewTask
from tornado_queue.server.app import make_app
from tornado_queue.server.simulation import SimulatedWorkers
from tornado_queue.storage import MemoryStore

RACERS = 4
"""Store calls a `StartingGate` releases together: fewer than the threads of the smallest
default executor (`min(32, cpus + 4)`), so a group never waits for a thread that cannot come."""
GATE_SECONDS = 10.0


@pytest.fixture(autouse=True)
def frequent_thread_switches() -> Iterator[None]:
    """Switch threads every microsecond (not every 5 ms) so overlapping calls interleave."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(previous)


class StartingGate:
    """Wraps a store method: its first `groups * RACERS` calls are held and let go `RACERS` at
    a time, together; later calls pass straight through.

    A test gates only calls that are sure to arrive, so no group waits for ever (and if one
    did, the barrier would break after GATE_SECONDS and the test would fail, not hang).
    """

    def __init__(self, method: Callable[..., Any], groups: int) -> None:
        self._method = method
        self._barrier = threading.Barrier(RACERS, timeout=GATE_SECONDS)
        self._gated = groups * RACERS
        self._lock = threading.Lock()
        self._arrived = 0
        self._released = 0
        self.threads: set[str] = set()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            self._arrived += 1
            racer = self._arrived <= self._gated
            self.threads.add(threading.current_thread().name)
        if racer:
            self._barrier.wait()
            with self._lock:
                self._released += 1
        return self._method(*args, **kwargs)

    def assert_raced(self) -> None:
        """Every gated call met its group and was let go, on pool threads (not the IOLoop's)."""
        assert not self._barrier.broken
        assert self._released == self._gated
        assert threading.current_thread().name not in self.threads
        assert len(self.threads) >= RACERS


@pytest.fixture
def race(store, store_calls, monkeypatch) -> Callable[[str, int], StartingGate | None]:
    """`race("complete", groups)` gates that store method in executor mode; inline, calls run
    one at a time on the IOLoop and there is nothing to gate (None)."""

    def gate(name: str, groups: int) -> StartingGate | None:
        if store_calls != "executor":
            return None
        starting_gate = StartingGate(getattr(store, name), groups)
        monkeypatch.setattr(store, name, starting_gate)
        return starting_gate

    return gate


def assert_raced(gate: StartingGate | None) -> None:
    if gate is not None:
        gate.assert_raced()


@pytest.fixture
def wide_client(http_server):
    """A client that keeps many requests in flight at once (the default allows 10)."""
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    yield client
    client.close()


@pytest.mark.gen_test
async def test_store_calls_run_on_the_ioloop_inline_and_on_pool_threads_in_executor_mode(
    http_client, base_url, store, store_calls, monkeypatch
):
    stats_of_store = store.stats
    callers: list[threading.Thread] = []

    def recording_stats(*args, **kwargs):
        callers.append(threading.current_thread())
        return stats_of_store(*args, **kwargs)

    monkeypatch.setattr(store, "stats", recording_stats)

    await stats(http_client, base_url)

    [caller] = callers
    on_ioloop = caller is threading.current_thread()  # pytest-tornado runs the IOLoop here
    assert on_ioloop == (store_calls == "inline")


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_enqueues_all_get_distinct_ids_and_are_all_counted(
    wide_client, base_url, race
):
    gate = race("enqueue_many", groups=200 // RACERS)

    responses = await asyncio.gather(
        *(
            request(wide_client, base_url, "POST", "/tasks", {"payload": {"i": i}})
            for i in range(200)
        )
    )

    assert_raced(gate)
    tasks = [assert_task_document(assert_json(response, 201)) for response in responses]
    assert len({task["id"] for task in tasks}) == 200
    assert sorted(task["payload"]["i"] for task in tasks) == list(range(200))
    counts = await stats(wide_client, base_url)
    assert counts == {
        "pending": 200,
        "processing": 0,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }
    view = await request(wide_client, base_url, "GET", "/queue/view")
    assert view.headers["X-Total-Count"] == "200"
    assert {task["id"] for task in assert_json(view, 200)} == {task["id"] for task in tasks}


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_consumers_receive_every_task_exactly_once(
    wide_client, base_url, store, race
):
    enqueued = [store.enqueue(NewTask(payload=b'{"i":%d}' % i)).id for i in range(120)]
    # Until 120 dequeues have run, no consumer has seen a 404, so all 12 keep calling and every
    # one of the first 120 calls is sure to arrive: those are the ones held and raced.
    gate = race("dequeue_many", groups=120 // RACERS)

    async def consume() -> list[str]:
        received = []
        while True:
            response = await request(wide_client, base_url, "POST", "/tasks/dequeue")
            if response.code == 404:
                assert_problem(response, 404)
                return received
            task = assert_json(response, 200)
            assert task["status"] == "processing"
            assert task["attempts"] == 1
            received.append(task["id"])

    per_consumer = await asyncio.gather(*(consume() for _ in range(12)))

    assert_raced(gate)
    received = Counter(task_id for ids in per_consumer for task_id in ids)
    assert sum(received.values()) == 120
    assert set(received) == set(enqueued)
    assert set(received.values()) == {1}
    assert await stats(wide_client, base_url) == {
        "pending": 0,
        "processing": 120,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }


RACE_ROUNDS = 200
"""Rounds of RACERS gated completes of one task in executor mode. Without the store's lock about
one round in ten lets two callers through (measured with the lock replaced by a no-op; the rate
varies from run to run), so 200 rounds catch a missing lock almost surely, in about 3 s."""
ROUNDS = 20
"""Rounds for the other round-based tests, and for completes inline (nothing can overlap)."""


@pytest.mark.gen_test(timeout=60)
async def test_racing_completes_of_one_task_succeed_exactly_once(
    wide_client, base_url, store, store_calls, race
):
    rounds = RACE_ROUNDS if store_calls == "executor" else ROUNDS
    gate = race("complete", groups=rounds)

    for round_number in range(rounds):
        store.enqueue(NewTask(payload=b'{"round":%d}' % round_number))
        task_id = store.dequeue().id

        responses = await asyncio.gather(
            *(
                request(wide_client, base_url, "PUT", f"/tasks/{task_id}/complete")
                for _ in range(RACERS)
            )
        )

        codes = Counter(response.code for response in responses)
        assert codes == {200: 1, 409: RACERS - 1}, f"round {round_number}"
        for response in responses:
            if response.code == 409:
                assert_problem(response, 409)
            else:
                assert assert_json(response, 200)["status"] == "completed"

    assert_raced(gate)
    counts = await stats(wide_client, base_url)
    assert (counts["processing"], counts["completed"]) == (0, rounds)


@pytest.mark.gen_test(timeout=60)
async def test_racing_dequeues_of_one_pending_task_hand_it_out_once(
    wide_client, base_url, store, race
):
    gate = race("dequeue_many", groups=ROUNDS)

    for round_number in range(ROUNDS):
        task_id = store.enqueue(NewTask(payload=b'{"round":%d}' % round_number)).id

        responses = await asyncio.gather(
            *(request(wide_client, base_url, "POST", "/tasks/dequeue") for _ in range(RACERS))
        )

        codes = Counter(response.code for response in responses)
        assert codes == {200: 1, 404: RACERS - 1}, f"round {round_number}"
        [winner] = [assert_json(r, 200) for r in responses if r.code == 200]
        assert winner["id"] == task_id
        assert winner["attempts"] == 1
        for response in responses:
            if response.code == 404:
                assert_problem(response, 404)

    assert_raced(gate)
    counts = await stats(wide_client, base_url)
    assert (counts["pending"], counts["processing"]) == (0, ROUNDS)


# --- real threads --------------------------------------------------------------------------


class ServerThread:
    """The app on a real HTTPServer, served by its own event loop in a background thread."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="test-http-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = HTTPServer(self.app)
        sockets = bind_sockets(0, "127.0.0.1")
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            server.stop()
            await server.close_all_connections()

    def __enter__(self) -> ServerThread:
        self._thread.start()
        assert self._ready.wait(10), "server thread did not start"
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        assert not self._thread.is_alive(), "server thread did not stop"


def call(port: int, method: str, path: str, document: Any = None) -> tuple[int, Any]:
    """One blocking request with urllib: (status, JSON document)."""
    data = None if document is None else orjson.dumps(document)
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with NO_PROXY.open(req, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            assert error.headers["Content-Type"] == "application/problem+json"
            return error.code, orjson.loads(error.read())


class CompletionLog:
    """Wraps a store's `complete` to count successful completions per id, and to wait for them."""

    def __init__(self, store: MemoryStore) -> None:
        self._complete = store.complete
        self._condition = threading.Condition()
        self.counts: Counter[str] = Counter()

    def complete(self, task_id: str, *args: Any, **kwargs: Any) -> Any:
        task = self._complete(task_id, *args, **kwargs)
        with self._condition:
            self.counts[task_id] += 1
            self._condition.notify_all()
        return task

    def wait_for_total(self, total: int, timeout: float) -> bool:
        with self._condition:
            return self._condition.wait_for(lambda: self.counts.total() >= total, timeout)


@pytest.mark.parametrize("store_calls", STORE_CALLS)
def test_threaded_clients_and_worker_threads_complete_every_task_exactly_once(
    monkeypatch, store_calls
):
    threads, per_thread = 8, 30
    total = threads * per_thread
    store = MemoryStore()
    store.blocking = store_calls == "executor"  # HTTP calls on pool threads, racing the workers
    log = CompletionLog(store)
    monkeypatch.setattr(store, "complete", log.complete)
    app = make_app(store, Settings(max_body_bytes=64 * 1024))
    pool = SimulatedWorkers(store, count=4, work_seconds=0, report_seconds=3600)
    barrier = threading.Barrier(threads)
    http_completed: list[str] = []
    http_completed_lock = threading.Lock()

    def client(port: int, number: int) -> list[str]:
        barrier.wait(timeout=10)
        ids = []
        for i in range(per_thread):
            status, task = call(port, "POST", "/tasks", {"payload": {"thread": number, "i": i}})
            assert status == 201
            assert task["status"] == "pending"
            ids.append(task["id"])
            if i % 2:
                continue
            # Every other step, also consume through HTTP, racing the worker threads.
            status, task = call(port, "POST", "/tasks/dequeue")
            if status == 404:
                continue
            assert status == 200
            assert task["status"] == "processing"
            status, done = call(port, "PUT", f"/tasks/{task['id']}/complete")
            assert status == 200
            assert done["status"] == "completed"
            with http_completed_lock:
                http_completed.append(task["id"])
        return ids

    pool.start()
    try:
        with ServerThread(app) as server, ThreadPoolExecutor(max_workers=threads) as executor:
            futures = [executor.submit(client, server.port, n) for n in range(threads)]
            enqueued = [task_id for future in futures for task_id in future.result(timeout=60)]

            assert log.wait_for_total(total, timeout=30), f"completed {log.counts.total()}/{total}"
            status, counts = call(server.port, "GET", "/queue/stats")
            assert status == 200
            status, pending = call(server.port, "GET", "/queue/view")
            assert status == 200
            sample = [call(server.port, "GET", f"/tasks/{task_id}") for task_id in enqueued[::7]]
    finally:
        stopped = pool.stop(timeout=10)

    assert stopped
    assert len(enqueued) == total
    assert len(set(enqueued)) == total
    assert set(log.counts) == set(enqueued)
    assert set(log.counts.values()) == {1}
    assert len(set(http_completed)) == len(http_completed)
    assert pool.done + len(http_completed) == total
    assert pool.done >= total // 2  # clients consume at most one task per two they enqueue
    assert counts == {**dict.fromkeys(counts, 0), "completed": total}
    assert set(counts) == {"pending", "processing", "completed", "failed", "scheduled", "waiting"}
    assert pending == []
    assert all(code == 200 and task["status"] == "completed" for code, task in sample)
    assert {status: n for status, n in store.stats().items() if n} == {"completed": total}
