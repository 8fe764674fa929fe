"""AsyncClient against a real server: the same calls as Client, awaited on the IOLoop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.client.support import DROP, Answer, StubServer, real_server
from tornado_queue.client import (
    AsyncClient,
    BadRequest,
    BatchItem,
    ConnectionFailed,
    LeaseLost,
    NotFound,
)
from tornado_queue.testing import ServerProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with real_server(tmp_path_factory.mktemp("async_client")) as process:
        yield process


@pytest.mark.gen_test(timeout=20)
async def test_a_long_polling_consumer_gets_a_task_enqueued_while_it_waits(server):
    client = AsyncClient(server.url)

    # Given a consumer waiting on an empty queue
    waiting = asyncio.ensure_future(client.dequeue(queue="async", wait=10, lease=60))
    await asyncio.sleep(0.1)
    assert not waiting.done()

    # When a producer enqueues, then the consumer gets the task and completes it
    task_id = await client.enqueue({"n": 1}, queue="async", priority=2)
    task = await waiting
    assert task is not None and task.id == task_id and task.lease_id
    done = await client.complete(task, result=[1, 2])
    assert (done.status, done.result) == ("completed", [1, 2])
    assert (await client.stats("async"))["completed"] == 1


@pytest.mark.gen_test(timeout=20)
async def test_errors_and_every_other_call_work_awaited(server):
    client = AsyncClient(server.url, token="t")
    ids = await client.enqueue_many([{"n": n} for n in range(3)], queue="async-many")
    tasks = await client.dequeue_many(3, queue="async-many")
    assert [task.id for task in tasks] == ids

    await client.heartbeat(tasks[0], lease=120)
    failed = await client.fail(tasks[0], "boom", retry=False)
    assert (failed.status, failed.error) == ("failed", "boom")
    assert (await client.retry(tasks[0].id)).status == "pending"
    await client.complete(tasks[1], result=1)
    assert (await client.complete(tasks[1], result=2)).result == 1, "a repeat answers as before"
    with pytest.raises(LeaseLost):
        await client.fail(tasks[1], "too late")
    await client.delete(tasks[0].id)
    with pytest.raises(NotFound) as raised:
        await client.get(tasks[0].id)
    assert "no task with id" in raised.value.detail
    assert (await client.totals("async-many"))["enqueued"] == 3
    assert "async-many" in {entry["name"] for entry in await client.queues()}
    assert await client.dequeue(queue="async-empty") is None


@pytest.mark.gen_test(timeout=20)
async def test_reads_are_retried_and_dequeues_are_not_after_a_dropped_connection():
    with StubServer(DROP, Answer(200, b'{"pending": 1}')) as stub:
        assert await AsyncClient(stub.url, backoff=0.01).stats() == {"pending": 1}
        assert len(stub.seen) == 2
    with StubServer(DROP, Answer(200, b'{"tasks": []}')) as stub:
        with pytest.raises(ConnectionFailed):
            await AsyncClient(stub.url, backoff=0.01).dequeue()
        assert len(stub.seen) == 1
    unreachable = AsyncClient(f"http://127.0.0.1:{free_port()}", retries=1, backoff=0.01)
    with pytest.raises(ConnectionFailed):
        await unreachable.get("x")


@pytest.mark.gen_test(timeout=20)
async def test_queue_control_calls_work_awaited(server):
    client = AsyncClient(server.url)

    # Given a queue that lets one task be processed at a time
    shown = await client.configure_queue(
        "async-control", max_processing=1, rate_limit={"tasks": 100, "seconds": 60}
    )
    assert shown["settings"]["max_processing"] == 1
    assert shown["settings"]["rate_limit"] == {"tasks": 100, "seconds": 60}

    # When tasks of two groups are enqueued and dequeued
    first, second = await client.enqueue_many(
        [{"n": 1}, {"n": 2}], queue="async-control", group="g", expires_in=600
    )
    third = await client.enqueue({"n": 3}, queue="async-control", group="h", expires_in=600)
    leased = await client.dequeue_many(3, queue="async-control")

    # Then only the first is delivered, and the others wait in order: the next group's head,
    # then the task behind the one being processed
    assert [task.id for task in leased] == [first]
    assert leased[0].group == "g" and leased[0].expires_at is not None
    processing = await client.view("async-control", status="processing")
    assert [task.id for task in processing] == [first]
    assert [task.id for task in await client.view("async-control")] == [third, second]

    # And a purge deletes the waiting ones, and a None clears a setting
    assert await client.purge_queue("async-control", "pending") == 2
    assert (await client.stats("async-control"))["pending"] == 0
    cleared = await client.configure_queue("async-control", max_processing=None)
    assert cleared["settings"]["max_processing"] is None
    assert (await client.resume("async-control"))["settings"]["paused"] is None


@pytest.mark.gen_test(timeout=20)
async def test_progress_and_waiting_for_a_result_work_awaited(server):
    client = AsyncClient(server.url)
    task_id = await client.enqueue({"n": 1}, queue="async-results")
    task = await client.dequeue(queue="async-results", lease=600)
    assert task is not None

    assert (await client.progress(task, [1, 2])).progress == [1, 2]
    waiting = asyncio.ensure_future(client.wait_for(task_id, timeout=20))
    parked = asyncio.ensure_future(client.get(task_id, wait=20))
    await client.complete(task, result="ok")

    assert (await waiting).result == "ok"
    assert (await parked).status == "completed"
    assert (await client.get(task_id)).progress == [1, 2]
    other = await client.enqueue({"n": 2}, queue="async-results")
    with pytest.raises(TimeoutError):
        await client.wait_for(other, timeout=0.2)


@pytest.mark.gen_test(timeout=20)
async def test_schedule_calls_work_awaited(server):
    client = AsyncClient(server.url)

    created = await client.put_schedule("async-tick", queue="async-tick", payload={}, every=1)
    assert created["every"] == 1.0
    assert await client.get_schedule("async-tick") == created
    assert "async-tick" in [schedule["name"] for schedule in await client.schedules()]

    # Then its first task comes about a second later, long-polled
    task = await client.dequeue(queue="async-tick", wait=10)
    assert task is not None and task.schedule == "async-tick"
    await client.delete_schedule("async-tick")
    with pytest.raises(NotFound):
        await client.get_schedule("async-tick")


@pytest.mark.gen_test(timeout=20)
async def test_dependencies_work_awaited(server):
    client = AsyncClient(server.url)
    parent = await client.enqueue({"n": 1}, queue="async-after")
    child = await client.enqueue({"n": 2}, queue="async-after", after=[parent])
    first, last = await client.enqueue_many(
        [{"n": 3}, BatchItem({"n": 4}, after=["#0", parent])], queue="async-after"
    )

    assert (await client.get(child)).status == "waiting"
    assert (await client.get(last)).after == [first, parent]
    assert (await client.get(parent)).dependents == [child, last]
    with pytest.raises(BadRequest) as raised:
        await client.enqueue({}, queue="async-after", after=["no-such-task"])
    assert "names task 'no-such-task'" in raised.value.detail

    for _ in range(2):
        await client.complete(await client.dequeue(queue="async-after"))
    assert (await client.get(child)).status == "pending"
    assert (await client.get(last)).status == "pending"


@pytest.mark.gen_test(timeout=20)
async def test_a_named_async_worker_is_listed_and_in_the_history(server):
    client = AsyncClient(server.url, worker_id="async/1/0")
    task_id = await client.enqueue({"n": 1}, queue="async-named")
    task = await client.dequeue(queue="async-named", lease=600)
    assert task is not None and task.id == task_id

    listing = {worker.id: worker for worker in await client.workers()}
    done = await client.complete(task)

    assert listing["async/1/0"].tasks == [task_id]
    assert [(entry.event, entry.worker) for entry in done.history] == [
        ("enqueued", None),
        ("delivered", "async/1/0"),
        ("completed", "async/1/0"),
    ]
