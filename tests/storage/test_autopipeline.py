"""The Redis store's calls from the event loop: batched per loop turn, each answered on its own,
failures classified as on the blocking path, and the reaping gate kept right."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import FakeClock
from tornado_queue.errors import InvalidTransition, StoreUnavailable, TaskNotFound
from tornado_queue.models import Completion, NewTask, TaskStatus
from tornado_queue.storage import Policy
from tornado_queue.storage import redis as redis_store_module
from tornado_queue.storage.autopipeline import AutoPipeline
from tornado_queue.storage.redis import CODE, RedisStore


@pytest.fixture(params=["functions", "script"])
def code_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """On Redis 7+ the code is a function library; "script": as on a Redis that refuses to
    load it (before 7.0, or no permission), here a library Redis rejects."""
    if request.param == "script":
        refused = dataclasses.replace(CODE, library=b"#!lua name=refused\nnot lua at all")
        monkeypatch.setattr(redis_store_module, "CODE", refused)
    return request.param


@pytest.fixture
def redis_store(
    code_mode: str, redis_url: str, clock: FakeClock, policy: Policy
) -> Iterator[RedisStore]:
    made = RedisStore(redis_url, policy, clock, prefix="{tq-pipeline}")
    made.flush()
    yield made
    made.flush()
    made.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_calls_of_one_loop_turn_share_one_batch_and_each_gets_its_own_answer(
    redis_store: RedisStore, code_mode: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
):
    admin = redis.Redis.from_url(redis_url)
    command = "cmdstat_fcall" if code_mode == "functions" else "cmdstat_evalsha"

    def sent() -> int:
        return admin.info("commandstats").get(command, {}).get("calls", 0)

    before = sent()
    sizes: list[int] = []
    send = AutoPipeline._send

    async def counting_send(self, connection, batch, *, resend):
        sizes.append(len(batch))
        return await send(self, connection, batch, resend=resend)

    monkeypatch.setattr(AutoPipeline, "_send", counting_send)

    async def scenario() -> None:
        enqueues = [
            redis_store.run_async(redis_store.enqueue_many, [NewTask(payload=b'{"n":%d}' % n)])
            for n in range(20)
        ]
        outcomes = await asyncio.gather(*enqueues)
        assert [outcome[0].task.payload for outcome in outcomes] == [
            b'{"n":%d}' % n for n in range(20)
        ]
        assert len({outcome[0].task_id for outcome in outcomes}) == 20

        redis_store.close()

    asyncio.run(scenario())
    assert sizes == [20]
    assert sent() - before == 20
    assert redis_store.stats()[TaskStatus.PENDING] == 20


def test_a_refused_call_in_a_batch_leaves_its_neighbours_answered(redis_store: RedisStore):
    tasks = [redis_store.enqueue(NewTask(payload=b"{}")) for _ in range(3)]
    leased = redis_store.dequeue_many(3)
    items = [
        Completion(leased[0].id, lease_id=leased[0].lease_id, result=b'{"ok":1}'),
        Completion("no-such-task"),
        Completion(leased[2].id, lease_id="a-stale-lease"),
        Completion(leased[1].id, lease_id=leased[1].lease_id),
    ]

    async def scenario():
        outcomes = await redis_store.run_async(redis_store.complete_many, items)
        loose = [redis_store.run_async(redis_store.get, task.id) for task in tasks]
        seen = await asyncio.gather(*loose)
        redis_store.close()
        return outcomes, seen

    outcomes, seen = asyncio.run(scenario())
    assert outcomes[0].task.status is TaskStatus.COMPLETED
    assert outcomes[0].task.result == b'{"ok":1}'
    assert isinstance(outcomes[1].error, TaskNotFound)
    assert isinstance(outcomes[2].error, InvalidTransition)
    assert outcomes[3].task.status is TaskStatus.COMPLETED
    by_id = {task.id: task.status for task in seen}
    assert by_id[leased[2].id] is TaskStatus.PROCESSING


def test_a_redis_that_cannot_be_reached_is_unavailable_and_nothing_was_sent(policy: Policy):
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", policy)

    async def scenario() -> None:
        with pytest.raises(StoreUnavailable):
            await store.run_async(store.enqueue_many, [NewTask(payload=b"{}")])
        with pytest.raises(StoreUnavailable):
            await store.run_async(store.get, "any")
        store.close()

    asyncio.run(scenario())


def test_a_redis_that_lost_its_code_still_answers_each_call_once(
    redis_store: RedisStore, redis_url: str
):
    admin = redis.Redis.from_url(redis_url)

    def forget_the_code() -> None:  # as after a restart that lost the data
        admin.script_flush()
        admin.function_flush()

    async def enqueue() -> str:
        outcome = await redis_store.run_async(redis_store.enqueue_many, [NewTask(payload=b"{}")])
        return outcome[0].task_id

    async def scenario() -> list[str]:
        made = [await enqueue()]
        forget_the_code()
        made += await asyncio.gather(enqueue(), enqueue())  # one batch, both refused, resent
        made.append(await enqueue())  # and the code is back for the next
        redis_store.close()
        return made

    made = asyncio.run(scenario())
    forget_the_code()
    made.append(redis_store.enqueue(NewTask(payload=b"{}")).id)  # the blocking path too
    made.append(redis_store.enqueue(NewTask(payload=b"{}")).id)
    assert all(redis_store.get(task_id) is not None for task_id in made)
    assert redis_store.stats()[TaskStatus.PENDING] == len(set(made)) == 6


def test_close_releases_the_connections_it_made(redis_url: str, policy: Policy):
    # a database of its own, so its clients can be told from every other test's
    store = RedisStore(redis_url.rsplit("/", 1)[0] + "/7", policy)
    admin = redis.Redis.from_url(redis_url)

    def connected() -> int:
        return sum(1 for client in admin.client_list() if client["db"] == "7")

    async def scenario() -> None:
        await asyncio.gather(*(store.run_async(store.stats) for _ in range(10)))
        assert connected() == 1  # ten calls of one loop turn: one batch, one connection
        store.close()

    asyncio.run(scenario())
    for _ in range(200):  # Redis notices a closed socket on its next loop turn
        if connected() == 0:
            break
        time.sleep(0.01)
    assert connected() == 0


def test_a_store_without_the_reaping_mark_still_reaps_what_is_due(
    redis_store: RedisStore, clock: FakeClock, redis_url: str
):
    task = redis_store.enqueue(NewTask(payload=b"{}"))
    redis_store.dequeue(lease_seconds=5)
    # data written before the mark existed, or the mark lost: the next call reaps and knows
    redis.Redis.from_url(redis_url).delete("{tq-pipeline}:next")
    clock.advance(6)
    again = redis_store.dequeue(lease_seconds=5)
    assert again is not None and again.id == task.id and again.attempts == 2


def test_an_earlier_deadline_after_a_later_one_is_met_on_time(
    redis_store: RedisStore, clock: FakeClock
):
    redis_store.enqueue(NewTask(payload=b'{"long":1}'))
    short = redis_store.enqueue(NewTask(payload=b'{"short":1}'))
    redis_store.dequeue(lease_seconds=600)
    redis_store.dequeue(lease_seconds=5)
    clock.advance(6)
    assert redis_store.get(short.id).status is TaskStatus.PENDING
    assert redis_store.stats()[TaskStatus.PROCESSING] == 1
