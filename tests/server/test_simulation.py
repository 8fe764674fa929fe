"""The `--workers` simulation (SimulatedWorker, WorkSignal, SimulatedWorkers): deterministic
single steps, wake-ups and clean shutdown."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from tests.support import DEADLINE_SECONDS, enqueue, wait_until
from tornado_queue.models import DEFAULT_QUEUE, TaskStatus
from tornado_queue.server import simulation as workers
from tornado_queue.server.simulation import SimulatedWorker, SimulatedWorkers, WorkSignal
from tornado_queue.storage import MemoryStore


class CountingStore(MemoryStore):
    """A MemoryStore that counts polls (the calls a worker makes to look for work: `queues` to
    list the queues, then `dequeue` on them) and ready-listener registrations."""

    def __init__(self) -> None:
        super().__init__()
        self.polls = 0
        self.listeners_added = 0
        self._count_lock = threading.Lock()

    def queues(self):
        self._polled()
        return super().queues()

    def dequeue(self, lease_seconds=None, queue=DEFAULT_QUEUE):
        self._polled()
        return super().dequeue(lease_seconds, queue)

    def _polled(self) -> None:
        with self._count_lock:
            self.polls += 1

    def add_ready_listener(self, listener) -> None:
        self.listeners_added += 1
        super().add_ready_listener(listener)


def started_pool(pools: list[SimulatedWorkers], store: MemoryStore, **kwargs) -> SimulatedWorkers:
    pool = SimulatedWorkers(store, **kwargs)
    pools.append(pool)
    pool.start()
    return pool


def new_threads_during(action: Callable[[], None]) -> set[threading.Thread]:
    before = set(threading.enumerate())
    action()
    return set(threading.enumerate()) - before


# --- SimulatedWorker.run_once --------------------------------------------------------------------


def test_run_once_takes_one_task_and_completes_it(store):
    first, second = enqueue(store, 2)
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event())

    task = worker.run_once()

    assert task is not None
    assert task.id == first
    done = store.get(first)
    assert done.status is TaskStatus.COMPLETED
    assert done.attempts == 1
    assert done.finished_at is not None
    assert store.get(second).status is TaskStatus.PENDING
    assert worker.done == 1
    assert worker.released == 0


def test_run_once_on_an_empty_queue_returns_none_and_does_nothing(store):
    worker = SimulatedWorker(store, work_seconds=0, stopping=threading.Event())

    assert worker.run_once() is None
    assert worker.done == 0
    assert worker.released == 0


def test_run_once_when_already_stopping_releases_the_task_back_to_pending(store):
    # Given a pool that is stopping
    [task_id] = enqueue(store)
    stopping = threading.Event()
    stopping.set()
    worker = SimulatedWorker(store, work_seconds=0, stopping=stopping)

    # When a worker still takes a task
    task = worker.run_once()

    # Then the task goes back to pending instead of being completed or lost
    assert task.id == task_id
    assert store.get(task_id).status is TaskStatus.PENDING
    assert [pending.id for pending in store.view(10)[0]] == [task_id]
    assert worker.released == 1
    assert worker.done == 0


def test_run_once_interrupted_while_working_releases_the_task(store):
    # Given a worker busy with a long task
    [task_id] = enqueue(store)
    stopping = threading.Event()
    worker = SimulatedWorker(store, work_seconds=30, stopping=stopping)
    result = []
    thread = threading.Thread(target=lambda: result.append(worker.run_once()), daemon=True)
    thread.start()
    assert wait_until(lambda: store.get(task_id).status is TaskStatus.PROCESSING)

    # When the pool stops
    stopping.set()
    thread.join(DEADLINE_SECONDS)

    # Then the work is abandoned at once and the task is pending again
    assert not thread.is_alive()
    assert result[0].id == task_id
    assert store.stats()[TaskStatus.PENDING] == 1
    assert store.stats()[TaskStatus.PROCESSING] == 0
    assert store.get(task_id).attempts == 1
    assert worker.released == 1
    assert worker.done == 0


@pytest.mark.parametrize("stopping_meanwhile", [False, True], ids=["completing", "releasing"])
def test_a_worker_whose_task_was_completed_by_someone_else_logs_a_warning(
    store, caplog, stopping_meanwhile
):
    [task_id] = enqueue(store)

    class SomeoneElseCompletes(threading.Event):
        """While the worker 'works', an HTTP client completes the same task."""

        def wait(self, timeout: float | None = None) -> bool:
            store.complete(task_id)
            return stopping_meanwhile

    worker = SimulatedWorker(store, work_seconds=0, stopping=SomeoneElseCompletes())

    with caplog.at_level(logging.WARNING, logger="tornado_queue.workers"):
        task = worker.run_once()

    assert task.id == task_id
    assert store.get(task_id).status is TaskStatus.COMPLETED
    assert worker.done == 0
    assert worker.released == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert task_id in warnings[0].getMessage()
    assert "completed" in warnings[0].getMessage()


def test_work_time_varies_around_work_seconds_by_half_either_way(store):
    worker = SimulatedWorker(store, work_seconds=2.0, stopping=threading.Event())

    times = [worker._work_time() for _ in range(500)]

    assert all(1.0 <= t <= 3.0 for t in times)
    assert min(times) < 1.5
    assert max(times) > 2.5


# --- WorkSignal ----------------------------------------------------------------------------------


def test_wait_returns_at_once_when_a_notify_came_after_the_generation_was_read():
    # Given a worker read the generation, then found the queue empty
    signal = WorkSignal()
    seen = signal.generation

    # When a task becomes ready before it starts waiting
    signal.notify(1)

    # Then the wait does not sleep: the wake-up was not lost
    started = time.monotonic()
    signal.wait(seen, timeout=DEADLINE_SECONDS)
    assert time.monotonic() - started < 1.0


def test_wait_returns_at_once_after_wake_all_too():
    signal = WorkSignal()
    seen = signal.generation

    signal.wake_all()

    started = time.monotonic()
    signal.wait(seen, timeout=DEADLINE_SECONDS)
    assert time.monotonic() - started < 1.0
    assert signal.generation == seen + 1


def test_wait_without_any_notify_sleeps_for_its_timeout():
    signal = WorkSignal()

    started = time.monotonic()
    signal.wait(signal.generation, timeout=0.05)

    assert time.monotonic() - started >= 0.04


def test_notify_wakes_a_waiting_thread():
    signal = WorkSignal()
    ready = threading.Event()
    woke = threading.Event()

    def waiter() -> None:
        seen = signal.generation
        ready.set()
        signal.wait(seen, timeout=30)
        woke.set()

    thread = threading.Thread(target=waiter, daemon=True)
    thread.start()
    assert ready.wait(DEADLINE_SECONDS)

    started = time.monotonic()
    signal.notify(1)

    assert woke.wait(DEADLINE_SECONDS)
    assert time.monotonic() - started < 5.0  # far less than the waiter's 30 s timeout
    thread.join(DEADLINE_SECONDS)


def test_wake_all_wakes_every_waiting_thread():
    signal = WorkSignal()
    waiters = 4
    ready = threading.Barrier(waiters + 1)
    woken = threading.Semaphore(0)

    def waiter() -> None:
        seen = signal.generation
        ready.wait(DEADLINE_SECONDS)
        signal.wait(seen, timeout=30)
        woken.release()

    threads = [threading.Thread(target=waiter, daemon=True) for _ in range(waiters)]
    for thread in threads:
        thread.start()
    ready.wait(DEADLINE_SECONDS)

    signal.wake_all()

    assert all(woken.acquire(timeout=DEADLINE_SECONDS) for _ in range(waiters))
    for thread in threads:
        thread.join(DEADLINE_SECONDS)


# --- SimulatedWorkers ----------------------------------------------------------------------------


def test_a_pool_completes_every_task_exactly_once_then_stops_quickly(pools):
    # Given 500 tasks, half of them queued before the pool starts
    store = MemoryStore()
    ids = enqueue(store, 250)
    pool = SimulatedWorkers(store, count=4, work_seconds=0)
    pools.append(pool)
    threads = new_threads_during(pool.start)
    ids += enqueue(store, 250)

    # When the workers run
    assert wait_until(lambda: store.stats()[TaskStatus.COMPLETED] == 500), store.stats()

    # Then each task was delivered once and completed once
    assert all(store.get(task_id).attempts == 1 for task_id in ids)
    assert store.stats() == {**dict.fromkeys(TaskStatus, 0), TaskStatus.COMPLETED: 500}
    assert pool.done == 500
    assert sum(worker.released for worker in pool.workers) == 0

    # And stop returns promptly with every thread gone
    assert len(threads) == 5  # four workers and the reporter
    started = time.monotonic()
    assert pool.stop(timeout=DEADLINE_SECONDS) is True
    assert time.monotonic() - started < 2.5
    assert not any(thread.is_alive() for thread in threads)


def test_a_pool_of_zero_workers_starts_and_stops_without_doing_anything(pools):
    store = CountingStore()
    ids = enqueue(store, 3)
    pool = SimulatedWorkers(store, count=0, work_seconds=0)
    pools.append(pool)

    threads = new_threads_during(pool.start)
    enqueue(store, 1)

    assert threads == set()
    assert pool.workers == []
    assert store.listeners_added == 0
    assert store.polls == 0
    assert pool.stop(timeout=1) is True
    assert pool.done == 0
    assert store.stats()[TaskStatus.PENDING] == 4
    assert all(store.get(task_id).status is TaskStatus.PENDING for task_id in ids)


def test_stopping_a_pool_mid_task_returns_quickly_and_leaves_the_tasks_pending(pools):
    # Given three workers each busy with a 30-second task, and two tasks still queued
    store = MemoryStore()
    ids = enqueue(store, 5)
    pool = SimulatedWorkers(store, count=3, work_seconds=30)
    pools.append(pool)
    threads = new_threads_during(pool.start)
    assert wait_until(lambda: store.stats()[TaskStatus.PROCESSING] == 3)

    # When the pool stops
    started = time.monotonic()
    stopped = pool.stop(timeout=DEADLINE_SECONDS)
    elapsed = time.monotonic() - started

    # Then it does not wait for the work, and no task is processing or lost
    assert stopped is True
    assert elapsed < 2.0
    assert not any(thread.is_alive() for thread in threads)
    stats = store.stats()
    assert stats[TaskStatus.PENDING] == 5
    assert stats[TaskStatus.PROCESSING] == 0
    assert stats[TaskStatus.COMPLETED] == 0
    pending, total = store.view(100)
    assert total == 5
    assert {task.id for task in pending} == set(ids)
    assert sum(worker.released for worker in pool.workers) == 3
    assert pool.done == 0


def test_idle_workers_do_not_spin_on_an_empty_queue(pools):
    # Given four workers and nothing to do
    store = CountingStore()
    started_pool(pools, store, count=4, work_seconds=0)
    assert wait_until(lambda: store.polls >= 4)  # each worker has looked once

    # When 0.3 s pass with the queue empty
    before = store.polls
    time.sleep(0.3)  # an observation window, not a wait for a condition

    # Then the workers slept instead of polling the store
    assert store.polls - before < 20


def test_an_enqueue_wakes_an_idle_worker_without_waiting_for_its_idle_timeout(pools, monkeypatch):
    # Given idle workers whose fallback re-check is 5 s away
    monkeypatch.setattr(workers, "IDLE_WAIT_SECONDS", 5.0)
    store = CountingStore()
    started_pool(pools, store, count=2, work_seconds=0)
    assert wait_until(lambda: store.polls >= 2)

    # When a task arrives
    started = time.monotonic()
    [task_id] = enqueue(store)

    # Then a worker is woken by the store's ready listener and finishes it right away
    assert wait_until(lambda: store.get(task_id).status is TaskStatus.COMPLETED, timeout=4.0)
    assert time.monotonic() - started < 4.0


def test_stop_wakes_an_idle_worker_even_if_it_reads_the_generation_during_stop(pools, monkeypatch):
    # A worker checks `stopping` and only then reads the signal's generation. If stop() sets
    # `stopping` and wakes everyone in between, the worker reads the *new* generation, finds the
    # queue empty and sleeps a full idle period: a lost wake-up that delays shutdown.
    monkeypatch.setattr(workers, "IDLE_WAIT_SECONDS", 10.0)
    store = MemoryStore()
    reading = threading.Event()
    woken = threading.Event()

    class InterleavingSignal(WorkSignal):
        """Holds the worker's first generation read until stop() has called wake_all."""

        first_read = True

        @property
        def generation(self) -> int:
            if self.first_read:
                self.first_read = False
                reading.set()
                assert woken.wait(DEADLINE_SECONDS)
            return super().generation

        def wake_all(self) -> None:
            super().wake_all()
            woken.set()

    pool = SimulatedWorkers(store, count=1, work_seconds=0, report_seconds=60)
    pool._signal = InterleavingSignal()
    pools.append(pool)
    threads = new_threads_during(pool.start)
    assert reading.wait(DEADLINE_SECONDS)

    started = time.monotonic()
    stopped = pool.stop(timeout=DEADLINE_SECONDS + 5)
    elapsed = time.monotonic() - started

    assert stopped is True
    assert not any(thread.is_alive() for thread in threads)
    assert elapsed < 2.0, f"stop() took {elapsed:.1f}s: the idle worker missed the wake-up"


