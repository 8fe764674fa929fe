"""Long-poll over real HTTP (docs/api.md): `?wait=` parks a consumer on the IOLoop until a
task is ready in its queue, FIFO among waiters, and drops a client that goes away.

The store here runs on the real clock, so that delays and wake-ups are measured as a client sees
them; a test that asks for the `clock` fixture gets a store on that FakeClock instead (time-based
readiness without sleeping). Times are read from the IOLoop clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.ioloop import IOLoop
from tornado.tcpclient import TCPClient

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    parse_timestamp,
    request,
    stats,
)
from tornado_queue.models import NewTask
from tornado_queue.server.waiters import Waiters
from tornado_queue.storage import MemoryStore

ZERO = {"pending": 0, "processing": 0, "completed": 0, "failed": 0, "scheduled": 0, "waiting": 0}
FAST = 0.5  # a wake-up, measured end to end over loopback HTTP, must come well within this


OWN_STORE = True  # this module builds its own store (see pytest_generate_tests in conftest)


@pytest.fixture
def store(request, policy):
    """A MemoryStore on the real clock, or on the FakeClock when the test asks for `clock`."""
    if "clock" in request.fixturenames:
        return MemoryStore(policy, request.getfixturevalue("clock"))
    return MemoryStore(policy)


@pytest.fixture
def waiters(app) -> Waiters:
    return app.services.waiters


@pytest.fixture
def url(http_server, http_port) -> str:
    """The test server's address (requesting it starts the server)."""
    return f"http://127.0.0.1:{http_port}"


@pytest.fixture
def client(io_loop):
    """A client with room for hundreds of requests at once (the shared one allows 10)."""
    made = AsyncHTTPClient(force_instance=True, max_clients=400)
    yield made
    made.close()


def now() -> float:
    return IOLoop.current().time()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = now() + timeout
    while not condition():
        assert now() < deadline, "condition not met in time"
        await asyncio.sleep(0.002)


def consumer(client, url: str, path: str) -> asyncio.Future[tuple[HTTPResponse, float, float]]:
    """Send a consumer request in the background: (response, sent at, answered at)."""

    async def run() -> tuple[HTTPResponse, float, float]:
        sent = now()
        response = await request(client, url, "POST", path)
        return response, sent, now()

    return asyncio.ensure_future(run())


async def park(client, url: str, path: str, waiters: Waiters) -> asyncio.Future:
    """A consumer that is parked (counted by `waiters`) when this returns."""
    before = waiters.count()
    future = consumer(client, url, path)
    await until(lambda: waiters.count() == before + 1)
    return future


async def create(client, url: str, **fields: Any) -> dict[str, Any]:
    response = await request(client, url, "POST", "/tasks", {"payload": {}, **fields})
    return assert_json(response, 201)


async def queue_stats(client, url: str, queue: str) -> dict[str, int]:
    return assert_json(await request(client, url, "GET", f"/queue/stats?queue={queue}"), 200)


@pytest.mark.gen_test(timeout=10)
async def test_a_waiter_gets_a_task_the_moment_it_is_enqueued(client, url, waiters):
    waiter = await park(client, url, "/tasks/dequeue?wait=5", waiters)

    enqueued = now()
    created = await create(client, url)
    response, _, answered = await waiter

    task = assert_json(response, 200)
    assert (task["id"], task["status"], task["attempts"]) == (created["id"], "processing", 1)
    assert answered - enqueued < FAST
    assert waiters.count() == 0


@pytest.mark.gen_test(timeout=10)
async def test_a_task_enqueued_by_another_thread_wakes_the_waiter(client, url, waiters, store):
    waiter = await park(client, url, "/tasks/dequeue?wait=5", waiters)

    enqueued = now()
    thread = threading.Thread(target=lambda: store.enqueue(NewTask(payload=b'{"t":1}')))
    thread.start()
    response, _, answered = await waiter
    thread.join(5)

    assert assert_json(response, 200)["payload"] == {"t": 1}
    assert answered - enqueued < FAST


@pytest.mark.gen_test(timeout=10)
@pytest.mark.parametrize(
    ("path", "status"), [("/tasks/dequeue?wait=0.2", 404), ("/tasks/dequeue/batch?wait=0.2", 200)]
)
async def test_a_wait_on_an_empty_queue_ends_after_the_wait(client, url, path, status):
    response, sent, answered = await consumer(client, url, path)

    if status == 404:
        assert_problem(response, 404)
    else:
        assert assert_json(response, 200) == {"tasks": []}
    assert 0.19 <= answered - sent < 0.2 + FAST


