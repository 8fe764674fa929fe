"""MemoryStore under contention: many threads, one store, invariants checked afterwards."""

from __future__ import annotations

import random
import sys
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tornado_queue.errors import InvalidTransition, TaskNotFound
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.storage import MemoryStore

THREADS = 12
OPERATIONS_PER_THREAD = 3000
JOIN_SECONDS = 60
SWITCH_INTERVAL_SECONDS = 1e-6


@pytest.fixture(autouse=True)
def frequent_thread_switches():
    """Let the interpreter switch threads every microsecond instead of every 5 ms, so threads
    interleave inside store operations all the time and a missing lock fails reliably."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    yield
    sys.setswitchinterval(previous)


@dataclass
class Ledger:
    """What one thread saw succeed. Only successful store calls are recorded."""

    enqueued: list[str] = field(default_factory=list)
    delivered: Counter[str] = field(default_factory=Counter)
    released: Counter[str] = field(default_factory=Counter)
    completed: Counter[str] = field(default_factory=Counter)
    errors: list[BaseException] = field(default_factory=list)


class Known:
    """Every enqueued id, shared so that threads can poke at each other's tasks."""

    def __init__(self) -> None:
        self._ids: list[str] = []
        self._lock = threading.Lock()

    def add(self, task_id: str) -> None:
        with self._lock:
            self._ids.append(task_id)

    def pick(self, rng: random.Random) -> str | None:
        with self._lock:
            return rng.choice(self._ids) if self._ids else None


class StressClient:
    """One thread's mix of operations on the shared store, each recorded in its ledger."""

    def __init__(self, number: int, store: MemoryStore, known: Known) -> None:
        self.number = number
        self.store = store
        self.known = known
        self.ledger = Ledger()
        self.rng = random.Random(number)
        self.held: list[str] = []  # ids this thread dequeued and has not completed or released
        # (cumulative weight, operation): about 30% enqueue, 28% dequeue, 22% complete, ...
        self.operations = [
            (0.30, self.enqueue),
            (0.58, self.dequeue),
            (0.75, self.complete_own),
            (0.80, self.complete_anyones),
            (0.85, self.release_own),
            (0.92, self.get),
            (0.96, self.view),
            (1.00, self.stats),
        ]

    def run(self, barrier: threading.Barrier) -> None:
        try:
            barrier.wait(timeout=10)
            for _ in range(OPERATIONS_PER_THREAD):
                roll = self.rng.random()
                next(operation for weight, operation in self.operations if roll < weight)()
        except BaseException as exc:  # reported by the main thread
            self.ledger.errors.append(exc)

    def enqueue(self) -> None:
        task = self.store.enqueue(NewTask(payload=b'{"from":%d}' % self.number))
        assert task.status is TaskStatus.PENDING
        self.ledger.enqueued.append(task.id)
        self.known.add(task.id)

    def dequeue(self) -> None:
        task = self.store.dequeue()
        if task is not None:
            assert task.status is TaskStatus.PROCESSING
            self.ledger.delivered[task.id] += 1
            self.held.append(task.id)

    def complete_own(self) -> None:
        if self.held:
            self.complete(self.held.pop(self.rng.randrange(len(self.held))))

    def complete_anyones(self) -> None:
        # Races with the task's holder (and other thieves) on purpose.
        task_id = self.known.pick(self.rng)
        if task_id is not None:
            self.complete(task_id)

    def complete(self, task_id: str) -> None:
        try:
            task = self.store.complete(task_id)
        except InvalidTransition:
            return  # not processing (any more): someone else completed it, or it is pending
        assert task.status is TaskStatus.COMPLETED
        self.ledger.completed[task_id] += 1

    def release_own(self) -> None:
        if not self.held:
            return
        task_id = self.held.pop(self.rng.randrange(len(self.held)))
        try:
            task = self.store.release(task_id)
        except InvalidTransition:
            return  # completed by a thread that stole it
        assert task.status is TaskStatus.PENDING
        self.ledger.released[task_id] += 1

    def get(self) -> None:
        task_id = self.known.pick(self.rng)
        if task_id is not None:
            task = self.store.get(task_id)
            assert task is not None
            assert task.id == task_id
            assert task.status in TaskStatus

    def view(self) -> None:
        tasks, total = self.store.view(50, self.rng.randrange(5))
        assert len(tasks) <= 50
        assert all(task.status is TaskStatus.PENDING for task in tasks)
        assert len({task.id for task in tasks}) == len(tasks)
        assert total >= len(tasks)

    def stats(self) -> None:
        stats = self.store.stats()
        assert set(stats) == set(TaskStatus)
        assert all(count >= 0 for count in stats.values())


