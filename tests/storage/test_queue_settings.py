"""Queue settings in every store: set, cleared and listed atomically; a paused queue delivers
nothing, not even a task whose lease ran out, and resuming it wakes listeners; settings last
across a SQLite restart and are shared by every server on one Redis."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import FakeClock
from tests.support import call, shared_redis_stores, wait_until
from tornado_queue.models import NewTask, QueueSettings, TaskStatus
from tornado_queue.storage import Policy, SqliteStore
from tornado_queue.testing import ServerProcess


def listen(store) -> list[tuple[str, int]]:
    heard: list[tuple[str, int]] = []
    store.add_ready_listener(lambda queue, count: heard.append((queue, count)))
    return heard


def test_settings_are_set_cleared_and_listed(store):
    assert store.queue_settings("emails") == QueueSettings()
    assert store.configure("emails", {"paused": True}) == QueueSettings(paused=True)
    assert store.queue_settings("emails") == QueueSettings(paused=True)
    assert store.configured_queues() == {"emails": QueueSettings(paused=True)}
    assert store.queues()["emails"] == dict.fromkeys(TaskStatus, 0)  # kept while empty

    assert store.configure("emails", {"paused": None}) == QueueSettings()

    assert store.configured_queues() == {}
    assert "emails" not in store.queues()


def test_a_paused_queue_delivers_nothing_until_resumed_and_others_go_on(store):
    first = store.enqueue(NewTask(payload=b"{}", queue="emails"))
    store.enqueue(NewTask(payload=b"{}", queue="other"))
    store.configure("emails", {"paused": True})

    assert store.dequeue_many(5, queue="emails") == []
    assert store.dequeue(queue="other") is not None
    store.enqueue(NewTask(payload=b"{}", queue="emails"))  # still accepted
    assert store.stats("emails")[TaskStatus.PENDING] == 2

    store.configure("emails", {"paused": False})

    assert store.dequeue(queue="emails").id == first.id
    assert store.queue_settings("emails") == QueueSettings(paused=False)


def test_a_lease_that_runs_out_on_a_paused_queue_is_not_delivered_again(store, clock: FakeClock):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))
    leased = store.dequeue(lease_seconds=5, queue="emails")
    store.configure("emails", {"paused": True})

    clock.advance(6)

    assert store.dequeue(queue="emails") is None
    assert store.get(leased.id).status is TaskStatus.PENDING
    store.configure("emails", {"paused": None})
    assert store.dequeue(queue="emails").id == leased.id


def test_resuming_tells_listeners_the_pending_count_and_nothing_else_does(store):
    for _ in range(3):
        store.enqueue(NewTask(payload=b"{}", queue="emails"))
    heard = listen(store)

    store.configure("emails", {"paused": True})
    store.configure("emails", {"paused": True})
    store.configure("idle", {"paused": True})
    store.configure("idle", {"paused": None})  # resumed, but nothing to deliver
    assert heard == []

    store.configure("emails", {"paused": None})

    assert heard == [("emails", 3)]


def test_sqlite_settings_last_across_a_restart(tmp_path: Path, policy: Policy):
    first = SqliteStore(tmp_path / "q.db", policy)
    first.enqueue(NewTask(payload=b"{}", queue="emails"))
    first.configure("emails", {"paused": True})
    first.close()

    again = SqliteStore(tmp_path / "q.db", policy)
    try:
        assert again.queue_settings("emails") == QueueSettings(paused=True)
        assert again.dequeue(queue="emails") is None
    finally:
        again.close()


def test_every_redis_store_on_one_redis_sees_a_pause_and_hears_the_resume(
    redis_url: str, policy: Policy
):
    with shared_redis_stores(redis_url, policy, None, "{tq-settings}") as (a, b):
        a.enqueue(NewTask(payload=b"{}", queue="emails"))
        heard_on_b = listen(b)
        a.configure("emails", {"paused": True})
        assert b.dequeue(queue="emails") is None

        a.configure("emails", {"paused": None})

        # published by A's call, read by B's subscriber
        assert wait_until(lambda: ("emails", 1) in heard_on_b, 5), "B never heard of the resume"
        assert b.dequeue(queue="emails") is not None


def test_a_sqlite_server_restarted_keeps_a_queue_paused(tmp_path: Path):
    flags = ("--backend", "sqlite", "--db", str(tmp_path / "q.db"))
    with ServerProcess(tmp_path / "first.log", *flags) as server:
        assert call(server.url, "POST", "/tasks", {"payload": {}, "queue": "emails"})[0] == 201
        assert call(server.url, "PATCH", "/queues/emails", {"paused": True})[0] == 200
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        status, shown = call(restarted.url, "GET", "/queues/emails")
        assert (status, shown["settings"]["paused"], shown["pending"]) == (200, True, 1)
        assert call(restarted.url, "POST", "/tasks/dequeue?queue=emails")[0] == 404
        assert call(restarted.url, "PATCH", "/queues/emails", {"paused": None})[0] == 200
        assert call(restarted.url, "POST", "/tasks/dequeue?queue=emails")[0] == 200