@pytest.mark.gen_test(timeout=10)
async def test_wait_0_answers_at_once_and_wait_30_with_a_task_ready_too(client, url):
    response, sent, answered = await consumer(client, url, "/tasks/dequeue?wait=0")
    assert_problem(response, 404)
    assert answered - sent < FAST
    created = await create(client, url)

    response, sent, answered = await consumer(client, url, "/tasks/dequeue?wait=30")

    assert assert_json(response, 200)["id"] == created["id"]
    assert answered - sent < FAST


@pytest.mark.gen_test
@pytest.mark.parametrize("route", ["/tasks/dequeue", "/tasks/dequeue/batch"])
@pytest.mark.parametrize("wait", ["-1", "31", "30.5", "abc", "1e2", "nan", "inf", "", "-0.5", "1e"])
async def test_a_bad_wait_is_400_and_takes_nothing(client, url, route, wait):
    await create(client, url)

    response, sent, answered = await consumer(client, url, f"{route}?wait={wait}")

    assert "'wait'" in assert_problem(response, 400)["detail"]
    assert answered - sent < FAST
    assert await stats(client, url) == {**ZERO, "pending": 1}


@pytest.mark.gen_test(timeout=40)
async def test_200_parked_waiters_leave_other_requests_fast_and_n_tasks_wake_n(
    client, url, waiters, http_client
):
    parked = [consumer(client, url, "/tasks/dequeue?queue=busy&wait=3") for _ in range(200)]
    await until(lambda: waiters.count() == 200, timeout=15)

    others = [
        ("GET", "/queue/stats", None, 200),
        ("POST", "/tasks", {"payload": {}, "queue": "other"}, 201),
        ("POST", "/tasks/dequeue?queue=other", None, 200),
        ("POST", "/tasks/dequeue?queue=other", None, 404),
        ("GET", "/queues", None, 200),
        ("GET", "/queue/view?queue=busy", None, 200),
    ]
    for method, path, body, status in others:
        started = now()
        response = await request(http_client, url, method, path, body)
        assert response.code == status, (path, response.body)
        assert now() - started < 0.1, path
    assert waiters.count() == 200

    batch = {"tasks": [{"payload": {"n": n}, "queue": "busy"} for n in range(5)]}
    ids = assert_json(await request(http_client, url, "POST", "/tasks/batch", batch), 201)["ids"]
    await until(lambda: sum(future.done() for future in parked) == 5)
    assert waiters.count() == 195
    assert await queue_stats(http_client, url, "busy") == {**ZERO, "processing": 5}

    results = await asyncio.gather(*parked)
    served = [
        assert_json(response, 200)["id"] for response, _, _ in results if response.code == 200
    ]
    assert sorted(served) == sorted(ids)
    ended = [(sent, answered) for response, sent, answered in results if response.code == 404]
    assert len(ended) == 195
    assert all(answered - sent >= 2.95 for sent, answered in ended)
    assert waiters.count() == 0


@pytest.mark.gen_test(timeout=15)
async def test_waiters_are_served_first_come_first_served(client, url, waiters):
    futures = [await park(client, url, "/tasks/dequeue?wait=5", waiters) for _ in range(3)]

    for index, future in enumerate(futures):
        created = await create(client, url)
        done, _ = await asyncio.wait(futures[index:], return_when=asyncio.FIRST_COMPLETED)
        assert done == {future}
        assert assert_json(future.result()[0], 200)["id"] == created["id"]


@pytest.mark.gen_test(timeout=10)
async def test_a_waiter_on_one_queue_is_not_woken_by_a_task_on_another(client, url, waiters):
    on_a = await park(client, url, "/tasks/dequeue?queue=a&wait=0.5", waiters)
    on_b = await park(client, url, "/tasks/dequeue?queue=b&wait=5", waiters)

    created = await create(client, url, queue="b")

    response, _, _ = await on_b
    assert assert_json(response, 200)["id"] == created["id"]
    assert waiters.count() == 1
    response, sent, answered = await on_a
    assert_problem(response, 404)
    assert answered - sent >= 0.45


@pytest.mark.gen_test(timeout=10)
async def test_a_woken_waiter_beaten_to_the_task_keeps_its_turn(client, url, waiters, store):
    first = await park(client, url, "/tasks/dequeue?wait=5", waiters)
    second = await park(client, url, "/tasks/dequeue?wait=5", waiters)
    generation = waiters.generation("default")

    stolen = store.enqueue(NewTask(payload=b'{"n":1}'))
    assert store.dequeue().id == stolen.id  # a consumer that was not waiting takes it first
    await until(lambda: waiters.generation("default") != generation)
    await until(lambda: waiters.count() == 2)  # the woken waiter found nothing and parked again

    store.enqueue(NewTask(payload=b'{"n":2}'))
    done, _ = await asyncio.wait([first, second], return_when=asyncio.FIRST_COMPLETED)
    assert done == {first}
    store.enqueue(NewTask(payload=b'{"n":3}'))
    assert assert_json((await second)[0], 200)["payload"] == {"n": 3}


