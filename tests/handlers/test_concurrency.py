"""Concurrent clients through the real server: no task is lost, duplicated or moved twice."""

from __future__ import annotations

import asyncio
import threading
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import orjson
import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    dequeue,
    enqueue,
    request,
    stats,
)
from tornado_queue.app import make_app
from tornado_queue.config import Settings
from tornado_queue.models import NewTask
from tornado_queue.storage import MemoryStore
from tornado_queue.workers import WorkerPool


@pytest.fixture
def wide_client(http_server):
    """A client that keeps many requests in flight at once (the default allows 10)."""
    client = AsyncHTTPClient(force_instance=True, max_clients=64)
    yield client
    client.close()


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_enqueues_all_get_distinct_ids_and_are_all_counted(wide_client, base_url):
    responses = await asyncio.gather(
        *(
            request(wide_client, base_url, "POST", "/tasks", {"payload": {"i": i}})
            for i in range(200)
        )
    )

    tasks = [assert_task_document(assert_json(response, 201)) for response in responses]
    assert len({task["id"] for task in tasks}) == 200
    assert sorted(task["payload"]["i"] for task in tasks) == list(range(200))
    counts = await stats(wide_client, base_url)
    assert counts == {"pending": 200, "processing": 0, "completed": 0, "failed": 0, "scheduled": 0}
    view = await request(wide_client, base_url, "GET", "/queue/view")
    assert view.headers["X-Total-Count"] == "200"
    assert {task["id"] for task in assert_json(view, 200)} == {task["id"] for task in tasks}


@pytest.mark.gen_test(timeout=30)
async def test_concurrent_consumers_receive_every_task_exactly_once(wide_client, base_url, store):
    enqueued = [store.enqueue(NewTask(payload=b'{"i":%d}' % i)).id for i in range(120)]

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
    }


@pytest.mark.gen_test(timeout=30)
async def test_racing_completes_of_one_task_succeed_exactly_once(wide_client, base_url):
    created = await enqueue(wide_client, base_url)
    await dequeue(wide_client, base_url)

    responses = await asyncio.gather(
        *(
            request(wide_client, base_url, "PUT", f"/tasks/{created['id']}/complete")
            for _ in range(30)
        )
    )

    codes = Counter(response.code for response in responses)
    assert codes == {200: 1, 409: 29}
    for response in responses:
        if response.code == 409:
            assert_problem(response, 409)
        else:
            assert assert_json(response, 200)["status"] == "completed"
    counts = await stats(wide_client, base_url)
    assert (counts["processing"], counts["completed"]) == (0, 1)


@pytest.mark.gen_test(timeout=30)
async def test_racing_dequeues_of_one_pending_task_hand_it_out_once(wide_client, base_url):
    created = await enqueue(wide_client, base_url)

    responses = await asyncio.gather(
        *(request(wide_client, base_url, "POST", "/tasks/dequeue") for _ in range(30))
    )

    codes = Counter(response.code for response in responses)
    assert codes == {200: 1, 404: 29}
    winners = [assert_json(r, 200) for r in responses if r.code == 200]
    assert winners[0]["id"] == created["id"]
    assert winners[0]["attempts"] == 1
    for response in responses:
        if response.code == 404:
            assert_problem(response, 404)
    counts = await stats(wide_client, base_url)
    assert (counts["pending"], counts["processing"]) == (0, 1)


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


NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


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
        with NO_PROXY_OPENER.open(req, timeout=10) as response:
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


def test_threaded_clients_and_worker_threads_complete_every_task_exactly_once(monkeypatch):
    threads, per_thread = 8, 30
    total = threads * per_thread
    store = MemoryStore()
    log = CompletionLog(store)
    monkeypatch.setattr(store, "complete", log.complete)
    app = make_app(store, Settings(max_body_bytes=64 * 1024))
    pool = WorkerPool(store, count=4, work_seconds=0, report_seconds=3600)
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
    assert set(counts) == {"pending", "processing", "completed", "failed", "scheduled"}
    assert pending == []
    assert all(code == 200 and task["status"] == "completed" for code, task in sample)
    assert {status: n for status, n in store.stats().items() if n} == {"completed": total}
