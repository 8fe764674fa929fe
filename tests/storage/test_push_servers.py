"""Push queues shared by every server on one Redis: two stores on one prefix (two servers, as
far as Redis can tell) see each other's push setting, secrets included, and each refuses a
consumer of a queue the other made a push queue; the pushers' keyword reaches the script from
the event loop too, and a plain dequeue still costs one call."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import FakeClock
from tests.storage.test_autopipeline import code_mode  # noqa: F401 - both ways of running code
from tests.storage.test_push_store import PUSHER, QUEUE, TARGET, fill, pushed
from tests.storage.test_queue_settings import listen
from tests.support import wait_until
from tornado_queue.errors import PushQueue
from tornado_queue.models import QueueSettings, TaskStatus
from tornado_queue.storage import Policy
from tornado_queue.storage.redis import RedisStore

SCRIPT_CALLS = ("cmdstat_fcall", "cmdstat_evalsha", "cmdstat_eval")


@pytest.fixture
def prefix() -> str:
    return "{tq-" + uuid.uuid4().hex + "}"


@pytest.fixture
def pair(
    code_mode: str,  # noqa: F811
    redis_url: str,
    clock: FakeClock,
    policy: Policy,
    prefix: str,
) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two stores on one Redis and prefix, on one clock: servers A and B."""
    a, b = (RedisStore(redis_url, policy, clock, prefix=prefix) for _ in range(2))
    yield a, b
    a.flush()
    a.close()
    b.close()


def test_a_push_setting_made_through_one_server_is_read_and_obeyed_through_the_other(pair):
    a, b = pair
    (task_id,) = fill(a, 1)

    pushed(a, max_processing=2)

    assert b.queue_settings(QUEUE) == QueueSettings(max_processing=2, push=TARGET)
    assert b.configured_queues()[QUEUE].push.previous_secret == TARGET.previous_secret
    with pytest.raises(PushQueue):
        b.dequeue(queue=QUEUE)
    assert b.get(task_id).attempts == 0
    taken = b.dequeue_many(5, queue=QUEUE, worker=PUSHER, push=True)
    assert [task.id for task in taken] == [task_id]
    assert a.stats(QUEUE)[TaskStatus.PROCESSING] == 1


def test_push_set_or_cleared_on_one_server_wakes_listeners_on_the_other(pair):
    a, b = pair
    fill(a, 2)
    heard_on_b = listen(b)

    pushed(a)
    # published by A's call, read by B's subscriber
    assert wait_until(lambda: (QUEUE, 2) in heard_on_b, 5), "B never heard push set"
    heard_on_b.clear()
    a.configure(QUEUE, {"push": None})
    assert wait_until(lambda: (QUEUE, 2) in heard_on_b, 5), "B never heard push cleared"

    assert b.dequeue(queue=QUEUE) is not None


def test_the_pushers_keyword_and_the_refusal_pass_through_the_event_loop(
    pair, redis_url: str, policy: Policy, clock: FakeClock, prefix: str
):
    a, _ = pair
    ids = fill(a, 2)
    pushed(a)
    b = RedisStore(redis_url, policy, clock, prefix=prefix)  # a server on its event loop

    async def scenario() -> list[str]:
        with pytest.raises(PushQueue):
            await b.run_async(functools.partial(b.dequeue_many, 1, queue=QUEUE))
        with pytest.raises(PushQueue):
            await b.run_async(b.dequeue_many, 1, None, QUEUE, None, False)
        first = await b.run_async(functools.partial(b.dequeue_many, 1, queue=QUEUE, push=True))
        rest = await b.run_async(b.dequeue_many, 5, None, QUEUE, PUSHER, True)
        b.close()  # on its loop, which closes its connections
        return [task.id for task in first + rest]

    assert asyncio.run(scenario()) == ids


def test_a_retry_after_is_applied_by_the_script_of_either_server(pair, clock: FakeClock):
    a, b = pair
    fill(a, 1)
    pushed(a)
    (task,) = a.dequeue_many(1, queue=QUEUE, push=True)

    failed = b.fail(task.id, "push answered 503: x", True, task.lease_id, 7.0)

    assert failed.available_at == clock.time() + 7.0
    assert a.get(task.id).status is TaskStatus.SCHEDULED


def test_a_dequeue_of_a_plain_queue_is_still_one_script_call(pair, redis_url: str):
    a, _ = pair
    fill(a, 3, queue="plain")
    fill(a, 1)
    pushed(a)
    admin = redis.Redis.from_url(redis_url)

    def calls() -> int:
        stats = admin.info("commandstats")
        return sum(stats.get(name, {}).get("calls", 0) for name in SCRIPT_CALLS)

    before = calls()
    assert a.dequeue(queue="plain") is not None
    assert len(a.dequeue_many(2, queue="plain")) == 2
    with pytest.raises(PushQueue):
        a.dequeue(queue=QUEUE)
    assert len(a.dequeue_many(1, queue=QUEUE, push=True)) == 1

    assert calls() - before == 4
