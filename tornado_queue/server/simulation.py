"""The `--workers N` simulation: threads inside the server that dequeue, pretend to work
(`--work-seconds`, failing at `--fail-rate`) and complete tasks straight through the store, so
that a demo or a load test shows consumers at work concurrently with HTTP clients. Real
consumers are separate processes: the worker runner (`tornado_queue.worker`) or any HTTP
client."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence

from tornado_queue.errors import PushQueue, QueueError, StoreFailure
from tornado_queue.models import Task
from tornado_queue.storage import Store

log = logging.getLogger("tornado_queue.workers")

IDLE_WAIT_SECONDS = 1.0
"""Longest an idle worker sleeps before looking again; a wake-up normally comes far sooner."""


class WorkSignal:
    """Wakes idle workers when tasks become ready, without a lost wake-up.

    A worker reads `generation` before it looks at the queue and sleeps only if no task became
    ready since then, so an enqueue between "queue is empty" and "sleep" is never missed.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._condition:
            return self._generation

    def notify(self, count: int) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify(count)

    def wake_all(self) -> None:
        with self._condition:
            self._generation += 1
            self._condition.notify_all()

    def wait(self, seen_generation: int, timeout: float) -> None:
        with self._condition:
            if self._generation == seen_generation:
                self._condition.wait(timeout)


class SimulatedWorker:
    """One simulated consumer. `run_once` does a single dequeue-work-finish step."""

    def __init__(
        self,
        store: Store,
        work_seconds: float,
        stopping: threading.Event,
        fail_rate: float = 0.0,
        rng: random.Random | None = None,
        *,
        queues: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.queues = tuple(queues)
        self._turn = 0
        self.work_seconds = work_seconds
        self.fail_rate = fail_rate
        self.stopping = stopping
        self.rng = rng or random.Random()
        self.done = 0
        self.failed = 0
        self.released = 0

    def run_once(self) -> Task | None:
        """Take one task, work on it, and complete or fail it; None when the queue is empty.

        Work longer than a third of the lease heartbeats to keep it. If the pool is stopping
        while the work runs, the task goes back to its place in the queue as pending instead,
        so a shutdown never loses it. Every command carries the lease id: a worker whose lease
        was lost is refused and lets the task go.
        """
        task = self._dequeue()
        if task is None:
            return None
        assert task.lease_id is not None
        try:
            if self._work(task.id, task.lease_id):
                self._finish(task.id, task.lease_id)
            else:
                self.store.release(task.id, lease_id=task.lease_id)
                self.released += 1
        except QueueError as exc:  # e.g. the lease was lost, or an HTTP client finished it
            log.warning("worker gave up task %s: %s", task.id, exc)
        return task

    def _dequeue(self) -> Task | None:
        """The next task from this worker's queues (all queues when none were named), taking
        the queues in turn so that a busy one cannot starve the others."""
        queues = self.queues or tuple(self.store.queues())
        for offset in range(len(queues)):
            try:
                task = self.store.dequeue(queue=queues[(self._turn + offset) % len(queues)])
            except PushQueue:  # the servers push its tasks: not for a worker
                continue
            if task is not None:
                self._turn += offset + 1
                return task
        return None

    def _work(self, task_id: str, lease_id: str) -> bool:
        """Simulate the work; return False if the pool began stopping first."""
        remaining = self._work_time()
        beat = self.store.policy.lease_seconds / 3
        while remaining > beat:
            if self.stopping.wait(beat):
                return False
            remaining -= beat
            self.store.heartbeat(task_id, lease_id=lease_id)
        return not self.stopping.wait(remaining)

    def _work_time(self) -> float:
        return self.work_seconds * self.rng.uniform(0.5, 1.5)

    def _finish(self, task_id: str, lease_id: str) -> None:
        if self.fail_rate and self.rng.random() < self.fail_rate:
            self.store.fail(task_id, "simulated failure", retry=True, lease_id=lease_id)
            self.failed += 1
        else:
            self.store.complete(task_id, lease_id=lease_id)
            self.done += 1


class SimulatedWorkers:
    """N worker threads plus a reporter that logs progress every `report_seconds`."""

    def __init__(
        self,
        store: Store,
        count: int,
        work_seconds: float,
        fail_rate: float = 0.0,
        report_seconds: float = 5.0,
        *,
        queues: Sequence[str] = (),
    ) -> None:
        if report_seconds <= 0:
            raise ValueError(f"report_seconds must be positive, got {report_seconds}")
        self.store = store
        self.report_seconds = report_seconds
        self._stopping = threading.Event()
        self._signal = WorkSignal()
        self.workers = [
            SimulatedWorker(store, work_seconds, self._stopping, fail_rate, queues=queues)
            for _ in range(count)
        ]
        self._threads: list[threading.Thread] = []

    @property
    def done(self) -> int:
        return sum(worker.done for worker in self.workers)

    @property
    def failed(self) -> int:
        return sum(worker.failed for worker in self.workers)

    def start(self) -> None:
        if not self.workers:
            return
        self.store.add_ready_listener(lambda _queue, count: self._signal.notify(count))
        for number, worker in enumerate(self.workers, 1):
            thread = threading.Thread(
                target=self._loop, args=(worker,), name=f"tq-worker-{number}", daemon=True
            )
            self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._report, name="tq-report", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop every thread; held tasks are released. True if all stopped within `timeout`."""
        self._stopping.set()
        self._signal.wake_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [thread.name for thread in self._threads if thread.is_alive()]
        if alive:
            log.error("worker threads still running after %.1fs: %s", timeout, ", ".join(alive))
        return not alive

    def _loop(self, worker: SimulatedWorker) -> None:
        while True:
            # Read the generation before checking the flag: stop() sets the flag, then wakes, so
            # a worker never sleeps through a stop that happened after it looked.
            generation = self._signal.generation
            if self._stopping.is_set():
                return
            try:
                task = worker.run_once()
            except StoreFailure as failure:
                # The store is down: said once in the outage log; pause and try again. A task
                # held at that moment is not lost: its lease expires.
                self.store.outage.failed(failure)
                self._stopping.wait(IDLE_WAIT_SECONDS)
                continue
            except Exception:
                # A bug or a broken store must not silently shrink the pool: log it, pause, go
                # on. A task held at that moment is not lost: its lease expires.
                log.exception("worker %s failed; carrying on", threading.current_thread().name)
                self._stopping.wait(IDLE_WAIT_SECONDS)
                continue
            self.store.outage.answered()
            if task is None:
                self._signal.wait(generation, IDLE_WAIT_SECONDS)

    def _report(self) -> None:
        last_done, last_failed, last_time = 0, 0, time.monotonic()
        while not self._stopping.wait(self.report_seconds):
            done, failed, now = self.done, self.failed, time.monotonic()
            if (done, failed) == (last_done, last_failed):
                continue  # nothing happened: stay quiet rather than log zeros forever
            rate = (done - last_done) / (now - last_time)
            log.info("workers: %d tasks done, %d attempts failed, %.1f tasks/s", done, failed, rate)
            last_done, last_failed, last_time = done, failed, now