async def park_raw(port: int, waiters: Waiters, path: str = "/tasks/dequeue?wait=5"):
    """A waiter on a raw connection the test can drop."""
    before = waiters.count()
    stream = await TCPClient().connect("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"
    await stream.write(head.encode())
    await until(lambda: waiters.count() == before + 1)
    return stream


@pytest.mark.gen_test(timeout=10)
async def test_a_waiter_whose_client_left_is_dropped_and_the_task_stays_pending(
    client, url, waiters, http_port
):
    stream = await park_raw(http_port, waiters)

    stream.close()
    await until(lambda: waiters.count() == 0)
    created = await create(client, url)

    assert await stats(client, url) == {**ZERO, "pending": 1}
    response, _, _ = await consumer(client, url, "/tasks/dequeue")
    task = assert_json(response, 200)
    assert (task["id"], task["attempts"]) == (created["id"], 1)


@pytest.mark.gen_test(timeout=10)
async def test_a_task_goes_to_the_next_waiter_when_the_first_client_left(
    client, url, waiters, http_port
):
    stream = await park_raw(http_port, waiters)
    second = await park(client, url, "/tasks/dequeue?wait=5", waiters)

    stream.close()
    await until(lambda: waiters.count() == 1)
    created = await create(client, url)

    response, _, _ = await second
    assert assert_json(response, 200)["id"] == created["id"]
    assert await stats(client, url) == {**ZERO, "processing": 1}


@pytest.mark.gen_test(timeout=10)
async def test_a_batch_waiter_returns_as_soon_as_tasks_arrive(client, url, waiters):
    one = await park(client, url, "/tasks/dequeue/batch?count=10&wait=5&lease=45", waiters)
    three = await park(client, url, "/tasks/dequeue/batch?count=10&wait=5&queue=q", waiters)

    enqueued = now()
    created = await create(client, url)
    batch = {"tasks": [{"payload": {"n": n}, "queue": "q"} for n in range(3)]}
    ids = assert_json(await request(client, url, "POST", "/tasks/batch", batch), 201)["ids"]

    response, _, answered = await one
    [task] = assert_json(response, 200)["tasks"]
    assert task["id"] == created["id"]
    leased_for = parse_timestamp(task["lease_expires_at"]) - parse_timestamp(task["started_at"])
    assert leased_for.total_seconds() == pytest.approx(45)
    assert answered - enqueued < FAST
    response, _, _ = await three
    tasks = assert_json(response, 200)["tasks"]
    assert [task["id"] for task in tasks] == ids
    assert {task["status"] for task in tasks} == {"processing"}


@pytest.mark.gen_test(timeout=10)
@pytest.mark.parametrize("waiter_first", [True, False])
async def test_a_delayed_task_reaches_a_waiter_at_its_due_time(client, url, waiters, waiter_first):
    waiter = await park(client, url, "/tasks/dequeue?wait=3", waiters) if waiter_first else None
    enqueued = now()
    created = await create(client, url, delay=0.3)
    assert created["status"] == "scheduled"
    if waiter is None:
        waiter = await park(client, url, "/tasks/dequeue?wait=3", waiters)

    response, _, answered = await waiter

    assert assert_json(response, 200)["id"] == created["id"]
    assert 0.29 <= answered - enqueued < 0.3 + 0.15


@pytest.mark.gen_test(timeout=10)
async def test_a_lost_lease_wakes_a_waiter(client, url, waiters, clock):
    created = await create(client, url)
    leased = assert_json(await request(client, url, "POST", "/tasks/dequeue"), 200)
    waiter = await park(client, url, "/tasks/dequeue?wait=5", waiters)

    clock.advance(30)
    started = now()
    await stats(client, url)  # any request applies what is due

    response, _, answered = await waiter
    task = assert_json(response, 200)
    assert (task["id"], task["attempts"]) == (created["id"], 2)
    assert task["lease_id"] != leased["lease_id"]
    assert answered - started < FAST


@pytest.mark.gen_test(timeout=10)
async def test_a_due_delayed_task_wakes_exactly_one_waiter(client, url, waiters, clock):
    created = await create(client, url, delay=60)
    first = await park(client, url, "/tasks/dequeue?wait=5", waiters)
    second = await park(client, url, "/tasks/dequeue?wait=0.5", waiters)

    clock.advance(60)
    await stats(client, url)

    assert assert_json((await first)[0], 200)["id"] == created["id"]
    assert_problem((await second)[0], 404)
