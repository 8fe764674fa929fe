"""Workers under at-least-once delivery: simulated failures, heartbeats and lost leases."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

import pytest

from tests.support import DEADLINE_SECONDS, enqueue, wait_until
from tornado_queue.models import TaskStatus
from tornado_queue.server.simulation import SimulatedWorker, SimulatedWorkers
from tornado_queue.storage import MemoryStore, Policy


class ExactWork(random.Random):
    """An rng whose work time is exactly `work_seconds` (no ±50% variation)."""

    def uniform(self, a: float, b: float) -> float:
        return 1.0


class HeartbeatCountingStore(MemoryStore):
    """A MemoryStore (on the real clock) that records every heartbeat's lease id."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy)
        self.heartbeats: list[str | None] = []

    def heartbeat(self, task_id, lease_seconds=None, lease_id=None):
        self.heartbeats.append(lease_id)
        return super().heartbeat(task_id, lease_seconds, lease_id)


class Meanwhile(threading.Event):
    """A `stopping` event whose wait runs `action` instead of sleeping: what happens elsewhere
    while the worker works. It never reports a stop."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self.action = action
        self.calls = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.action()
        return False


# --- --fail-rate ---------------------------------------------------------------------------------


def test_a_worker_with_fail_rate_1_fails_every_task_through_the_store(store):
    # The conftest policy has a 1 s retry backoff: a failed attempt waits as scheduled
    first, second = enqueue(store, 2)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event(), fail_rate=1.0)

    assert worker.run_once().id == first
    assert worker.run_once().id == second

    for task_id in (first, second):
        task = store.get(task_id)
        assert task.status is TaskStatus.SCHEDULED
        assert task.error == "simulated failure"
        assert task.attempts == 1
        assert task.lease_id is None
    assert worker.failed == 2
    assert worker.done == 0
    assert store.stats()[TaskStatus.SCHEDULED] == 2


def test_failed_simulated_work_is_retried_until_max_attempts_then_dead(store, clock):
    [task_id] = enqueue(store)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event(), fail_rate=1.0)

    for attempt in (1, 2, 3):
        assert worker.run_once().id == task_id
        assert store.get(task_id).attempts == attempt
        clock.advance(store.policy.backoff(attempt))

    dead = store.get(task_id)
    assert dead.status is TaskStatus.FAILED
    assert dead.error == "simulated failure"
    assert worker.failed == 3
    assert worker.run_once() is None


def test_with_no_backoff_a_simulated_failure_goes_straight_back_to_pending(clock):
    store = MemoryStore(Policy(retry_backoff=0), clock)
    [task_id] = enqueue(store)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event(), fail_rate=1.0)

    worker.run_once()

    task = store.get(task_id)
    assert task.status is TaskStatus.PENDING
    assert task.error == "simulated failure"
    assert [pending.id for pending in store.view(10)[0]] == [task_id]


def test_a_worker_with_fail_rate_0_completes_every_task(store):
    ids = enqueue(store, 5)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event(), fail_rate=0.0)

    while worker.run_once() is not None:
        pass

    assert all(store.get(task_id).status is TaskStatus.COMPLETED for task_id in ids)
    assert all(store.get(task_id).error is None for task_id in ids)
    assert worker.done == 5
    assert worker.failed == 0


def test_a_fail_rate_of_one_half_fails_about_half_the_attempts(clock):
    store = MemoryStore(Policy(max_attempts=1), clock)
    enqueue(store, 400)
    worker = SimulatedWorker(
        store, work_seconds=0, stopping=threading.Event(), fail_rate=0.5, rng=random.Random(7)
    )

    while worker.run_once() is not None:
        pass

    stats = store.stats()
    assert stats[TaskStatus.COMPLETED] + stats[TaskStatus.FAILED] == 400
    assert stats[TaskStatus.FAILED] == worker.failed
    assert 140 < worker.failed < 260


# --- heartbeats ----------------------------------------------------------------------------------


def test_a_worker_whose_work_outlasts_the_lease_heartbeats_and_keeps_the_task():
    # Given a 0.45 s lease and 0.9 s of work (real time): without heartbeats the lease would
    # run out halfway through and the task would be handed to someone else
    store = HeartbeatCountingStore(Policy(lease_seconds=0.45))
    [task_id] = enqueue(store)
    worker = SimulatedWorker(store, work_seconds=0.9, stopping=threading.Event(), rng=ExactWork())
    thread = threading.Thread(target=worker.run_once, daemon=True)

    # When the worker runs while another consumer keeps trying to take the task
    started = time.monotonic()
    thread.start()
    assert wait_until(lambda: store.get(task_id).status is not TaskStatus.PENDING)
    lease_id = store.get(task_id).lease_id
    stolen = []
    while thread.is_alive():
        task = store.dequeue()
        if task is not None:
            stolen.append(task)
        thread.join(0.02)  # an observation window while the worker works

    # Then the task was never redelivered, and the worker completed it under its one lease
    assert time.monotonic() - started < 3.0
    assert stolen == []
    done = store.get(task_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.attempts == 1
    assert worker.done == 1
    assert len(store.heartbeats) >= 2
    assert set(store.heartbeats) == {lease_id}


def test_a_worker_whose_work_is_short_does_not_heartbeat():
    store = HeartbeatCountingStore(Policy(lease_seconds=30))
    enqueue(store)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event())

    worker.run_once()

    assert store.heartbeats == []
    assert worker.done == 1


# --- lost leases ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_rate", [0.0, 1.0], ids=["completing", "failing"])
def test_a_worker_whose_lease_expired_and_went_to_another_consumer_logs_and_moves_on(
    store, clock, caplog, fail_rate
):
    [task_id] = enqueue(store)
    other: list = []

    def lease_expires_and_someone_else_takes_it() -> None:
        clock.advance(store.policy.lease_seconds)
        other.append(store.dequeue())

    worker = SimulatedWorker(
        store,
        work_seconds=0,
        stopping=Meanwhile(lease_expires_and_someone_else_takes_it),
        fail_rate=fail_rate,
    )

    with caplog.at_level(logging.WARNING, logger="tornado_queue.workers"):
        task = worker.run_once()  # does not raise

    # The late worker changed nothing: the other consumer still holds the task
    assert task.id == task_id
    [taken] = other
    assert taken.id == task_id
    current = store.get(task_id)
    assert current.status is TaskStatus.PROCESSING
    assert current.lease_id == taken.lease_id != task.lease_id
    assert current.attempts == 2
    assert current.error is None
    assert (worker.done, worker.failed, worker.released) == (0, 0, 0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert task_id in warnings[0].getMessage()
    assert "lost" in warnings[0].getMessage()
    # And the new holder finishes it normally
    assert store.complete(task_id, lease_id=taken.lease_id).status is TaskStatus.COMPLETED


def test_a_worker_whose_lease_was_lost_before_its_heartbeat_logs_and_moves_on(store, clock, caplog):
    # Work of 20 s under a 30 s lease heartbeats every 10 s; before the first heartbeat the
    # lease runs out and another consumer takes the task
    [task_id] = enqueue(store)
    other: list = []

    def lease_expires_and_someone_else_takes_it() -> None:
        clock.advance(store.policy.lease_seconds)
        other.append(store.dequeue())

    worker = SimulatedWorker(
        store,
        work_seconds=20,
        stopping=Meanwhile(lease_expires_and_someone_else_takes_it),
        rng=ExactWork(),
    )

    with caplog.at_level(logging.WARNING, logger="tornado_queue.workers"):
        worker.run_once()

    [taken] = other
    current = store.get(task_id)
    assert current.status is TaskStatus.PROCESSING
    assert current.lease_id == taken.lease_id
    assert current.lease_expires_at == taken.lease_expires_at  # the stale heartbeat was refused
    assert worker.done == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert task_id in warnings[0]
    assert "heartbeat" in warnings[0]


def test_a_worker_whose_task_was_completed_by_another_consumer_does_not_complete_it_again(
    store, caplog
):
    [task_id] = enqueue(store)
    worker = SimulatedWorker(
        store,
        work_seconds=0,
        stopping=Meanwhile(lambda: store.complete(task_id, result=b'"by http"')),
    )

    with caplog.at_level(logging.WARNING, logger="tornado_queue.workers"):
        worker.run_once()

    done = store.get(task_id)
    assert done.status is TaskStatus.COMPLETED
    assert done.result == b'"by http"'
    assert worker.done == 0
    assert any(task_id in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


# --- a pool with failures ------------------------------------------------------------------------


def test_a_pool_with_fail_rate_one_half_finishes_every_task_completed_or_failed(pools):
    # Given 300 tasks, 3 attempts each, retried at once, and workers that fail half the time
    store = MemoryStore(Policy(max_attempts=3, retry_backoff=0))
    ids = enqueue(store, 300)
    pool = SimulatedWorkers(store, count=4, work_seconds=0, fail_rate=0.5)
    pools.append(pool)
    pool.start()

    # When the workers have settled every task
    def settled() -> bool:
        stats = store.stats()
        return stats[TaskStatus.COMPLETED] + stats[TaskStatus.FAILED] == 300

    assert wait_until(settled), store.stats()

    # Then nothing is left waiting or held, and every task ended in one of the final states
    stats = store.stats()
    assert stats[TaskStatus.PENDING] == 0
    assert stats[TaskStatus.PROCESSING] == 0
    assert stats[TaskStatus.SCHEDULED] == 0
    tasks = [store.get(task_id) for task_id in ids]
    dead = [task for task in tasks if task.status is TaskStatus.FAILED]
    completed = [task for task in tasks if task.status is TaskStatus.COMPLETED]
    assert len(dead) + len(completed) == 300
    assert len(dead) == stats[TaskStatus.FAILED]
    assert all(task.attempts == 3 and task.error == "simulated failure" for task in dead)
    assert all(1 <= task.attempts <= 3 for task in completed)
    # With p = 0.5 about 1 in 8 dies; both outcomes happen
    assert 0 < len(dead) < 100
    assert pool.done == len(completed)
    attempts = sum(task.attempts for task in tasks)
    assert pool.failed == attempts - len(completed)
    assert pool.stop(timeout=DEADLINE_SECONDS) is True
