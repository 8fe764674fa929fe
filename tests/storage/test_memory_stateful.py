"""MemoryStore against a reference model, driven by Hypothesis with random steps.

The model below is written from the rules in docs/reliability.md and the store contract (the
docstrings of `tornado_queue.storage.base` and the store tests of ordered groups, delivery
settings, dead letters, expiry, purges and dependencies), not from the store's code: a dict
of tasks, each with a state, its attempts, a place in the queue, a lease, a few deadlines and
the tasks it waits for; the line of every ordered group; each queue's settings and its
delivery times. It is slow and obvious on purpose. After every step the store must agree with
it on the counts, the listing of every state (the pending order included), the settings and
every task; a command must succeed or fail exactly when the model says.

Two queues are in play: `default`, whose settings the steps change, and `dead`, which is the
dead-letter queue `default` may name.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field, replace

import hypothesis.strategies as st
from hypothesis import event, settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from tests.conftest import FakeClock
from tornado_queue.errors import (
    InvalidTransition,
    LeaseLost,
    QueueError,
    TaskNotFound,
    ValidationError,
    parent_deleted_error,
    parent_failed,
    parent_failed_error,
    parent_twice,
    parent_unknown,
)
from tornado_queue.models import (
    DEFAULT_QUEUE,
    LISTED,
    Event,
    NewTask,
    QueueSettings,
    RateLimit,
    Task,
    TaskStatus,
)
from tornado_queue.storage import MemoryStore, Policy
from tornado_queue.storage.base import EXPIRED_ERROR

PENDING = TaskStatus.PENDING
SCHEDULED = TaskStatus.SCHEDULED
PROCESSING = TaskStatus.PROCESSING
COMPLETED = TaskStatus.COMPLETED
FAILED = TaskStatus.FAILED
WAITING = TaskStatus.WAITING
BACKOFF_CAP = 3600.0
DEAD = "dead"
QUEUES = (DEFAULT_QUEUE, DEAD)
UNKNOWN_IDS = [str(uuid.UUID(int=number)) for number in range(3)]
# The ways an enqueue's `after` is refused: (words of the message, what the statistics say).
REFUSALS = [("twice", "named twice"), ("not exist", "unknown"), ("has failed", "failed")]


# --- the reference model ---------------------------------------------------------------------


@dataclass
class ModelTask:
    queue: str
    group: str | None
    priority: int
    max_attempts: int
    backoff: float  # the retry backoff base, fixed when the task was enqueued
    created_at: float
    expires_at: float | None
    status: TaskStatus = PENDING
    entered: int = 0  # when the task entered its state: the order of the non-pending listings
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
    dead_lettered_from: str | None = None
    old_leases: list[str] = field(default_factory=list)
    closed_lease: str | None = None  # the lease a fenced complete or fail last ended
    after: tuple[str, ...] = ()  # the parents it was enqueued to wait for
    dependents: list[str] = field(default_factory=list)  # enqueued to wait for it, in order
    open: set[str] = field(default_factory=set)  # its parents not completed yet
    hold: float = 0.0  # its delay, counted from when its last parent completes
    # When it failed with several of its parents, each may be the one its error names.
    errors: frozenset[str] | None = None


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
        self.next_entered = 0
        self.settings: dict[str, QueueSettings] = {}
        # An ordered group's line, by (queue, group): its head (whose turn it is, in any state
        # but finished) and then the tasks waiting behind it, in the order they became ready.
        self.lines: dict[tuple[str, str], list[str]] = {}
        # The times of the deliveries each queue made while it had a rate limit.
        self.deliveries: dict[str, list[float]] = {queue: [] for queue in QUEUES}
        self.events: Counter[Event] = Counter()  # what happened, in all queues together

    def settings_of(self, queue: str) -> QueueSettings:
        return self.settings.get(queue, QueueSettings())

    # time

    def catch_up(self, now: float) -> None:
        """Apply what is due at `now`: expired leases, then due tasks, expiries, retention.
        Equal deadlines: any order would do; take the id order."""
        for _, task_id in sorted(
            (task.lease_deadline, task_id)
            for task_id, task in self.tasks.items()
            if task.status is PROCESSING and task.lease_deadline <= now
        ):
            task = self.tasks[task_id]
            self.events[Event.LEASE_EXPIRED] += 1
            self._drop_lease(task)
            if self.expired(task, now):
                self._expire(task_id, now)
            elif task.attempts >= task.max_attempts:
                self._dead(task_id, "lease expired", now)
            else:
                self._set_status(task, PENDING)  # back at its old place: `place` is unchanged
        for _, task_id in sorted(
            (task.due, task_id)
            for task_id, task in self.tasks.items()
            if task.status is SCHEDULED and task.due <= now
        ):
            self.tasks[task_id].due = None
            self._join_tail(task_id)
        for _, task_id in sorted(
            (task.expires_at, task_id)
            for task_id, task in self.tasks.items()
            if task.status in (PENDING, SCHEDULED, WAITING) and self.expired(task, now)
        ):
            if self.tasks[task_id].status is not FAILED:  # else failed with an earlier parent
                self._expire(task_id, now)
        for task_id in [
            task_id
            for task_id, task in self.tasks.items()
            if task.status in (COMPLETED, FAILED) and task.forget_at <= now
        ]:
            del self.tasks[task_id]

    @staticmethod
    def expired(task: ModelTask, now: float) -> bool:
        return task.expires_at is not None and now >= task.expires_at

    # queries

    def deliverable(self, queue: str) -> list[str]:
        """The pending tasks a dequeue may take, in dequeue order: no task behind its group's
        head; higher priority first, then place in line."""
        ready = [
            (-task.priority, task.place, task_id)
            for task_id, task in self.tasks.items()
            if task.queue == queue and task.status is PENDING and self._has_turn(task_id)
        ]
        return [task_id for *_, task_id in sorted(ready)]

    def pending(self, queue: str) -> list[str]:
        """The deliverable tasks, then those waiting in their group by the order they joined."""
        waiting = [
            (task.place, task_id)
            for task_id, task in self.tasks.items()
            if task.queue == queue and task.status is PENDING and not self._has_turn(task_id)
        ]
        return self.deliverable(queue) + [task_id for _, task_id in sorted(waiting)]

    def listed(self, queue: str, status: TaskStatus) -> list[tuple[int, str]]:
        """The tasks of a state but pending, the most recent to enter it first, each with when
        it entered it: tasks that entered it together (failed with a parent) in any order."""
        entered = [
            (task.entered, task_id)
            for task_id, task in self.tasks.items()
            if task.queue == queue and task.status is status
        ]
        return sorted(entered, reverse=True)

    def counts(self, queue: str | None = None) -> dict[TaskStatus, int]:
        counts = dict.fromkeys(TaskStatus, 0)
        for task in self.tasks.values():
            if queue is None or task.queue == queue:
                counts[task.status] += 1
        return counts

    def processing(self, queue: str | None = None) -> list[str]:
        return [
            task_id
            for task_id, task in self.tasks.items()
            if task.status is PROCESSING and queue in (None, task.queue)
        ]

    def room(self, queue: str, now: float) -> dict[str, int]:
        """How many more tasks each of the queue's delivery settings lets out now."""
        rules = self.settings_of(queue)
        room = {}
        if rules.paused:
            room["paused"] = 0
        if rules.max_processing is not None:
            room["max_processing"] = rules.max_processing - len(self.processing(queue))
        if rules.rate_limit is not None:
            window_opens = now - rules.rate_limit.seconds
            recent = [at for at in self.deliveries[queue] if at > window_opens]
            room["rate_limit"] = rules.rate_limit.tasks - len(recent)
        return room

    def allowance(self, queue: str, wanted: int, now: float) -> int:
        """How many of `wanted` tasks a dequeue may take now: the least room of any setting."""
        return max(min([wanted, *self.room(queue, now).values()]), 0)

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

    def refusals(self, afters: list[tuple[str | int, ...] | None]) -> list[tuple[str, str]]:
        """Why a batch with these `after`s must be refused, nothing changed: the problems of its
        first item with any, each as the start and end of the error's message (a parent given
        as a batch index has an id the model does not know before the store made it); []
        when it is accepted. A parent must exist (an earlier item of the batch does), must not
        have failed, and must be named once."""
        single = len(afters) == 1
        for index, after in enumerate(afters):
            if after is None:
                continue
            item = None if single else index
            problems = []
            for position, parent in enumerate(after):
                if parent in after[:position]:
                    if isinstance(parent, int):
                        start = str(parent_twice(item, "")).partition("''")[0] + "'"
                        problems.append((start, "' twice"))
                    else:
                        problems.append((str(parent_twice(item, parent)), ""))
                elif isinstance(parent, int):
                    continue
                elif parent not in self.tasks:
                    problems.append((str(parent_unknown(item, parent)), ""))
                elif self.tasks[parent].status is FAILED:
                    problems.append((str(parent_failed(item, parent)), ""))
            if problems:
                return problems
        return []

    # commands (called once the store accepted them)

    def configure(self, queue: str, name: str, value: object) -> None:
        self.settings[queue] = replace(self.settings_of(queue), **{name: value})

    def enqueue(
        self, task_id: str, new_task: NewTask, now: float, after: tuple[str, ...] = ()
    ) -> None:
        """`after` is the task's `after` as ids (an earlier item of its batch already here)."""
        shaping = self.settings_of(new_task.queue)
        expires_in = new_task.expires_in or shaping.ttl_seconds
        backoff = shaping.retry_backoff
        task = ModelTask(
            queue=new_task.queue,
            group=new_task.group,
            priority=new_task.priority,
            max_attempts=new_task.max_attempts or shaping.max_attempts or self.max_attempts,
            backoff=self.retry_backoff if backoff is None else backoff,
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        )
        self.tasks[task_id] = task
        self.events[Event.ENQUEUED] += 1
        task.after = after
        for parent_id in after:
            self.tasks[parent_id].dependents.append(task_id)
        task.open = {
            parent_id for parent_id in after if self.tasks[parent_id].status is not COMPLETED
        }
        if task.open:  # its delay runs once the last of them completes
            event(f"enqueue: waits for {len(task.open)} of {len(after)}")
            task.hold = new_task.delay
            task.available_at = now
            self._set_status(task, WAITING)
            return
        task.available_at = now + new_task.delay
        if new_task.delay > 0:
            self._set_status(task, SCHEDULED)
            task.due = now + new_task.delay
        else:
            self._join_tail(task_id)

    def dequeue(self, task_id: str, lease_id: str, lease: float | None, now: float) -> None:
        task = self.tasks[task_id]
        self._set_status(task, PROCESSING)
        task.attempts += 1
        task.lease_id = lease_id
        task.lease_deadline = now + (lease or self._lease_of(task.queue))
        if self.settings_of(task.queue).rate_limit is not None:
            self.deliveries[task.queue].append(now)

    def heartbeat(self, task_id: str, lease: float | None, now: float) -> None:
        task = self.tasks[task_id]
        task.lease_deadline = now + (lease or self._lease_of(task.queue))

    def complete(
        self, task_id: str, result: bytes | None, now: float, lease_id: str | None
    ) -> None:
        task = self.tasks[task_id]
        task.closed_lease = lease_id
        self._drop_lease(task)
        task.result = result
        self._leave_line(task_id)
        self._finish(task, COMPLETED, now)
        self.events[Event.COMPLETED] += 1
        for child_id in task.dependents:  # in the order they were enqueued
            child = self.tasks.get(child_id)
            if child is None or child.status is not WAITING:
                continue
            child.open.discard(task_id)
            if child.open:
                continue
            event("dependency: released" + (" for its delay" if child.hold > 0 else ""))
            child.available_at = now + child.hold
            if child.hold > 0:
                self._set_status(child, SCHEDULED)
                child.due = now + child.hold
            else:
                self._join_tail(child_id)

    def fail(
        self, task_id: str, error: str | None, retry: bool, now: float, lease_id: str | None
    ) -> None:
        task = self.tasks[task_id]
        task.closed_lease = lease_id
        self._drop_lease(task)
        if self.expired(task, now):
            self._expire(task_id, now)
            return
        if not retry or task.attempts >= task.max_attempts:
            self._dead(task_id, error, now)
            return
        task.error = error
        wait = min(task.backoff * 2 ** (task.attempts - 1), BACKOFF_CAP)
        task.available_at = now + wait
        if wait > 0:  # the task keeps its group's turn meanwhile
            self._set_status(task, SCHEDULED)
            task.due = now + wait
        else:
            self._join_tail(task_id)

    def release(self, task_id: str, now: float) -> None:
        task = self.tasks[task_id]
        self._drop_lease(task)
        if self.expired(task, now):
            self._expire(task_id, now)
        else:
            self._set_status(task, PENDING)

    def retry(self, task_id: str, now: float) -> None:
        task = self.tasks[task_id]
        task.attempts = 0
        task.error = task.result = task.finished_at = task.forget_at = None
        task.expires_at = task.errors = None
        task.available_at = now  # it runs: its dependents, failed with it, stay failed
        self._join_tail(task_id)

    def delete(self, task_ids: list[str], now: float) -> None:
        """Delete tasks at once (a purge takes them in an order of its own, which changes which
        parent the tasks failed with them name: any one deleted or failed with them will do)."""
        self._fail_dependents(task_ids, now, deleted=True)
        for task_id in task_ids:
            self._leave_line(task_id)
            del self.tasks[task_id]

    # helpers

    def _lease_of(self, queue: str) -> float:
        return self.settings_of(queue).lease_seconds or self.lease

    def _has_turn(self, task_id: str) -> bool:
        task = self.tasks[task_id]
        return task.group is None or self.lines[task.queue, task.group][0] == task_id

    def _set_status(self, task: ModelTask, status: TaskStatus) -> None:
        task.status = status
        task.entered = self.next_entered
        self.next_entered += 1

    def _join_tail(self, task_id: str) -> None:
        """Pending at the tail of its queue, and in its group's line unless already there."""
        task = self.tasks[task_id]
        self._set_status(task, PENDING)
        task.place = self.next_place
        self.next_place += 1
        if task.group is not None:
            line = self.lines.setdefault((task.queue, task.group), [])
            if task_id not in line:
                line.append(task_id)

    def _leave_line(self, task_id: str) -> None:
        """Out of its group's line: the next in line (if any) has the turn."""
        task = self.tasks[task_id]
        line = self.lines.get((task.queue, task.group), [])
        if task_id in line:
            if line[0] == task_id and len(line) > 1:
                event("group: the turn passes to the next task")
            line.remove(task_id)

    def _dead(self, task_id: str, error: str | None, now: float) -> None:
        """No attempt left or none wanted: to the dead-letter queue if there is one, or failed."""
        task = self.tasks[task_id]
        task.error = error
        self._leave_line(task_id)
        dead_letter_queue = self.settings_of(task.queue).dead_letter_queue
        if dead_letter_queue is None:
            self._finish(task, FAILED, now)
            self.events[Event.FAILED] += 1
            self._fail_dependents([task_id], now)
            return
        event(f"dead-lettered from {task.queue}")
        self.events[Event.DEAD_LETTERED] += 1
        task.dead_lettered_from = task.queue
        task.queue = dead_letter_queue
        task.attempts = 0
        self._join_tail(task_id)

    def _expire(self, task_id: str, now: float) -> None:
        task = self.tasks[task_id]
        event(f"expired while {task.status.value}")
        task.error = EXPIRED_ERROR
        self._leave_line(task_id)
        self._finish(task, FAILED, now)
        self.events[Event.EXPIRED] += 1
        self._fail_dependents([task_id], now)

    def _fail_dependents(self, roots: list[str], now: float, deleted: bool = False) -> None:
        """The tasks failed (or are being deleted): what waits for them fails, and what waits
        for those, all at once. Each names a parent of its own that failed or went with it."""
        failing: list[str] = []
        reached = list(roots)
        while reached:
            for child_id in self.tasks[reached.pop()].dependents:
                child = self.tasks.get(child_id)
                if (
                    child is not None
                    and child.status is WAITING
                    and child_id not in failing
                    and child_id not in roots
                ):
                    failing.append(child_id)
                    reached.append(child_id)
        if not failing:
            return
        event(
            f"dependency: {len(failing)} failed with a {'deleted' if deleted else 'failed'} parent"
        )
        entered = self.next_entered  # together: their order in the failed listing is free
        self.next_entered += 1
        for child_id in failing:
            child = self.tasks[child_id]
            errors = {
                parent_deleted_error(parent_id)
                if deleted and parent_id in roots
                else parent_failed_error(parent_id)
                for parent_id in child.after
                if parent_id in roots or parent_id in failing
            }
            if len(errors) > 1:
                event("dependency: failed with two of its parents at once")
            child.error = min(errors)
            child.errors = frozenset(errors) if len(errors) > 1 else None
            self._finish(child, FAILED, now)
            child.entered = entered
            self.events[Event.FAILED] += 1

    def _drop_lease(self, task: ModelTask) -> None:
        if task.lease_id is not None:
            task.old_leases.append(task.lease_id)
        task.lease_id = task.lease_deadline = None

    def _finish(self, task: ModelTask, status: TaskStatus, now: float) -> None:
        self._set_status(task, status)
        task.due = None
        task.finished_at = now
        task.forget_at = now + self.retention


