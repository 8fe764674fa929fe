"""Task history, workers and the event feed shared by every server on one Redis: two stores on
the same prefix (two servers, as far as Redis can tell) see one history per task, one list of
workers and one feed, with the same event ids."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import FakeClock
from tests.storage.test_autopipeline import code_mode  # noqa: F401 - both ways of running code
from tests.storage.test_history import Heard
from tests.support import wait_until
from tornado_queue.limits import MAX_WORKERS, WORKER_SEEN_SECONDS
from tornado_queue.models import Happened, HistoryEntry, NewTask, history_of
from tornado_queue.storage import Policy
from tornado_queue.storage.events import event_data
from tornado_queue.storage.redis import RedisStore
from tornado_queue.storage.redis_events import ON_SECONDS

OWN_STORE = True

BUFFER = 10
"""The events the trimming test's stream keeps (at least: Redis trims whole nodes)."""


def new(**fields) -> NewTask:
    return NewTask(payload=b"{}", **fields)


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
    a = RedisStore(redis_url, policy, clock, prefix=prefix, event_buffer=BUFFER)
    b = RedisStore(redis_url, policy, clock, prefix=prefix, event_buffer=BUFFER)
    yield a, b
    a.flush()
    a.close()
    b.close()


def test_a_history_written_through_one_server_is_read_through_the_other(pair, clock: FakeClock):
    a, b = pair
    task = a.enqueue(new(max_attempts=2))
    clock.advance(1)
    first = b.dequeue_many(1, lease_seconds=5, worker="w1")[0]
    clock.advance(6)
    second = a.dequeue_many(1, worker="w2")[0]  # the first lease ran out, reaped through A
    b.fail(task.id, "no luck", lease_id=second.lease_id)

    expected = [
        HistoryEntry(clock.now - 7, Happened.ENQUEUED),
        HistoryEntry(clock.now - 6, Happened.DELIVERED, first.lease_id, "w1"),
        HistoryEntry(clock.now, Happened.LEASE_EXPIRED, first.lease_id, "w1"),
        HistoryEntry(clock.now, Happened.DELIVERED, second.lease_id, "w2"),
        HistoryEntry(clock.now, Happened.DEAD, second.lease_id, "w2", "no luck"),
    ]
    assert history_of(a.get(task.id)) == expected
    assert history_of(b.get(task.id)) == expected


@pytest.mark.parametrize("worker", [None, "host-1/42/0"])
def test_every_answer_carries_the_history_a_read_gives(pair, clock: FakeClock, worker):
    a, b = pair
    task = a.enqueue(new(max_attempts=2))

    def answered_as_read(answer):
        assert history_of(answer) == history_of(b.get(task.id))
        return answer

    # a first delivery and its end (answered without reading the history back), then a second
    # delivery and its completion (read back)
    leased = answered_as_read(a.dequeue_many(1, worker=worker)[0])
    clock.advance(1)
    answered_as_read(a.fail(task.id, "try again", lease_id=leased.lease_id))
    clock.advance(5)  # past its backoff
    again = answered_as_read(a.dequeue_many(1, worker=worker)[0])
    clock.advance(1)
    done = answered_as_read(a.complete(task.id, b"1", again.lease_id))

    assert [entry.event for entry in history_of(done)] == [
        "enqueued",
        "delivered",
        "failed",
        "delivered",
        "completed",
    ]
    assert history_of(done)[-1] == HistoryEntry(
        clock.now, Happened.COMPLETED, again.lease_id, worker
    )

    other = a.enqueue(new())
    leased = a.dequeue_many(1, worker=worker)[0]
    clock.advance(1)
    done = a.complete(other.id, None, leased.lease_id)
    assert history_of(done) == history_of(b.get(other.id))
    assert history_of(done)[1:] == [
        HistoryEntry(clock.now - 1, Happened.DELIVERED, leased.lease_id, worker),
        HistoryEntry(clock.now, Happened.COMPLETED, leased.lease_id, worker),
    ]


def test_deleting_a_task_deletes_its_history(pair, redis_url: str, prefix: str):
    a, b = pair
    task = a.enqueue(new())
    leased = a.dequeue()
    a.complete(task.id, None, leased.lease_id)
    admin = redis.Redis.from_url(redis_url)
    assert admin.llen(f"{prefix}:h:{task.id}") == 2  # delivered, completed: the enqueue implied

    b.delete(task.id)
    assert admin.exists(f"{prefix}:h:{task.id}") == 0


