"""MemoryStore against a reference model, driven by Hypothesis with random steps.

The model below is written from the rules in docs/reliability.md, not from the store's code: a dict
of tasks, each with a state, its attempts, a place in the queue, a lease and a few deadlines. It
is slow and obvious on purpose. After every step the store must agree with it on the counts, the
pending order and every task; a command must succeed or fail exactly when the model says.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import hypothesis.strategies as st
from hypothesis import event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from tests.conftest import FakeClock
from tornado_queue.errors import InvalidTransition, LeaseLost, QueueError, TaskNotFound
from tornado_queue.models import DEFAULT_QUEUE, NewTask, Task, TaskStatus
from tornado_queue.storage import MemoryStore, Policy

PENDING = TaskStatus.PENDING
SCHEDULED = TaskStatus.SCHEDULED
PROCESSING = TaskStatus.PROCESSING
COMPLETED = TaskStatus.COMPLETED
FAILED = TaskStatus.FAILED
BACKOFF_CAP = 3600.0
UNKNOWN_IDS = [str(uuid.UUID(int=number)) for number in range(3)]


# --- the reference model ---------------------------------------------------------------------


@dataclass
class ModelTask:
    max_attempts: int
    created_at: float
    status: TaskStatus = PENDING
    attempts: int = 0
    place: int = 0  # the pending order: given when the task joins the tail, kept otherwise
    available_at: float = 0.0
    lease_id: str | None = None
    lease_deadline: float | None = None
    due: float | None = None
    finished_at: float | None = None
    forget_at: float | None = None
    error: str | None = None
    result: bytes | None = None
    old_leases: list[str] = field(default_factory=list)
    closed_lease: str | None = None  # the lease a fenced complete or fail last ended


class Repeat(QueueError):
    """Not raised: the model's word for a complete or fail repeating the one that closed its
    lease, which must succeed and change nothing."""


class Model:
    def __init__(self, policy: Policy) -> None:
        self.lease = policy.lease_seconds
        self.max_attempts = policy.max_attempts
        self.retry_backoff = policy.retry_backoff
        self.retention = policy.retention_seconds
        self.tasks: dict[str, ModelTask] = {}
        self.next_place = 0
        self.paused = False  # a paused queue delivers nothing; everything else goes on

    # time

    def catch_up(self, now: float) -> None:
        """Apply what is due at `now`: expired leases, then due retries, then retention."""
        for task in self.tasks.values():
            if task.status is PROCESSING and task.lease_deadline <= now:
                self._drop_lease(task)
                if task.attempts >= task.max_attempts:
                    task.error = "lease expired"
                    self._finish(task, FAILED, now)
                else:
                    task.status = PENDING  # back at its old place: `place` is unchanged
        due = sorted(
            (task.due, task_id)
            for task_id, task in self.tasks.items()
            if task.status is SCHEDULED and task.due <= now
        )
        for _, task_id in due:  # equal due times: any order would do; take the id order
            self.tasks[task_id].due = None
            self._join_tail(self.tasks[task_id])
        for task_id in [
            task_id
            for task_id, task in self.tasks.items()
            if task.status in (COMPLETED, FAILED) and task.forget_at <= now
        ]:
            del self.tasks[task_id]

    # queries

    def pending(self) -> list[str]:
        waiting = [(task.place, task_id) for task_id, task in self.tasks.items()]
        return [
            task_id for place, task_id in sorted(waiting) if self.tasks[task_id].status is PENDING
        ]

    def counts(self) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        for task in self.tasks.values():
            counts[task.status] += 1
        return counts

    def processing(self) -> list[str]:
        return [task_id for task_id, task in self.tasks.items() if task.status is PROCESSING]

    def refusal(
        self, task_id: str, lease_id: str | None, action: str = ""
    ) -> type[QueueError] | None:
        """The error a command on a leased task must raise, None if it must succeed, or
        `Repeat` if it repeats the complete or fail that closed that lease."""
        task = self.tasks.get(task_id)
        if task is None:
            return TaskNotFound
        if lease_id is not None and lease_id == task.closed_lease:
            completed = task.status is COMPLETED
            if (action == "complete" and completed) or (action == "fail" and not completed):
                return Repeat
        if lease_id is not None and lease_id != task.lease_id:
            return LeaseLost
        if task.status is not PROCESSING:
            return InvalidTransition
        return None

    # commands (called once the store accepted them)

    def enqueue(self, task_id: str, max_attempts: int | None, now: float) -> None:
        task = ModelTask(max_attempts=max_attempts or self.max_attempts, created_at=now)
        task.available_at = now
        self.tasks[task_id] = task
        self._join_tail(task)

    def dequeue(self, task_id: str, lease_id: str, lease: float | None, now: float) -> None:
        task = self.tasks[task_id]
        task.status = PROCESSING
        task.attempts += 1
        task.lease_id = lease_id
        task.lease_deadline = now + (lease or self.lease)

    def heartbeat(self, task_id: str, lease: float | None, now: float) -> None:
        self.tasks[task_id].lease_deadline = now + (lease or self.lease)

    def complete(
        self, task_id: str, result: bytes | None, now: float, lease_id: str | None
    ) -> None:
        task = self.tasks[task_id]
        task.closed_lease = lease_id
        self._drop_lease(task)
        task.result = result
        self._finish(task, COMPLETED, now)

    def fail(
        self, task_id: str, error: str | None, retry: bool, now: float, lease_id: str | None
    ) -> None:
        task = self.tasks[task_id]
        task.closed_lease = lease_id
        self._drop_lease(task)
        task.error = error
        if not retry or task.attempts >= task.max_attempts:
            self._finish(task, FAILED, now)
            return
        wait = min(self.retry_backoff * 2 ** (task.attempts - 1), BACKOFF_CAP)
        task.available_at = now + wait
        if wait > 0:
            task.status = SCHEDULED
            task.due = now + wait
        else:
            self._join_tail(task)

    def release(self, task_id: str) -> None:
        task = self.tasks[task_id]
        self._drop_lease(task)
        task.status = PENDING

    def retry(self, task_id: str, now: float) -> None:
        task = self.tasks[task_id]
        task.attempts = 0
        task.error = task.result = task.finished_at = task.forget_at = None
        task.available_at = now
        self._join_tail(task)

    def delete(self, task_id: str) -> None:
        del self.tasks[task_id]

    # helpers

    def _join_tail(self, task: ModelTask) -> None:
        task.status = PENDING
        task.place = self.next_place
        self.next_place += 1

    def _drop_lease(self, task: ModelTask) -> None:
        if task.lease_id is not None:
            task.old_leases.append(task.lease_id)
        task.lease_id = task.lease_deadline = None

    def _finish(self, task: ModelTask, status: TaskStatus, now: float) -> None:
        task.status = status
        task.finished_at = now
        task.forget_at = now + self.retention


# --- the state machine -----------------------------------------------------------------------

# What a command acts on, weighted towards the tasks it can change: (kind, which one).
targets = st.tuples(
    st.sampled_from(["processing"] * 4 + ["failed", "live", "live", "gone", "unknown"]),
    st.integers(0, 10_000),
)
lease_modes = st.sampled_from(["current"] * 3 + ["missing"] * 2 + ["stale", "other", "bogus"])
lease_lengths = st.one_of(st.none(), st.integers(1, 60), st.floats(1, 60))


class MemoryStoreMachine(RuleBasedStateMachine):
    @initialize(
        lease=st.sampled_from([5.0, 30.0]),
        max_attempts=st.sampled_from([1, 2, 4]),
        retry_backoff=st.sampled_from([0.0, 0.5, 1.0, 7.0, 3000.0]),
        retention=st.sampled_from([0.0, 1.0, 30.0, 200.0]),
        initial_tasks=st.integers(0, 6),
    )
    def start(
        self,
        lease: float,
        max_attempts: int,
        retry_backoff: float,
        retention: float,
        initial_tasks: int,
    ) -> None:
        policy = Policy(
            lease_seconds=lease,
            max_attempts=max_attempts,
            retry_backoff=retry_backoff,
            retention_seconds=retention,
        )
        self.clock = FakeClock()
        self.store = MemoryStore(policy, self.clock)
        self.model = Model(policy)
        self.ids: list[str] = []  # every id ever enqueued, forgotten and deleted ones included
        self.lease_ids_seen: set[str] = set()
        for _ in range(initial_tasks):
            self.enqueue(max_attempts=None)

    # -- choosing what to act on ----------------------------------------------------------------

    def _catch_up(self) -> float:
        """The model side of the reaping every store call starts with."""
        now = self.clock.now
        self.model.catch_up(now)
        return now

    def _target(self, which: tuple[str, int]) -> str:
        """A task id of the kind asked for, or the nearest kind there is."""
        kind, number = which
        tasks = self.model.tasks
        candidates = {
            "processing": self.model.processing(),
            "failed": [task_id for task_id, task in tasks.items() if task.status is FAILED],
            "live": list(tasks),
            "gone": [task_id for task_id in self.ids if task_id not in tasks],
            "unknown": UNKNOWN_IDS,
        }
        for choice in (kind, "live", "gone", "unknown"):
            if candidates[choice]:
                return candidates[choice][number % len(candidates[choice])]
        raise AssertionError("unreachable: UNKNOWN_IDS is never empty")

    def _lease_id(self, task_id: str, mode: str, number: int) -> str | None:
        task = self.model.tasks.get(task_id)
        if mode == "current" and task is not None and task.lease_id is not None:
            return task.lease_id
        if mode == "stale" and task is not None and task.old_leases:
            return task.old_leases[number % len(task.old_leases)]
        others = [other for other in self.model.processing() if other != task_id]
        if mode == "other" and others:
            return self.model.tasks[others[number % len(others)]].lease_id
        if mode == "bogus":
            return "bogus-lease"
        return None

    def _expect(self, name: str, refusal: type[QueueError] | None, call):
        """Run a store call that the model says must succeed (refusal None) or raise."""
        event(f"{name}: {refusal.__name__ if refusal else 'applied'}")
        if refusal is None or refusal is Repeat:
            return call()
        try:
            call()
        except QueueError as exc:
            assert type(exc) is refusal, f"expected {refusal.__name__}, got {exc!r}"
        else:
            raise AssertionError(f"expected {refusal.__name__}, the call succeeded")
        return None

    # -- rules ----------------------------------------------------------------------------------

    @rule(max_attempts=st.one_of(st.none(), st.integers(1, 4)))
    def enqueue(self, max_attempts: int | None) -> None:
        now = self._catch_up()
        task = self.store.enqueue(NewTask(payload=b'{"n":1}', max_attempts=max_attempts))
        self.model.enqueue(task.id, max_attempts, now)
        self.ids.append(task.id)
        self._matches(task)
        self._check()

    @rule(paused=st.booleans())
    def pause_or_resume(self, paused: bool) -> None:
        self._catch_up()
        settings = self.store.configure(DEFAULT_QUEUE, {"paused": paused or None})
        self.model.paused = paused
        assert settings.paused is (True if paused else None)
        self._check()

    @rule(lease=lease_lengths)
    def dequeue(self, lease: float | None) -> None:
        now = self._catch_up()
        pending = self.model.pending()
        task = self.store.dequeue(lease)
        if not pending or self.model.paused:
            assert task is None
        else:
            assert task is not None
            assert task.id == pending[0], "dequeue did not take the oldest pending task"
            assert task.lease_id not in self.lease_ids_seen, "a lease id was handed out twice"
            self.lease_ids_seen.add(task.lease_id)
            self.model.dequeue(task.id, task.lease_id, lease, now)
            self._matches(task)
        self._check()

    @rule(which=targets, mode=lease_modes, pick=st.integers(0, 100), lease=lease_lengths)
    def heartbeat(self, which: tuple[str, int], mode: str, pick: int, lease: float | None) -> None:
        now = self._catch_up()
        task_id = self._target(which)
        lease_id = self._lease_id(task_id, mode, pick)
        refusal = self.model.refusal(task_id, lease_id)
        task = self._expect(
            "heartbeat", refusal, lambda: self.store.heartbeat(task_id, lease, lease_id)
        )
        if refusal is None:
            self.model.heartbeat(task_id, lease, now)
            self._matches(task)
        self._check()

    @rule(
        which=targets,
        mode=lease_modes,
        pick=st.integers(0, 100),
        result=st.one_of(st.none(), st.integers(0, 9).map(lambda n: b'{"r":%d}' % n)),
    )
    def complete(self, which: tuple[str, int], mode: str, pick: int, result: bytes | None) -> None:
        now = self._catch_up()
        task_id = self._target(which)
        lease_id = self._lease_id(task_id, mode, pick)
        refusal = self.model.refusal(task_id, lease_id, "complete")
        task = self._expect(
            "complete", refusal, lambda: self.store.complete(task_id, result, lease_id)
        )
        if refusal is None:
            self.model.complete(task_id, result, now, lease_id)
        if refusal is None or refusal is Repeat:
            self._matches(task)
        self._check()

    @rule(
        which=targets,
        mode=lease_modes,
        pick=st.integers(0, 100),
        error=st.sampled_from([None, "boom", "timeout"]),
        retry=st.booleans(),
    )
    def fail(
        self, which: tuple[str, int], mode: str, pick: int, error: str | None, retry: bool
    ) -> None:
        now = self._catch_up()
        task_id = self._target(which)
        lease_id = self._lease_id(task_id, mode, pick)
        refusal = self.model.refusal(task_id, lease_id, "fail")
        task = self._expect(
            "fail", refusal, lambda: self.store.fail(task_id, error, retry, lease_id)
        )
        if refusal is None:
            self.model.fail(task_id, error, retry, now, lease_id)
        if refusal is None or refusal is Repeat:
            self._matches(task)
        self._check()

    @rule(which=targets, mode=lease_modes, pick=st.integers(0, 100))
    def release(self, which: tuple[str, int], mode: str, pick: int) -> None:
        self._catch_up()
        task_id = self._target(which)
        lease_id = self._lease_id(task_id, mode, pick)
        refusal = self.model.refusal(task_id, lease_id)
        task = self._expect("release", refusal, lambda: self.store.release(task_id, lease_id))
        if refusal is None:
            self.model.release(task_id)
            self._matches(task)
        self._check()

    @rule(which=targets)
    def retry(self, which: tuple[str, int]) -> None:
        now = self._catch_up()
        task_id = self._target(which)
        known = self.model.tasks.get(task_id)
        if known is None:
            refusal = TaskNotFound
        elif known.status is not FAILED:
            refusal = InvalidTransition
        else:
            refusal = None
        task = self._expect("retry", refusal, lambda: self.store.retry(task_id))
        if refusal is None:
            self.model.retry(task_id, now)
            self._matches(task)
        self._check()

    @rule(which=targets)
    def delete(self, which: tuple[str, int]) -> None:
        self._catch_up()
        task_id = self._target(which)
        known = self.model.tasks.get(task_id)
        if known is None:
            refusal = TaskNotFound
        elif known.status is PROCESSING:
            refusal = InvalidTransition
        else:
            refusal = None
        self._expect("delete", refusal, lambda: self.store.delete(task_id))
        if refusal is None:
            self.model.delete(task_id)
        self._check()

    @rule(which=targets)
    def get(self, which: tuple[str, int]) -> None:
        self._catch_up()
        task_id = self._target(which)
        task = self.store.get(task_id)
        if task_id in self.model.tasks:
            self._matches(task)
        else:
            assert task is None, f"{task_id} should be gone (never known, deleted or forgotten)"

    @rule(limit=st.integers(0, 10), offset=st.integers(0, 10))
    def view(self, limit: int, offset: int) -> None:
        self._catch_up()
        page, total = self.store.view(limit, offset)
        pending = self.model.pending()
        assert [task.id for task in page] == pending[offset : offset + limit]
        assert total == len(pending)
        for task in page:
            self._matches(task)

    @rule(
        seconds=st.one_of(st.integers(0, 5), st.integers(0, 100), st.floats(0, 100)),
        check=st.booleans(),
    )
    def advance_the_clock(self, seconds: float, check: bool) -> None:
        # Without a check, the next command is the first call to see what fell due meanwhile.
        self.clock.advance(seconds)
        if check:
            self._check()

    @rule()
    def reap(self) -> None:
        self._catch_up()
        self.store.reap()
        self._check()

    # -- comparing store and model --------------------------------------------------------------

    def _matches(self, task: Task) -> None:
        expected = self.model.tasks[task.id]
        assert task is not None
        assert task.status is expected.status, (task.status, expected.status)
        assert task.attempts == expected.attempts
        assert task.max_attempts == expected.max_attempts
        assert task.created_at == expected.created_at
        assert task.available_at == expected.available_at
        assert task.lease_id == expected.lease_id
        assert task.lease_expires_at == expected.lease_deadline
        assert task.finished_at == expected.finished_at
        if task.status in (SCHEDULED, FAILED):
            assert task.error == expected.error
        if task.status is COMPLETED:
            assert task.result == expected.result

    def _check(self) -> None:
        """Counts, pending order, every task and the one-lease-per-task rule."""
        self._catch_up()
        assert self.store.stats() == self.model.counts()
        page, total = self.store.view(limit=10_000)
        assert [task.id for task in page] == self.model.pending(), "pending order differs"
        assert total == len(page)
        leases = []
        for task_id in self.ids:
            task = self.store.get(task_id)
            if task_id not in self.model.tasks:
                assert task is None, f"{task_id} should be gone (deleted or forgotten)"
                continue
            self._matches(task)
            if task.status is PROCESSING:
                leases.append(task.lease_id)
        assert None not in leases
        assert len(set(leases)) == len(leases), "two processing tasks share a lease"
        for task_id in UNKNOWN_IDS:
            assert self.store.get(task_id) is None


MemoryStoreMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=50, deadline=None
)
test_the_memory_store_behaves_like_the_reference_model = MemoryStoreMachine.TestCase
