"""Waiters on their own: parked futures per queue, FIFO wake-ups counted by tasks made ready,
the generation check, leave, pass_on, front, and the timer for tasks that become ready by time.
Then the consumer handler with a store run in an executor, paused at chosen moments, for the
races between a dequeue on a pool thread and what happens on the IOLoop meanwhile.

Tasks are made ready through a real MemoryStore, whose ready listener is how Waiters learn of
them. Times are read from the IOLoop clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.tcpclient import TCPClient
from tornado.testing import bind_unused_port

from tornado_queue.config import Settings
from tornado_queue.models import DEFAULT_QUEUE, NewTask, TaskStatus
from tornado_queue.server.app import make_app
from tornado_queue.server.waiters import Waiters
from tornado_queue.storage import MemoryStore, Policy

OWN_STORE = True  # this module builds its own store (see pytest_generate_tests in conftest)


@pytest.fixture
def store() -> MemoryStore:
    """On the real clock: the timer tests wait for real (a few tenths of a second)."""
    return MemoryStore(Policy())


@pytest.fixture
def waiters(store: MemoryStore) -> Waiters:
    return Waiters(store)


def now() -> float:
    return IOLoop.current().time()


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


async def park(
    waiters: Waiters, queue: str = "q", timeout: float = 3.0, *, front: bool = False
) -> tuple[object, asyncio.Future[bool]]:
    """A waiter parked on `queue` when this returns: (its owner, the future of `wait`)."""
    owner = object()
    before = waiters.count()
    seen = waiters.generation(queue)
    future = asyncio.ensure_future(waiters.wait(queue, timeout, seen, owner, front=front))
    await until(lambda: waiters.count() == before + 1)
    return owner, future


def ready(store: MemoryStore, count: int = 1, queue: str = "q", delay: float = 0.0) -> None:
    store.enqueue_many([NewTask(payload=b"{}", queue=queue, delay=delay)] * count)


@pytest.mark.gen_test
async def test_n_ready_tasks_wake_the_first_n_waiters_in_order(store, waiters):
    parked = [await park(waiters) for _ in range(4)]

    ready(store, 2)
    await until(lambda: waiters.count() == 2)

    assert [future.done() for _, future in parked] == [True, True, False, False]
    assert all(future.result() is True for _, future in parked[:2])
    for owner, _ in parked[2:]:
        waiters.leave(owner)
    assert [await future for _, future in parked[2:]] == [False, False]
    assert waiters.count() == 0


@pytest.mark.gen_test
async def test_a_wake_up_from_another_thread_reaches_the_waiter(store, waiters):
    _, future = await park(waiters)

    thread = threading.Thread(target=ready, args=(store,))
    thread.start()
    thread.join(5)

    assert await asyncio.wait_for(future, 1) is True


@pytest.mark.gen_test
async def test_a_wait_that_times_out_returns_false_and_leaves_nothing_parked(waiters):
    _, future = await park(waiters, timeout=0.1)
    started = now()

    assert await future is False
    assert now() - started < 0.5
    assert waiters.count() == 0


@pytest.mark.gen_test
async def test_a_wake_up_since_the_generation_was_read_returns_at_once(store, waiters):
    _, first = await park(waiters)
    ready(store)
    assert await first is True
    seen = waiters.generation("q")

    ready(store)
    await until(lambda: waiters.generation("q") != seen)

    assert await waiters.wait("q", 3.0, seen, object()) is True
    assert waiters.count() == 0


@pytest.mark.gen_test(timeout=10)
async def test_the_first_wait_does_not_miss_a_wake_up_since_its_generation_was_read(store, waiters):
    # A consumer reads the generation, looks for a task (a store call that may run on a pool
    # thread) and finds none; meanwhile another thread makes one ready. Its wait must then not
    # sleep through that task, even though no one has waited on these Waiters before.
    seen = waiters.generation("q")
    thread = threading.Thread(target=ready, args=(store,))
    thread.start()
    thread.join(5)
    started = now()

    woke = await waiters.wait("q", 2.0, seen, object())

    assert woke is True
    assert now() - started < 0.5


@pytest.mark.gen_test
async def test_a_waiter_that_leaves_is_unparked_and_never_takes_a_wake_up(store, waiters):
    gone, first = await park(waiters)
    _, second = await park(waiters)

    waiters.leave(gone)
    assert await first is False
    ready(store)

    assert await asyncio.wait_for(second, 1) is True
    assert waiters.count() == 0
    waiters.leave(gone)  # leaving twice, or after the wait, is harmless


@pytest.mark.gen_test
async def test_pass_on_gives_a_wake_up_to_the_next_waiter(store, waiters):
    _, first = await park(waiters)
    _, second = await park(waiters)
    ready(store)
    assert await first is True
    assert not second.done()

    waiters.pass_on("q")

    assert await asyncio.wait_for(second, 1) is True


@pytest.mark.gen_test
async def test_a_waiter_parked_at_the_front_is_woken_first(store, waiters):
    _, behind = await park(waiters)
    _, ahead = await park(waiters, front=True)

    ready(store)
    await until(lambda: waiters.count() == 1)

    assert ahead.done()
    assert not behind.done()
    ready(store)
    assert await asyncio.wait_for(behind, 1) is True


@pytest.mark.gen_test
async def test_a_wake_up_in_one_queue_leaves_another_alone(store, waiters):
    _, on_q = await park(waiters, "q", timeout=0.3)
    seen_q = waiters.generation("q")
    seen_p = waiters.generation("p")

    ready(store, queue="p")
    await until(lambda: waiters.generation("p") != seen_p)

    assert waiters.generation("q") == seen_q
    assert waiters.count() == 1
    assert await on_q is False


@pytest.mark.gen_test(timeout=10)
async def test_a_task_due_later_wakes_a_waiter_at_its_due_time(store, waiters):
    ready(store, delay=0.2)
    started = now()

    _, future = await park(waiters)

    assert await future is True
    assert 0.19 <= now() - started < 0.2 + 0.15
    assert store.stats("q")["pending"] == 1


@pytest.mark.gen_test(timeout=10)
async def test_rearm_moves_the_timer_up_for_a_deadline_set_while_waiting(store, waiters):
    _, future = await park(waiters)
    started = now()
    ready(store, delay=0.2)

    waiters.rearm()

    assert await future is True
    assert 0.19 <= now() - started < 0.2 + 0.15


class ThreadRecordingStore(MemoryStore):
    """A MemoryStore that says it blocks, and records the threads asked for its deadline."""

    blocking = True

    def __init__(self) -> None:
        super().__init__(Policy())
        self.deadline_threads: list[threading.Thread] = []

    def seconds_to_next_deadline(self) -> float | None:
        self.deadline_threads.append(threading.current_thread())
        return super().seconds_to_next_deadline()


@pytest.mark.gen_test(timeout=10)
async def test_a_store_that_does_io_is_asked_for_its_deadline_off_the_ioloop():
    store = ThreadRecordingStore()
    waiters = Waiters(store)
    _, future = await park(waiters)
    started = now()
    ready(store, delay=0.2)
    for _ in range(5):  # asks that come together are folded, not run five times at once
        waiters.rearm()

    assert await future is True
    assert 0.19 <= now() - started < 0.2 + 0.15
    assert store.deadline_threads
    assert threading.main_thread() not in store.deadline_threads  # the IOLoop runs on it
    assert len(store.deadline_threads) <= 3  # the park's ask, then at most one folded rearm


# --- through the handler, with the store on a pool thread ------------------------------------


class PausingStore(MemoryStore):
    """A blocking MemoryStore (called in the executor) whose next `dequeue_many` can be held
    at the gate `before` or `after` it looks, until the test opens the gate."""

    blocking = True

    def __init__(self) -> None:
        super().__init__(Policy())
        self.hold: str | None = None
        self.arrived = threading.Event()
        self.opened = threading.Event()
        self.returned = threading.Event()

    def dequeue_many(self, count, lease_seconds=None, queue=DEFAULT_QUEUE, worker=None, push=False):
        hold, self.hold = self.hold, None
        if hold == "before":
            self._pause()
        taken = super().dequeue_many(count, lease_seconds, queue, worker, push)
        if hold == "after":
            self._pause()
        if hold is not None:
            self.returned.set()
        return taken

    def _pause(self) -> None:
        self.arrived.set()
        self.opened.wait(5)


@pytest.fixture
def served(io_loop):
    """(store, app, url, port) of a server on 127.0.0.1 over a PausingStore."""
    store = PausingStore()
    app = make_app(store, Settings())
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    yield store, app, f"http://127.0.0.1:{port}", port
    store.opened.set()
    server.stop()
    io_loop.run_sync(server.close_all_connections, timeout=5)


@pytest.fixture
def client(io_loop):
    made = AsyncHTTPClient(force_instance=True)
    yield made
    made.close()


async def fetch(client, url: str, path: str, body: bytes = b""):
    headers = {"Content-Type": "application/json"}
    return await client.fetch(
        url + path, method="POST", body=body, headers=headers, raise_error=False
    )


@pytest.mark.gen_test(timeout=10)
async def test_the_first_long_poll_gets_a_task_enqueued_while_it_looked(served, client):
    store, _, url, _ = served
    store.hold = "after"  # the first look finds nothing and is held there
    waiter = asyncio.ensure_future(fetch(client, url, "/tasks/dequeue?wait=3"))
    await until(store.arrived.is_set)

    enqueued = now()
    created = await fetch(client, url, "/tasks", b'{"payload": {}}')
    assert created.code == 201
    store.opened.set()
    response = await waiter

    assert response.code == 200
    assert now() - enqueued < 0.5


@pytest.mark.gen_test(timeout=10)
async def test_a_client_that_leaves_while_its_dequeue_runs_is_not_left_holding_the_task(
    served, client
):
    store, app, url, port = served
    stream = await TCPClient().connect("127.0.0.1", port)
    await stream.write(
        b"POST /tasks/dequeue?wait=5 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
    )
    await until(lambda: app.services.waiters.count() == 1)
    store.hold = "before"  # the woken waiter's look is held until its client has gone

    created = await fetch(client, url, "/tasks", b'{"payload": {}}')
    assert created.code == 201
    await until(store.arrived.is_set)
    stream.close()
    await until(lambda: app.services.tracker.active == 0)  # the server saw it go
    store.opened.set()
    await until(store.returned.is_set)

    deadline = now() + 1.0
    while store.stats()[TaskStatus.PENDING] != 1 and now() < deadline:
        await asyncio.sleep(0.005)
    assert store.stats()[TaskStatus.PROCESSING] == 0, "the task is leased to a client that left"
    assert store.stats()[TaskStatus.PENDING] == 1
