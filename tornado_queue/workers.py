"""Background worker threads that dequeue, simulate work and complete tasks through the store."""

from __future__ import annotations

import logging
import random
import threading
import time

from .errors import QueueError
from .models import Task
from .storage import Store

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


class Worker:
    """One simulated consumer. `run_once` does a single dequeue-work-complete step."""

    def __init__(
        self,
        store: Store,
        work_seconds: float,
        stopping: threading.Event,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.work_seconds = work_seconds
        self.stopping = stopping
        self.rng = rng or random.Random()
        self.done = 0
        self.released = 0

    def run_once(self) -> Task | None:
        """Take one task, work on it, and complete it; return it, or None when the queue is empty.

        If the pool is stopping while the work runs, the task goes back to the head of the queue
        as pending instead, so a shutdown never loses it.
        """
        task = self.store.dequeue()
        if task is None:
            return None
        interrupted = self.stopping.wait(self._work_time())
        try:
            if interrupted:
                self.store.release(task.id)
                self.released += 1
            else:
                self.store.complete(task.id)
                self.done += 1
        except QueueError as exc:  # e.g. an HTTP client completed it first
            log.warning("worker gave up task %s: %s", task.id, exc)
        return task

    def _work_time(self) -> float:
        return self.work_seconds * self.rng.uniform(0.5, 1.5)


class WorkerPool:
    """N worker threads plus a reporter that logs progress every `report_seconds`."""

    def __init__(
        self,
        store: Store,
        count: int,
        work_seconds: float,
        report_seconds: float = 5.0,
    ) -> None:
        if report_seconds <= 0:
            raise ValueError(f"report_seconds must be positive, got {report_seconds}")
        self.store = store
        self.report_seconds = report_seconds
        self._stopping = threading.Event()
        self._signal = WorkSignal()
        self.workers = [Worker(store, work_seconds, self._stopping) for _ in range(count)]
        self._threads: list[threading.Thread] = []

    @property
    def done(self) -> int:
        return sum(worker.done for worker in self.workers)

    def start(self) -> None:
        if not self.workers:
            return
        self.store.add_ready_listener(self._signal.notify)
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

    def _loop(self, worker: Worker) -> None:
        while True:
            # Read the generation before checking the flag: stop() sets the flag, then wakes, so
            # a worker never sleeps through a stop that happened after it looked.
            generation = self._signal.generation
            if self._stopping.is_set():
                return
            if worker.run_once() is None:
                self._signal.wait(generation, IDLE_WAIT_SECONDS)

    def _report(self) -> None:
        last_done, last_time = 0, time.monotonic()
        while not self._stopping.wait(self.report_seconds):
            done, now = self.done, time.monotonic()
            rate = (done - last_done) / (now - last_time)
            log.info("workers: %d tasks done, %.1f tasks/s", done, rate)
            last_done, last_time = done, now