def run_together(count: int, target: Callable[[int, threading.Barrier], None]) -> None:
    """Start `count` threads that begin work at the same instant; fail if any is still running."""
    barrier = threading.Barrier(count)
    threads = [
        threading.Thread(target=target, args=(number, barrier), daemon=True)
        for number in range(count)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_SECONDS)
    assert not any(thread.is_alive() for thread in threads), "a stress thread never finished"


def test_mixed_concurrent_operations_keep_the_store_consistent():
    store = MemoryStore()
    known = Known()
    clients = [StressClient(number, store, known) for number in range(THREADS)]

    run_together(THREADS, lambda number, barrier: clients[number].run(barrier))

    ledgers = [client.ledger for client in clients]
    errors = [error for ledger in ledgers for error in ledger.errors]
    assert not errors, f"stress threads raised: {errors[:3]!r}"

    enqueued = [task_id for ledger in ledgers for task_id in ledger.enqueued]
    delivered = sum((ledger.delivered for ledger in ledgers), Counter())
    released = sum((ledger.released for ledger in ledgers), Counter())
    completed = sum((ledger.completed for ledger in ledgers), Counter())

    # The workload really exercised every path.
    assert len(enqueued) > 5000
    assert len(set(enqueued)) == len(enqueued)
    assert sum(delivered.values()) > 3000
    assert sum(released.values()) > 100
    assert sum(completed.values()) > 1000

    # Every completed id was completed exactly once.
    assert max(completed.values()) == 1
    assert set(completed) <= set(delivered)

    recount: Counter[TaskStatus] = Counter()
    for task_id in enqueued:
        task = store.get(task_id)
        assert task is not None, f"task {task_id} was lost"
        recount[task.status] += 1
        # No task went to a second consumer unless it had been released in between.
        assert delivered[task_id] <= released[task_id] + 1, task_id
        assert task.attempts == delivered[task_id], task_id
        if task.status is TaskStatus.PENDING:
            assert delivered[task_id] == released[task_id], task_id
            assert completed[task_id] == 0, task_id
        elif task.status is TaskStatus.PROCESSING:
            assert delivered[task_id] == released[task_id] + 1, task_id
            assert completed[task_id] == 0, task_id
        else:
            assert task.status is TaskStatus.COMPLETED, task_id
            assert delivered[task_id] == released[task_id] + 1, task_id
            assert completed[task_id] == 1, task_id
            assert task.finished_at is not None

    stats = store.stats()
    assert stats == {status: recount[status] for status in TaskStatus}
    assert sum(stats.values()) == len(enqueued)

    pending, total = store.view(10**9)
    assert len(pending) == total == stats[TaskStatus.PENDING]
    assert {task.id for task in pending} == {
        task_id for task_id in enqueued if store.get(task_id).status is TaskStatus.PENDING
    }


def test_concurrent_dequeuers_receive_each_pending_task_exactly_once():
    # Given N pending tasks
    store = MemoryStore()
    total = 4000
    ids = {store.enqueue(NewTask(payload=b"{}")).id for _ in range(total)}
    received: list[list[str]] = [[] for _ in range(THREADS)]

    # When THREADS threads drain the queue at the same time
    def drain(number: int, barrier: threading.Barrier) -> None:
        barrier.wait(timeout=10)
        while (task := store.dequeue()) is not None:
            received[number].append(task.id)

    run_together(THREADS, drain)

    # Then the N deliveries are N distinct ids, exactly the enqueued ones
    every = [task_id for ids_of_one in received for task_id in ids_of_one]
    assert len(every) == total
    assert set(every) == ids
    assert sum(1 for ids_of_one in received if ids_of_one) > 1, "only one thread got any work"
    assert store.stats()[TaskStatus.PROCESSING] == total
    assert store.stats()[TaskStatus.PENDING] == 0
    assert store.dequeue() is None


def test_concurrent_completes_of_one_task_let_exactly_one_caller_win():
    store = MemoryStore()
    rounds = 200
    contenders = 8
    outcomes: Counter[str] = Counter()
    outcomes_lock = threading.Lock()

    for _ in range(rounds):
        store.enqueue(NewTask(payload=b"{}"))
        task_id = store.dequeue().id

        def finish(number: int, barrier: threading.Barrier, task_id: str = task_id) -> None:
            barrier.wait(timeout=10)
            try:
                store.complete(task_id)
                outcome = "won"
            except InvalidTransition:
                outcome = "refused"
            except TaskNotFound:
                outcome = "lost"
            with outcomes_lock:
                outcomes[outcome] += 1

        run_together(contenders, finish)

    assert outcomes == {"won": rounds, "refused": rounds * (contenders - 1)}
    assert store.stats()[TaskStatus.COMPLETED] == rounds