# --- the state machine -----------------------------------------------------------------------

# What a command acts on, weighted towards the tasks it can change: (kind, which one).
targets = st.tuples(
    st.sampled_from(
        ["processing"] * 4
        + ["parent"] * 3
        + ["failed", "pending", "scheduled", "waiting", "live", "live", "gone", "unknown"]
    ),
    st.integers(0, 10_000),
)
lease_modes = st.sampled_from(["current"] * 3 + ["missing"] * 2 + ["stale", "other", "bogus"])
lease_lengths = st.one_of(st.none(), st.integers(1, 60), st.floats(1, 60))
queues = st.sampled_from([DEFAULT_QUEUE] * 3 + [DEAD])
new_tasks = st.builds(
    NewTask,
    payload=st.just(b'{"n":1}'),
    max_attempts=st.one_of(st.none(), st.integers(1, 4)),
    queue=st.sampled_from([DEFAULT_QUEUE] * 4 + [DEAD]),
    priority=st.sampled_from([0, 0, 0, 5]),
    delay=st.sampled_from([0.0] * 4 + [3.0, 10.0]),
    group=st.sampled_from([None, None, "A", "B"]),
    expires_in=st.sampled_from([None] * 4 + [2.0, 25.0]),
)
# A parent of a new task: an earlier item of its batch, or a task of the kind asked for (as
# `targets`); some are failed, gone or never existed, so that the store must refuse them.
parent_picks = st.tuples(
    st.sampled_from(
        ["item"] * 3
        + ["processing"] * 4
        + ["pending"] * 3
        + ["completed"] * 2
        + ["live", "live", "waiting", "scheduled", "failed", "gone", "unknown"]
    ),
    st.integers(0, 10_000),
)
# An item of a batch: the task, and what it waits for (None: nothing).
batch_items = st.tuples(
    new_tasks,
    st.one_of(st.none(), st.none(), st.lists(parent_picks, min_size=1, max_size=2)),
)
# A change of one setting of the default queue: (name, value), None clearing it.
setting_changes = st.sampled_from(
    [
        ("paused", True),
        ("paused", None),
        ("max_processing", 1),
        ("max_processing", 2),
        ("max_processing", None),
        ("dead_letter_queue", DEAD),
        ("dead_letter_queue", None),
        ("ttl_seconds", 15.0),
        ("ttl_seconds", None),
        ("retry_backoff", 0.0),
        ("retry_backoff", 4.0),
        ("retry_backoff", None),
        ("lease_seconds", 10.0),
        ("lease_seconds", None),
        ("max_attempts", 1),
        ("max_attempts", 3),
        ("max_attempts", None),
    ]
)

