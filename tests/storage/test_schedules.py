"""The schedule contract on every store: a firing is decided by the store, so stores sharing
one Redis racing for an occurrence enqueue it once, a revision changed between reading and
firing refuses the firing, and SQLite keeps schedules (and their runs) across a reopen."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path

from tests.conftest import FakeClock
from tests.support import shared_redis_stores
from tornado_queue.schedules import Schedule
from tornado_queue.storage import Policy, SqliteStore

TICK = Schedule("tick", "ticks", b'{"tick":1}', every=10)


def fired_times(store) -> list[float]:
    tasks, _ = store.view(1000, 0, "ticks")
    return [task.fire_time for task in tasks]


def test_a_schedule_is_put_read_listed_and_deleted(store, clock: FakeClock):
    stored, created = store.put_schedule(TICK)

    assert created
    assert (stored.next_run_at, stored.last_run_at, stored.revision) == (clock.now + 10, None, 1)
    assert store.get_schedule("tick") == stored
    again, created = store.put_schedule(replace(TICK, every=20))
    assert not created and again.revision == 2 and again.every == 20
    assert [schedule.name for schedule in store.schedules()] == ["tick"]
    assert store.delete_schedule("tick")
    assert not store.delete_schedule("tick")
    assert store.get_schedule("tick") is None
    assert store.fire_due_schedules().fired == []


def test_a_round_fires_at_most_its_limit_and_says_more_are_due(store, clock: FakeClock):
    for n in range(5):
        store.put_schedule(replace(TICK, name=f"tick-{n}"))
    clock.advance(10)

    first = store.fire_due_schedules(limit=3)
    rest = store.fire_due_schedules(limit=3)

    assert (len(first.fired), first.more) == (3, True)
    assert (len(rest.fired), rest.more) == (2, False)
    assert rest.next_due == clock.now + 10
    assert len(fired_times(store)) == 5


def race(store, barrier: threading.Barrier) -> None:
    barrier.wait()
    store.fire_due_schedules()


def test_stores_sharing_one_redis_racing_for_occurrences_enqueue_each_once(
    redis_url: str, clock: FakeClock, policy: Policy
):
    with shared_redis_stores(redis_url, policy, clock, "{tq-schedules}") as (a, b):
        start = clock.now
        a.put_schedule(TICK)
        for _ in range(20):
            clock.advance(10)
            barrier = threading.Barrier(2)

            threads = [threading.Thread(target=race, args=(store, barrier)) for store in (a, b)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

        times = fired_times(a)
        assert times == [start + 10 * n for n in range(1, 21)]
        assert a.get_schedule("tick").last_run_at == start + 200


def test_a_firing_computed_from_an_older_revision_is_refused(
    redis_url: str, clock: FakeClock, policy: Policy
):
    with shared_redis_stores(redis_url, policy, clock, "{tq-schedules}") as (a, b):
        a.put_schedule(TICK)
        clock.advance(10)
        steps = type(a).fire_due_schedules.steps(a)
        due_call = next(steps)
        due = a._outcome(due_call)
        fire_call = steps.send(due)
        # Meanwhile the schedule is replaced through the other store (a new revision)
        b.put_schedule(replace(TICK, every=10))
        b_schedule = b.get_schedule("tick")
        assert b_schedule is not None and b_schedule.revision == 2
        try:
            steps.send(a._outcome(fire_call))
        except StopIteration as done:
            assert done.value.fired == []
        assert fired_times(a) == []


def test_sqlite_keeps_schedules_and_their_runs_across_a_reopen(
    tmp_path: Path, clock: FakeClock, policy: Policy
):
    path = tmp_path / "q.db"
    first = SqliteStore(path, policy, clock)
    first.put_schedule(TICK)
    clock.advance(10)
    first.fire_due_schedules()
    first.close()

    clock.advance(35)
    reopened = SqliteStore(path, policy, clock)
    try:
        shown = reopened.get_schedule("tick")
        assert shown is not None and shown.last_run_at == clock.now - 35
        reopened.fire_due_schedules()
        reopened.fire_due_schedules()
        assert fired_times(reopened) == [clock.now - 35, clock.now - 5]
    finally:
        reopened.close()