def test_the_pool_reports_progress_in_the_log(pools, caplog):
    store = MemoryStore()
    enqueue(store, 20)

    with caplog.at_level(logging.INFO, logger="tornado_queue.workers"):
        started_pool(pools, store, count=2, work_seconds=0, report_seconds=0.02)
        assert wait_until(lambda: store.stats()[TaskStatus.COMPLETED] == 20)
        assert wait_until(
            lambda: any("20 tasks done" in record.getMessage() for record in caplog.records)
        )


class FailingOnceStore(MemoryStore):
    """A MemoryStore whose first poll for work (`queues` or `dequeue`, whichever a worker calls
    first) raises an unexpected error, as a broken store would."""

    def __init__(self) -> None:
        super().__init__()
        self.raised = threading.Event()

    def queues(self):
        self._break_once()
        return super().queues()

    def dequeue(self, lease_seconds=None, queue=DEFAULT_QUEUE):
        self._break_once()
        return super().dequeue(lease_seconds, queue)

    def _break_once(self) -> None:
        if not self.raised.is_set():
            self.raised.set()
            raise RuntimeError("the store broke down once")


def test_a_worker_survives_an_unexpected_store_error_logs_it_and_keeps_working(
    pools, caplog, monkeypatch
):
    # Given one worker whose first poll for work raises (its pause after an error cut to 10 ms)
    monkeypatch.setattr(workers, "IDLE_WAIT_SECONDS", 0.01)
    store = FailingOnceStore()

    with caplog.at_level(logging.ERROR, logger="tornado_queue.workers"):
        pool = SimulatedWorkers(store, count=1, work_seconds=0, report_seconds=3600)
        pools.append(pool)
        threads = new_threads_during(pool.start)
        assert store.raised.wait(DEADLINE_SECONDS)
        assert wait_until(lambda: any(r.exc_info for r in caplog.records))

        # When tasks arrive afterwards
        ids = enqueue(store, 5)

        # Then the same worker thread takes them all: the error shrank nothing
        assert wait_until(lambda: store.stats()[TaskStatus.COMPLETED] == 5), store.stats()

    [worker_thread] = [thread for thread in threads if thread.name == "tq-worker-1"]
    assert worker_thread.is_alive()
    assert pool.done == 5
    assert all(store.get(task_id).status is TaskStatus.COMPLETED for task_id in ids)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "tq-worker-1 failed; carrying on" in record.getMessage()
    assert record.exc_info[0] is RuntimeError
    assert "broke down once" in str(record.exc_info[1])