# The default queue's settings at the start of a run, before any change.
first_settings = st.fixed_dictionaries(
    {
        "max_processing": st.sampled_from([None, None, 1, 2]),
        "rate_limit": st.sampled_from([None, None, RateLimit(2, 5.0), RateLimit(1, 1.5)]),
        "dead_letter_queue": st.sampled_from([None, DEAD]),
        "ttl_seconds": st.sampled_from([None, None, 15.0]),
    }
)


class MemoryStoreMachine(RuleBasedStateMachine):
    @initialize(
        lease=st.sampled_from([5.0, 30.0]),
        max_attempts=st.sampled_from([1, 2, 4]),
        retry_backoff=st.sampled_from([0.0, 0.5, 1.0, 7.0, 3000.0]),
        retention=st.sampled_from([0.0, 1.0, 30.0, 200.0]),
        initial_settings=first_settings,
        initial_tasks=st.lists(batch_items, max_size=6),
    )
    def start(
        self,
        *,
        lease: float,
        max_attempts: int,
        retry_backoff: float,
        retention: float,
        initial_settings: dict[str, object],
        initial_tasks: list[tuple[NewTask, list[tuple[str, int]] | None]],
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
        for change in initial_settings.items():
            self.configure(change)
        if initial_tasks:
            self.enqueue(initial_tasks)

    # -- choosing what to act on ----------------------------------------------------------------

    def _catch_up(self) -> float:
        """The model side of the reaping every store call starts with."""
        now = self.clock.now
        self.model.catch_up(now)
        return now

    def _target(self, which: tuple[str, int]) -> str:
        """A task id of the kind asked for, or the nearest kind there is."""
        kind, number = which
        candidates = self._candidates()
        for choice in (kind, "processing" if kind == "parent" else kind, "live", "gone", "unknown"):
            if candidates[choice]:
                return candidates[choice][number % len(candidates[choice])]
        raise AssertionError("unreachable: UNKNOWN_IDS is never empty")

    def _candidates(self) -> dict[str, list[str]]:
        """The task ids of each kind `targets` names."""
        tasks = self.model.tasks
        candidates = {
            "processing": self.model.processing(),
            # What some waiting task waits for: completing it may release it, failing it fails it.
            "parent": [
                task_id
                for task_id in self.model.processing()
                if any(
                    self.model.tasks[child_id].status is WAITING
                    for child_id in self.model.tasks[task_id].dependents
                    if child_id in self.model.tasks
                )
            ],
            "live": list(tasks),
            "gone": [task_id for task_id in self.ids if task_id not in tasks],
            "unknown": UNKNOWN_IDS,
        }
        for status in (FAILED, PENDING, SCHEDULED, WAITING, COMPLETED):
            candidates[status.value] = [
                task_id for task_id, task in tasks.items() if task.status is status
            ]
        return candidates

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

    def _after(
        self, index: int, picks: list[tuple[str, int]] | None
    ) -> tuple[str | int, ...] | None:
        """The `after` of item `index` of a batch: earlier items' indexes and tasks' ids. A pick
        of a kind there is none of takes a live task, or none when there is none (the first
        item's picks of an earlier item too): only the picks asking for them name failed, gone
        or unknown tasks."""
        after: list[str | int] = []
        candidates = self._candidates()
        for kind, number in picks or ():
            if kind == "item":
                if index:
                    after.append(number % index)
                continue
            for choice in (kind, "live"):
                if candidates[choice]:
                    after.append(candidates[choice][number % len(candidates[choice])])
                    break
        return tuple(after) or None

    @rule(batch=st.lists(batch_items, min_size=1, max_size=4))
    def enqueue(self, batch: list[tuple[NewTask, list[tuple[str, int]] | None]]) -> None:
        now = self._catch_up()
        afters = [self._after(index, picks) for index, (_, picks) in enumerate(batch)]
        new_tasks = [
            replace(new_task, after=after)
            for (new_task, _), after in zip(batch, afters, strict=True)
        ]
        refusals = self.model.refusals(afters)
        if refusals:
            try:
                self.store.enqueue_many(new_tasks)
            except ValidationError as exc:
                message = str(exc)
                assert any(
                    message.startswith(start) and message.endswith(end) for start, end in refusals
                ), (message, refusals)
                kind = next(label for words, label in REFUSALS if words in message)
                event(f"enqueue: refused, a parent {kind}")
            else:
                raise AssertionError(f"the batch should be refused: {refusals}")
            self._check()
            return
        outcomes = self.store.enqueue_many(new_tasks)
        assert len(outcomes) == len(batch) and all(outcome.created for outcome in outcomes)
        made = [outcome.task_id for outcome in outcomes]
        for task_id, new_task in zip(made, new_tasks, strict=True):
            after = tuple(
                made[parent] if isinstance(parent, int) else parent
                for parent in new_task.after or ()
            )
            self.model.enqueue(task_id, new_task, now, after)
            self.ids.append(task_id)
        for outcome in outcomes:
            self._matches(outcome.task)
            self._matches(self.store.get(outcome.task_id))
        self._check()

    @rule(change=setting_changes)
    def configure(self, change: tuple[str, object]) -> None:
        self._catch_up()
        name, value = change
        settings = self.store.configure(DEFAULT_QUEUE, {name: value})
        self.model.configure(DEFAULT_QUEUE, name, value)
        assert settings == self.model.settings_of(DEFAULT_QUEUE)
        self._check()

    @rule(count=st.sampled_from([1, 1, 1, 2, 4]), lease=lease_lengths, queue=queues)
    def dequeue(self, count: int, lease: float | None, queue: str) -> None:
        now = self._catch_up()
        deliverable = self.model.deliverable(queue)
        allowed = self.model.allowance(queue, count, now)
        tasks = self.store.dequeue_many(count, lease, queue)
        expected = deliverable[:allowed]
        wanted = min(count, len(deliverable))
        if len(expected) < wanted:
            room = self.model.room(queue, now)
            event(f"dequeue: held back by {min(room, key=room.__getitem__)}")
        elif expected:
            event(f"dequeue: {len(expected)} of {count}")
        else:
            event("dequeue: nothing to take")
        assert [task.id for task in tasks] == expected, "dequeue did not take the right tasks"
        for task in tasks:
            assert task.lease_id not in self.lease_ids_seen, "a lease id was handed out twice"
            self.lease_ids_seen.add(task.lease_id)
            self.model.dequeue(task.id, task.lease_id, lease, now)
        for task in tasks:
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
        now = self._catch_up()
        task_id = self._target(which)
        lease_id = self._lease_id(task_id, mode, pick)
        refusal = self.model.refusal(task_id, lease_id)
        task = self._expect("release", refusal, lambda: self.store.release(task_id, lease_id))
        if refusal is None:
            self.model.release(task_id, now)
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
        now = self._catch_up()
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
            self.model.delete([task_id], now)
        self._check()

    @rule(
        queue=queues,
        status=st.sampled_from(LISTED),
        limit=st.one_of(st.integers(1, 3), st.just(1000)),
    )
    def purge(self, queue: str, status: TaskStatus, limit: int) -> None:
        now = self._catch_up()
        refusal = InvalidTransition if status is PROCESSING else None
        deleted = self._expect(
            f"purge {status.value}", refusal, lambda: self.store.purge(queue, status, limit)
        )
        if refusal is None:
            # Which tasks of the state go is the store's choice; they go as one `delete`.
            held = [
                task_id
                for task_id, task in self.model.tasks.items()
                if task.queue == queue and task.status is status
            ]
            assert deleted == min(limit, len(held))
            gone = [task_id for task_id in held if self.store.get(task_id) is None]
            assert len(gone) == deleted
            self.model.delete(gone, now)
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

    @rule(
        limit=st.integers(0, 10),
        offset=st.integers(0, 10),
        queue=queues,
        status=st.sampled_from([PENDING] * 3 + list(LISTED)),
    )
    def view(self, limit: int, offset: int, queue: str, status: TaskStatus) -> None:
        self._catch_up()
        page, total = self.store.view(limit, offset, queue, status)
        listed = self._listed(queue, status)
        page_ids = [task.id for task in page]
        what = f"{queue} {status.value}"
        self._same_listing(page_ids, listed[offset : offset + limit], listed, what)
        assert total == len(listed)
        for task in page:
            self._matches(task)

    @rule(
        seconds=st.one_of(
            st.integers(0, 5), st.floats(0, 5), st.integers(0, 100), st.floats(0, 40)
        ),
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

    # The rules that move tasks along are drawn more often than the others (a rule is drawn
    # once for each name it has).
    dequeue_again = dequeue
    dequeue_once_more = dequeue
    dequeue_yet_again = dequeue
    complete_again = complete
    complete_once_more = complete
    fail_again = fail
    enqueue_again = enqueue
    enqueue_once_more = enqueue
    configure_again = configure

    # -- comparing store and model --------------------------------------------------------------

    def _listed(self, queue: str, status: TaskStatus) -> list[tuple[int, str]]:
        """The model's listing of a state, each task with its rank: its place in the pending
        order, else when it entered the state (tasks with one rank may come in any order)."""
        if status is PENDING:
            return list(enumerate(self.model.pending(queue)))
        return self.model.listed(queue, status)

    @staticmethod
    def _same_listing(
        ids: list[str], expected: list[tuple[int, str]], listed: list[tuple[int, str]], what: str
    ) -> None:
        """The store listed `ids` where the model lists `expected`, part of `listed`: the same
        tasks in the same order, those of one rank in any order."""
        rank = {task_id: number for number, task_id in listed}
        assert len(set(ids)) == len(ids), f"{what}: a task is listed twice"
        got = [rank.get(task_id) for task_id in ids]
        assert got == [number for number, _ in expected], f"{what} differs: {ids} {expected}"

    def _matches(self, task: Task | None) -> None:
        assert task is not None
        expected = self.model.tasks[task.id]
        assert task.status is expected.status, (task.status, expected.status)
        assert task.queue == expected.queue
        assert task.group == expected.group
        assert task.priority == expected.priority
        assert task.attempts == expected.attempts
        assert task.max_attempts == expected.max_attempts
        assert task.created_at == expected.created_at
        assert task.available_at == expected.available_at
        assert task.expires_at == expected.expires_at
        assert task.lease_id == expected.lease_id
        assert task.lease_expires_at == expected.lease_deadline
        assert task.finished_at == expected.finished_at
        assert task.dead_lettered_from == expected.dead_lettered_from
        if task.status is FAILED and expected.errors is not None:
            assert task.error in expected.errors, (task.error, expected.errors)
            expected.error, expected.errors = task.error, None  # the one it named, from now on
        if task.status in (SCHEDULED, FAILED) or task.dead_lettered_from is not None:
            assert task.error == expected.error
        extras = task.extras
        assert (() if extras is None else extras.after) == expected.after
        assert (None if extras is None else extras.dependents) == (expected.dependents or None)
        if task.status is WAITING:
            assert extras is not None and extras.waiting_on == len(expected.open)
        if task.status is COMPLETED:
            assert task.result == expected.result

    def _check(self) -> None:
        """Counts, listings, settings, totals, every task and the one-lease-per-task rule."""
        self._catch_up()
        assert self.store.stats() == self.model.counts()
        for queue in QUEUES:
            assert self.store.stats(queue) == self.model.counts(queue), queue
            for status in LISTED:
                page, total = self.store.view(10_000, 0, queue, status)
                listed = self._listed(queue, status)
                what = f"{queue} {status.value}"
                self._same_listing([task.id for task in page], listed, listed, what)
                assert total == len(page)
        assert self.store.queue_settings(DEFAULT_QUEUE) == self.model.settings_of(DEFAULT_QUEUE)
        totals = Counter()  # the queues in use and those that emptied, together
        for events in self.store.totals().values():
            totals.update(events)
        assert {name: totals[name] for name in Event} == {
            name: self.model.events[name] for name in Event
        }
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