def test_a_worker_registered_through_one_server_is_listed_by_the_other(pair, clock: FakeClock):
    a, b = pair
    first, second = a.enqueue(new()), a.enqueue(new())
    taken = a.dequeue_many(2, worker="host-1/7/0")
    (listed,) = b.workers()
    assert (listed.id, set(listed.tasks), listed.last_seen) == (
        "host-1/7/0",
        {first.id, second.id},
        clock.now,
    )

    clock.advance(2)
    b.complete(taken[0].id, None, taken[0].lease_id)
    b.fail(taken[1].id, "no", lease_id=taken[1].lease_id)
    b.saw_worker("host-2/9/0")
    assert [(info.id, info.tasks, info.completed, info.failed) for info in a.workers()] == [
        ("host-2/9/0", (), 0, 0),  # seen last, listed first
        ("host-1/7/0", (), 1, 1),
    ]

    clock.advance(WORKER_SEEN_SECONDS)
    a.saw_worker("host-2/9/0")
    assert [info.id for info in b.workers()] == ["host-2/9/0"]  # the other one is forgotten


def test_a_server_tells_redis_of_a_worker_it_sees_at_most_once_a_second(pair, clock: FakeClock):
    a, b = pair
    start = clock.now

    def last_seen() -> float:
        (info,) = b.workers()
        return info.last_seen

    a.saw_worker("w")
    clock.advance(0.5)
    a.saw_worker("w")  # a fenced call half a second later: nothing sent
    assert last_seen() == start
    b.saw_worker("w")  # another server has not told it yet
    assert last_seen() == start + 0.5
    clock.advance(0.5)
    a.saw_worker("w")
    assert last_seen() == start + 1


def test_beyond_the_most_workers_the_one_seen_longest_ago_is_forgotten(
    pair, clock: FakeClock, redis_url: str, policy: Policy, prefix: str
):
    a, b = pair
    a.saw_worker("oldest")
    clock.advance(1)
    busy = RedisStore(redis_url, policy, clock, prefix=prefix)  # a server with many consumers

    async def see_many() -> None:
        sightings = (busy.run_async(busy.saw_worker, f"w{n}") for n in range(MAX_WORKERS))
        await asyncio.gather(*sightings)
        busy.close()  # on its loop, which closes its connections

    asyncio.run(see_many())

    listed = b.workers()
    assert len(listed) == MAX_WORKERS
    assert "oldest" not in {info.id for info in listed}


def test_the_feed_of_one_server_hears_the_changes_made_through_the_other_in_order(pair):
    a, b = pair
    feed = b.event_feed
    feed.start()
    heard = Heard()
    feed.subscribe(heard)

    enqueued = a.enqueue(new(queue="q"))
    leased = b.dequeue_many(1, queue="q", worker="w")[0]
    done = a.complete(enqueued.id, b"1", leased.lease_id)

    received = heard.first(3)
    assert [event.event for event in received] == ["enqueued", "delivered", "completed"]
    # the data the memory store gives for the same changes
    assert [event.data for event in received] == [
        event_data(enqueued, HistoryEntry(enqueued.created_at, Happened.ENQUEUED)),
        event_data(leased, history_of(leased)[-1]),
        event_data(done, history_of(done)[-1]),
    ]
    positions = [feed.position(event.id) for event in received]
    assert positions == sorted(positions) and len(set(positions)) == 3

    # B's reader heard them; either server resumes from an id it heard, with the same ids
    for store in (b, a):
        missed = store.event_feed.since(received[0].id)
        assert missed == received[1:]
        assert store.event_feed.since(received[-1].id) == []


def test_since_asks_for_a_resync_once_what_came_after_an_id_was_trimmed(pair):
    a, b = pair
    feed = b.event_feed
    feed.start()
    heard = Heard()
    feed.subscribe(heard)
    a.enqueue(new())
    (first,) = heard.first(1)

    a.enqueue_many([new() for _ in range(30 * BUFFER)])  # far more than the stream keeps
    assert feed.since(first.id) is None  # gone from the stream: the client must resync

    before, last = a.enqueue(new()), a.enqueue(new())
    assert wait_until(lambda: last.id in {event.data["id"] for event in heard.events})
    by_task = {event.data["id"]: event for event in heard.events}
    assert a.event_feed.since(by_task[before.id].id) == [by_task[last.id]]
    assert feed.since("1-0") is None  # a well-formed id the stream never had
    assert feed.since("99999999999999999999-0") is None  # no id Redis could make
    assert feed.since("not-an-id") is None


def test_recording_is_on_for_a_few_minutes_after_a_start(pair, redis_url: str, prefix: str):
    a, _ = pair
    admin = redis.Redis.from_url(redis_url)
    a.enqueue(new())
    assert admin.exists(f"{prefix}:feed") == 0  # nobody started the feed: nothing recorded

    a.event_feed.start()
    assert 0 < admin.ttl(f"{prefix}:feed_on") <= ON_SECONDS
    a.enqueue(new())
    assert admin.xlen(f"{prefix}:feed") == 1


def test_closing_a_store_stops_its_feed_reader(redis_url: str, policy: Policy, prefix: str):
    store = RedisStore(redis_url, policy, prefix=prefix)
    store.event_feed.start()
    store.event_feed.subscribe(Heard())
    reader = store.event_feed._reader
    assert reader is not None and reader.is_alive()

    store.close()
    assert not reader.is_alive()
    store.flush()
