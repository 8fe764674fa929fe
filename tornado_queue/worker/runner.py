"""The worker runner: `python -m tornado_queue worker MODULE:FUNCTION` runs a Python function
on every task of a queue, in `--concurrency` threads.

Each thread (slot) has its own `Client`, which names the slot to the server as
`HOST/PID/SLOT` (`X-Worker-Id`: tasks' histories and `GET /workers` show it), and long-polls
for a task, runs the function with the payload (see `execution`), and completes the task with
the return value or fails it with the exception. One more thread heartbeats every running task
at a third of its lease, in the name of its slot, so a long task keeps its lease. The first
SIGTERM or SIGINT stops taking tasks, ends the long-polls at once and lets running tasks
finish (up to `--grace` seconds; past that, or on a second signal, the process exits and their
leases lapse, so they are handed out again). Nothing is lost either way: a task leaves the
queue for good only when it is completed or failed.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tornado_queue import logs
from tornado_queue.arguments import bounded, queue_name
from tornado_queue.client import Client, ConnectionFailed, LeaseLost, Task, TaskQueueError
from tornado_queue.client.arguments import add_server_arguments
from tornado_queue.client.endpoint import DEFAULT_URL
from tornado_queue.config import OneLineParser
from tornado_queue.limits import MAX_LEASE_SECONDS, MAX_WAIT_SECONDS, MIN_LEASE_SECONDS
from tornado_queue.worker import execution
from tornado_queue.worker.execution import Outcome, TaskFunction, current_task

__all__ = ["Runner", "WorkerConfig", "current_task", "main"]

log = logging.getLogger("tornado_queue.runner")

MAX_POLL_BACKOFF = 5.0
"""Longest pause between attempts to reach a server that does not answer."""
INTERRUPT_EVERY = 0.1
"""While stopping, how often long-polls still under way are interrupted again (one may have
started just as the stop began)."""


@dataclass(frozen=True)
class WorkerConfig:
    url: str = DEFAULT_URL
    token: str | None = None
    queue: str = "default"
    concurrency: int = 1
    lease: float = 30.0
    wait: float = 20.0
    report_seconds: float = 5.0
    grace: float = 30.0


class Counters:
    """Tasks done and attempts failed, across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.done = 0
        self.failed = 0

    def add(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.failed += 1


def worker_id(slot: int) -> str:
    """The name a slot gives itself to the server (`X-Worker-Id`): stable for the life of the
    process, and telling where it runs."""
    return f"{socket.gethostname()}/{os.getpid()}/{slot}"


class Heartbeats:
    """Extends the lease of every running task every `lease / 3` seconds, from one thread,
    each in the name of the slot running it."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.lease = config.lease
        self._lock = threading.Lock()
        self._running: dict[str, tuple[Task, Client]] = {}
        self._clients: dict[str, Client] = {}

    def track(self, task: Task, worker: str) -> None:
        with self._lock:
            client = self._clients.get(worker)
            if client is None:
                client = self._clients[worker] = Client(
                    self.config.url, self.config.token, worker_id=worker
                )
            self._running[task.id] = (task, client)

    def untrack(self, task: Task) -> None:
        with self._lock:
            self._running.pop(task.id, None)

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def run(self, finished: threading.Event) -> None:
        while not finished.wait(self.lease / 3):
            with self._lock:
                running = list(self._running.values())
            for task, client in running:
                self._beat(task, client)

    def close(self) -> None:
        with self._lock:
            clients = list(self._clients.values())
        for client in clients:
            client.close()

    def _beat(self, task: Task, client: Client) -> None:
        try:
            client.heartbeat(task, lease=self.lease)
        except LeaseLost as exc:
            self.untrack(task)
            log.warning("task %s: lease lost while running (%s)", task.id, exc.detail)
        except TaskQueueError as exc:  # the next beat may get through before the lease ends
            log.warning("task %s: heartbeat failed: %s", task.id, exc)


class Slot:
    """One worker thread: take a task, run it, report it, until the runner stops."""

    def __init__(
        self,
        config: WorkerConfig,
        function: TaskFunction,
        heartbeats: Heartbeats,
        counters: Counters,
        stopping: threading.Event,
        *,
        slot: int = 0,
    ) -> None:
        self.config = config
        self.function = function
        self.worker_id = worker_id(slot)
        self.client = Client(config.url, config.token, worker_id=self.worker_id)
        self.heartbeats = heartbeats
        self.counters = counters
        self.stopping = stopping
        self.polling = False
        self._unreachable = 0

    def run(self) -> None:
        with asyncio.Runner() as loop, self.client:  # the loop is made only if a task awaits
            while not self.stopping.is_set():
                task = self.take()
                if task is not None:
                    self.handle(task, loop)

    def take(self) -> Task | None:
        """The next task, long-polling up to `wait` seconds; None if none came."""
        self.polling = True
        try:
            if self.stopping.is_set():
                return None
            task = self.client.dequeue(
                queue=self.config.queue, wait=self.config.wait, lease=self.config.lease
            )
        except TaskQueueError as exc:
            if not self.stopping.is_set():
                self._back_off(exc)
            return None
        finally:
            self.polling = False
        if self._unreachable:
            log.info("server %s answers again", self.config.url)
            self._unreachable = 0
        return task

    def _back_off(self, exc: TaskQueueError) -> None:
        self._unreachable += 1
        pause = min(MAX_POLL_BACKOFF, 0.25 * 2 ** (self._unreachable - 1))
        if self._unreachable == 1 or not isinstance(exc, ConnectionFailed):
            log.warning("cannot take a task: %s; trying again (every %.0fs at most)", exc, pause)
        self.stopping.wait(pause)

    def handle(self, task: Task, loop: asyncio.Runner) -> Outcome:
        """Run the function on `task`, heartbeating meanwhile, and report the outcome."""
        self.heartbeats.track(task, self.worker_id)
        try:
            report = functools.partial(self.client.progress, task)
            outcome = execution.run(self.function, task, loop, report)
        finally:
            self.heartbeats.untrack(task)
        self._report(task, outcome)
        return outcome

    def _report(self, task: Task, outcome: Outcome) -> None:
        done = outcome.ok
        try:
            if outcome.ok:
                done = self._complete(task, outcome)
            else:
                self.client.fail(task, outcome.error, retry=outcome.retry)
                first_line = outcome.error.partition("\n")[0]
                log.warning(
                    "task %s failed (attempt %d of %d): %s",
                    task.id,
                    task.attempts,
                    task.max_attempts,
                    first_line,
                )
        except LeaseLost as exc:
            log.warning("task %s: its lease was lost, outcome dropped (%s)", task.id, exc.detail)
            return
        except TaskQueueError as exc:
            log.error("task %s: outcome not reported (%s); it will run again", task.id, exc)
            return
        self.counters.add(done)

    def _complete(self, task: Task, outcome: Outcome) -> bool:
        """Complete `task` with its result; False if the server refused the result."""
        try:
            self.client.complete(task, outcome.result)
            return True
        except TaskQueueError as exc:
            if exc.status is None or not 400 <= exc.status < 500 or exc.status == 409:
                raise
            # The server refused the result itself (too large, too deep): running the task
            # again would give the same result, so the attempt fails for good, with the reason.
            log.error("task %s: the server refused its result (%s)", task.id, exc.detail)
            self.client.fail(task, f"result refused by the server: {exc.detail}", retry=False)
            return False


class Runner:
    """`concurrency` slots, the heartbeat thread, and the progress line."""

    def __init__(self, config: WorkerConfig, function: TaskFunction) -> None:
        self.config = config
        self.stopping = threading.Event()
        self.counters = Counters()
        self.heartbeats = Heartbeats(config)
        self.slots = [
            Slot(config, function, self.heartbeats, self.counters, self.stopping, slot=slot)
            for slot in range(config.concurrency)
        ]
        self._finished = threading.Event()
        self._threads: list[threading.Thread] = []
        self._last = (0, 0, time.monotonic())

    def start(self) -> None:
        for number, slot in enumerate(self.slots, 1):
            self._threads.append(
                threading.Thread(target=slot.run, name=f"tq-worker-{number}", daemon=True)
            )
        for thread in self._threads:
            thread.start()
        threading.Thread(
            target=self.heartbeats.run, args=(self._finished,), name="tq-heartbeat", daemon=True
        ).start()

    def stop(self) -> None:
        """Take no more tasks; end the long-polls now. Running tasks go on (see `join`)."""
        self.stopping.set()
        self._interrupt_polls()

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for running tasks to finish; True if all did."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            while thread.is_alive() and time.monotonic() < deadline:
                self._interrupt_polls()
                thread.join(min(INTERRUPT_EVERY, max(0.0, deadline - time.monotonic())))
        clean = not any(thread.is_alive() for thread in self._threads)
        if clean:
            self._finished.set()
            self.heartbeats.close()
        return clean

    def _interrupt_polls(self) -> None:
        for slot in self.slots:
            if slot.polling:
                slot.client.interrupt()

    def progress(self) -> str | None:
        """The progress line, or None if nothing happened since the last one."""
        done, failed, now = self.counters.done, self.counters.failed, time.monotonic()
        running = self.heartbeats.running
        last_done, last_failed, last_time = self._last
        if (done, failed) == (last_done, last_failed) and not running:
            return None
        rate = (done + failed - last_done - last_failed) / max(now - last_time, 1e-9)
        self._last = (done, failed, now)
        return f"{done} done, {failed} failed, {rate:.1f} tasks/s, {running} running"


# --- the command ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="tornado-queue worker",
        description="Run FUNCTION (MODULE:FUNCTION, importable from the current directory) on "
        "every task of a queue: it receives the payload dict, its return value (JSON) becomes "
        "the result, an exception fails the attempt. Ctrl-C or SIGTERM: finish running tasks "
        "and exit; a second one exits at once.",
    )
    parser.add_argument("function", help="e.g. myapp.tasks:send_email")
    add_server_arguments(parser)
    option = parser.add_argument
    option("--queue", type=queue_name, default="default", help="the queue (default: default)")
    option(
        "--concurrency",
        type=bounded(int, 1, 256),
        default=1,
        help="tasks run at once, one thread each (default 1)",
    )
    option(
        "--lease",
        type=bounded(float, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
        default=30.0,
        help="lease per task in seconds, renewed every third of it (default 30)",
    )
    option(
        "--wait",
        type=bounded(float, 1, MAX_WAIT_SECONDS),  # at least 1: an idle worker must not spin
        default=20.0,
        help="long-poll seconds per dequeue, 1 to 30 (default 20)",
    )
    option(
        "--report-seconds",
        type=bounded(float, 0.1, 3600),
        default=5.0,
        help="seconds between progress lines (default 5)",
    )
    option(
        "--grace",
        type=bounded(float, 0, 86400),
        default=30.0,
        help="seconds running tasks get to finish after a stop (default 30)",
    )
    option("--log-level", choices=("debug", "info", "warning", "error"), default="info")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, "text")
    here = str(Path.cwd())
    if here not in sys.path:  # MODULE is found in the current directory, as with python -m
        sys.path.insert(0, here)
    try:
        function = execution.load_function(args.function)
    except ValueError as exc:
        print(f"worker: {exc}", file=sys.stderr)
        return 2
    config = WorkerConfig(
        url=args.url,
        token=args.token,
        queue=args.queue,
        concurrency=args.concurrency,
        lease=args.lease,
        wait=args.wait,
        report_seconds=args.report_seconds,
        grace=args.grace,
    )
    return run(config, function, args.function)


def run(config: WorkerConfig, function: TaskFunction, name: str) -> int:
    runner = Runner(config, function)
    _install_signal_handlers(runner)
    runner.start()
    log.info(
        "worker running %s on queue '%s' of %s: concurrency %d, lease %gs",
        name,
        config.queue,
        config.url,
        config.concurrency,
        config.lease,
    )
    while not runner.stopping.wait(config.report_seconds):
        line = runner.progress()
        if line:
            log.info("worker: %s", line)
    clean = runner.join(config.grace)
    counters = runner.counters
    if not clean:
        log.warning(
            "%d tasks still running after %gs: exiting; their leases will lapse and they will "
            "be handed out again",
            runner.heartbeats.running,
            config.grace,
        )
    log.info("worker stopped: %d done, %d failed", counters.done, counters.failed)
    return 0 if clean else 1


def _install_signal_handlers(runner: Runner) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if runner.stopping.is_set():
            log.warning("second %s: exiting now; running tasks' leases will lapse", name)
            os._exit(1)
        # No lock may be taken here: the main thread could hold it when the signal arrives.
        log.info("%s: taking no more tasks, finishing those running (again to quit now)", name)
        runner.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