class ObservedPool(SimulatedWorkers):
    """A SimulatedWorkers that counts the reporter's rounds (each reads `done` once) for tests to
    wait on, instead of sleeping for some multiple of `report_seconds`."""

    def __init__(self, *args, **kwargs) -> None:
        self._rounds = threading.Condition()
        self.report_rounds = 0
        super().__init__(*args, **kwargs)

    @property
    def done(self) -> int:
        if threading.current_thread().name == "tq-report":
            with self._rounds:
                self.report_rounds += 1
                self._rounds.notify_all()
        return super().done

    def wait_for_rounds(self, count: int) -> bool:
        """Wait until the reporter has looked `count` more times."""
        with self._rounds:
            target = self.report_rounds + count
            return self._rounds.wait_for(lambda: self.report_rounds >= target, DEADLINE_SECONDS)


def progress_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("workers:")]


def test_the_progress_reporter_stays_quiet_while_the_pool_is_idle(pools, caplog):
    store = MemoryStore()

    with caplog.at_level(logging.INFO, logger="tornado_queue.workers"):
        # Given an idle pool that reports every 5 ms
        pool = ObservedPool(store, count=2, work_seconds=0, report_seconds=0.005)
        pools.append(pool)
        pool.start()

        # When the reporter has looked 20 times with nothing done
        assert pool.wait_for_rounds(20)

        # Then it said nothing
        assert progress_lines(caplog) == []

        # And after some work it reports it, then is quiet again while idle
        enqueue(store, 3)
        assert wait_until(lambda: store.stats()[TaskStatus.COMPLETED] == 3)
        assert wait_until(lambda: any("3 tasks done" in line for line in progress_lines(caplog)))
        reported = progress_lines(caplog)
        assert pool.wait_for_rounds(20)
        assert progress_lines(caplog) == reported
        assert "3 tasks done, 0 attempts failed" in reported[-1]
