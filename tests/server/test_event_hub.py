"""The event hub on its own, over a memory store's feed: what a resuming client's replay
covered is never sent again when it is heard live, and a client counts as behind only while
its connection is not taking what was written (HTTP behaviour: handlers/test_events.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from tornado.ioloop import IOLoop

from tornado_queue.models import NewTask
from tornado_queue.server.event_hub import KEEPALIVE, EventHub, StreamClient
from tornado_queue.storage import MemoryStore


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = IOLoop.current().time() + timeout
    while not condition():
        assert IOLoop.current().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.001)


def enqueue(store: MemoryStore) -> str:
    return store.enqueue(NewTask(payload=b"{}")).id


def ids_in(chunk: bytes) -> list[str]:
    return [line[4:].decode() for line in chunk.split(b"\n") if line.startswith(b"id: ")]


@pytest.mark.gen_test(timeout=10)
async def test_what_a_replay_covered_is_not_sent_again_when_heard_live(memory_store):
    hub = EventHub(memory_store)
    watcher = hub.join(None, lambda: None)
    hub.start()
    watcher.go_live(None)
    enqueue(memory_store)
    await until(lambda: bool(watcher.unsent))
    (seen,) = ids_in(watcher.take())

    # A client resumes from `seen`: it joins (holding what it hears) before its replay is read,
    # and two events come in between, so the replay and what it heard overlap.
    resuming = hub.join(None, lambda: None)
    enqueue(memory_store)
    enqueue(memory_store)
    await until(lambda: len(resuming.held) == 2)
    missed = hub.feed.since(seen)
    assert missed is not None and len(missed) == 2
    resuming.go_live(hub.feed.position(missed[-1].id))

    assert resuming.take() == b""  # the replay (written by its handler) had them both
    later = enqueue(memory_store)
    await until(lambda: bool(resuming.unsent))
    chunk = resuming.take()
    assert chunk.count(b"event: enqueued") == 1 and later.encode() in chunk
    assert ids_in(watcher.take()) == [*(event.id for event in missed), *ids_in(chunk)]


def test_a_client_is_behind_only_while_its_connection_has_not_taken_the_last_write():
    client = StreamClient(None, 2, lambda: None)
    client.go_live(None)

    assert all(client.offer((0, n), b"x") for n in range(1, 10))  # a burst, written out whole
    client.writing = True
    client.take()
    assert client.offer((0, 10), b"x")
    assert client.offer((0, 11), b"x")
    assert not client.offer((0, 12), b"x")  # a third waiting while the write is not taken


def test_a_client_holds_at_most_its_buffer_while_its_replay_is_read():
    client = StreamClient(None, 2, lambda: None)

    assert client.offer((0, 1), b"a") and client.offer((0, 2), b"b")
    assert not client.offer((0, 3), b"c")


def test_a_keep_alive_goes_only_to_an_idle_live_client():
    idle, busy, replaying = (StreamClient(None, 10, lambda: None) for _ in range(3))
    idle.go_live(None)
    busy.go_live(None)
    busy.offer((0, 1), b"event")

    for client in (idle, busy, replaying):
        client.keep_alive()

    assert (idle.take(), busy.take(), replaying.take()) == (KEEPALIVE, b"event", b"")
