"""The Store contract every backend implements.

Threading and the IOLoop
------------------------
A store is synchronous and thread-safe: HTTP handlers on the IOLoop and worker threads call it
concurrently, and each state change (dequeue = take the oldest ready task *and* mark it
processing; complete = check the state *and* mark it completed) is one atomic operation inside
the store, so no caller can observe or cause a half-done transition.

How handlers call it is decided by `blocking`:
- a store whose calls finish in microseconds without I/O (`MemoryStore`) sets `blocking = False`
  and is called inline on the IOLoop: a thread-pool hop would cost more than the call itself;
- a store that does I/O (SQLite, Redis) sets `blocking = True` and handlers run its calls in an
  executor (`store_calls.call_store`), so a slow disk or network never stalls other requests;
- a store that can await its I/O on the IOLoop (Redis) also sets `asynchronous = True`, and
  handlers await its `run_async(method, *args)` instead: no thread hop at all.

Return values are snapshots: a `Task` returned by a store is a copy the caller may read freely.

Time
----
Leases, retry backoff and retention run on the store's injected `Clock`. Whatever is due is
applied at the start of every operation ("reaping"), and `reap()` lets an idle server apply it
too (the server calls it periodically), so counts and waiting consumers are right when no one
is calling.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar, TypeVar

from tornado_queue import limits
from tornado_queue.config import Settings
from tornado_queue.errors import (
    InvalidTransition,
    QueueError,
    TaskNotFound,
    parent_failed,
    parent_twice,
    parent_unknown,
    queue_full,
    store_full,
    too_many_dependents,
    too_many_queues,
)
from tornado_queue.models import (
    DEFAULT_QUEUE,
    Completion,
    Enqueued,
    Event,
    ItemOutcome,
    NewTask,
    QueueSettings,
    Task,
    TaskStatus,
    WorkerInfo,
)
from tornado_queue.schedules import Round, Schedule
from tornado_queue.storage.events import EventFeed
from tornado_queue.storage.outage import OutageLog

T = TypeVar("T")

ReadyListener = Callable[[str, int], None]
"""Called with a queue name and a count after that many tasks became ready to dequeue there.
It runs on the thread that made them ready, outside the store's lock, so it must be quick and
thread-safe."""

FinishedListener = Callable[[str], None]
"""Called with a task id after the task became `completed` or `failed`, or was deleted. It runs
on the thread that made the change (on Redis, also a pub/sub subscriber thread), outside the
store's lock, so it must be quick and thread-safe."""


def to_create(new_tasks: Sequence[NewTask], replays: Mapping[str, object]) -> list[NewTask]:
    """The tasks of a batch that will be created: not replays of a remembered key, nor
    repeats of a key earlier in the batch."""
    created, keys = [], set()
    for new_task in new_tasks:
        key = new_task.idempotency_key
        if key is not None:
            if key in replays or key in keys:
                continue
            keys.add(key)
        created.append(new_task)
    return created


def item_ids(
    new_tasks: Sequence[NewTask], fresh: Sequence[Task | str], replays: Mapping[str, str]
) -> tuple[list[str], list[bool]]:
    """For each item of a batch, the id of the task it stands for and whether it creates it:
    its own new id (`fresh[i]`, a task or an id), or the first task of its idempotency key
    (remembered in `replays` as key -> id, or an earlier item of the same batch)."""
    stands_for, creates = [], []
    first_of_key: dict[str, str] = {}
    for new_task, made in zip(new_tasks, fresh, strict=True):
        new_id = made if isinstance(made, str) else made.id
        key = new_task.idempotency_key
        first = None if key is None else replays.get(key) or first_of_key.get(key)
        if first is not None:
            stands_for.append(first)
            creates.append(False)
            continue
        if key is not None:
            first_of_key[key] = new_id
        stands_for.append(new_id)
        creates.append(True)
    return stands_for, creates


def resolve_after(
    after: Sequence[str | int], item: int | None, stands_for: Sequence[str]
) -> tuple[str, ...]:
    """A task's `after` as task ids: an index of an earlier batch item becomes the id that item
    stands for (see `item_ids`). `item` is the task's index in its batch (None for a single
    enqueue), for the error when two entries name one task."""
    chosen: list[str] = []
    for parent in after:
        parent_id = stands_for[parent] if isinstance(parent, int) else parent
        if parent_id in chosen:
            raise parent_twice(item, parent_id)
        chosen.append(parent_id)
    return tuple(chosen)


ParentLookup = Callable[[str], tuple[bool, int] | None]
"""For a parent id: (whether it has failed, how many dependents it has), or None when it does
not exist."""


def check_parents(
    new_tasks: Sequence[NewTask],
    stands_for: list[str],
    creates: list[bool],
    lookup: ParentLookup,
) -> list[tuple[str, ...] | None]:
    """Each created task's `after` as ids (see `resolve_after`), None for a task without one,
    checked before anything changes: every parent exists (or is made by an earlier item of the
    batch), none has failed, none would pass `MAX_DEPENDENTS`. Raises `ValidationError`
    naming the first bad parent."""
    if all(new_task.after is None for new_task in new_tasks):
        return [None] * len(new_tasks)
    made = {item_id for item_id, new in zip(stands_for, creates, strict=True) if new}
    adding: Counter[str] = Counter()
    single = len(new_tasks) == 1
    resolved: list[tuple[str, ...] | None] = []
    for index, new_task in enumerate(new_tasks):
        if new_task.after is None or not creates[index]:
            resolved.append(None)
            continue
        item = None if single else index
        chosen = resolve_after(new_task.after, item, stands_for)
        for parent_id in chosen:
            adding[parent_id] += 1
            state = lookup(parent_id)
            if state is None:
                if parent_id in made:  # an earlier item of this batch
                    continue
                raise parent_unknown(item, parent_id)
            failed, held = state
            if failed:
                raise parent_failed(item, parent_id)
            if held + adding[parent_id] > limits.MAX_DEPENDENTS:
                raise too_many_dependents(item, parent_id, limits.MAX_DEPENDENTS)
        resolved.append(chosen)
    return resolved


def repeats_closing(action: str, task: Task, lease_id: str | None) -> bool:
    """Whether a fenced `complete` or `fail` under `lease_id` repeats the one that already
    ended that lease, so that it is answered with the task as it is now instead of "lease
    lost": a consumer whose first answer was lost may simply send it again.

    The task remembers the lease that a fenced complete or fail last closed (`closed_lease`).
    A complete repeats when that lease completed the task; a fail repeats when that lease
    failed it (the task is anything but completed: a later completion closes the task again,
    under its own lease or none)."""
    if lease_id is None or task.closed_lease != lease_id or task.lease_id == lease_id:
        return False
    completed = task.status is TaskStatus.COMPLETED
    return completed if action == "complete" else action == "fail" and not completed


EXPIRED_ERROR = "expired: not delivered before its expires_at"
"""The `error` of a task that expired (every store words it so; the task shows the time)."""


RETIRED = ""
"""The `totals()` entry that holds the events of queues that emptied (not a valid queue name):
a queue's own totals are dropped when it holds no task any more, so that they stay bounded by
the queues in use (names are chosen by clients), while the sum over all entries never goes
down."""

MAX_BACKOFF_SECONDS = float(limits.MAX_BACKOFF_SECONDS)


@dataclass(frozen=True)
class Policy:
    """The delivery rules a store applies (see docs/reliability.md)."""

    lease_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff: float = 1.0
    retention_seconds: float = 3600.0
    max_pending: int = 0
    """Most tasks waiting (pending or scheduled) in one queue; 0 means no limit."""
    max_tasks: int = 0
    """Most tasks held in all, any state (finished ones until forgotten); 0 means no limit."""
    max_queues: int = 0
    """Most queues holding tasks at once; 0 means no limit."""

    @classmethod
    def of(cls, settings: Settings) -> Policy:
        """The delivery rules the server's settings give a store."""
        return cls(
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
            retry_backoff=settings.retry_backoff,
            retention_seconds=settings.retention_seconds,
            max_pending=settings.max_pending,
            max_tasks=settings.max_tasks,
            max_queues=settings.max_queues,
        )

    @property
    def limited(self) -> bool:
        return bool(self.max_pending or self.max_tasks or self.max_queues)

    def check_room(
        self,
        adding: Mapping[str, int],
        waiting: Callable[[str], int],
        held: Callable[[], int],
        queues_in_use: Callable[[], Collection[str]],
    ) -> None:
        """Raise `QueueFull` if creating `adding[queue]` tasks per queue would pass a limit;
        `waiting(queue)` and `held()` read the store's counters (called only when a limit is
        set). Every store calls this inside its atomic enqueue, before changing anything."""
        total = sum(adding.values())
        if not total:
            return
        if self.max_queues:
            in_use = queues_in_use()
            new = [queue for queue in adding if queue not in in_use]
            if new and len(in_use) + len(new) > self.max_queues:
                raise too_many_queues(len(in_use), new[0], self.max_queues)
        if self.max_tasks:
            now_held = held()
            if now_held + total > self.max_tasks:
                raise store_full(now_held, total, self.max_tasks)
        if self.max_pending:
            for queue, count in adding.items():
                now_waiting = waiting(queue)
                if now_waiting + count > self.max_pending:
                    raise queue_full(queue, now_waiting, count, self.max_pending)

    def backoff(
        self, attempts: int, base: float | None = None, retry_after: float | None = None
    ) -> float:
        """Seconds to wait before retrying after the `attempts`-th attempt failed, from the
        task's own backoff `base` (fixed when it was enqueued) or else the policy's; a
        `retry_after` the failure asked for (a push target's Retry-After) replaces it, within
        0 and `MAX_BACKOFF_SECONDS`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_BACKOFF_SECONDS)
        # The exponent is bounded so huge attempt counts cannot overflow a float; 2**40 is far
        # past the cap for any backoff base.
        exponent = min(max(attempts - 1, 0), 40)
        if base is None:
            base = self.retry_backoff
        return min(base * 2**exponent, MAX_BACKOFF_SECONDS)


class Store(ABC):
    """A queue of tasks. See the module docstring for the threading and time rules.

    Commands that act on a leased task (`heartbeat`, `complete`, `fail`, `release`) take an
    optional `lease_id`: when given and not the task's current lease they raise `LeaseLost`,
    so a consumer whose lease expired cannot finish a task someone else now holds. A
    `complete` or `fail` that repeats the one that closed its lease returns the task as it is
    (see `repeats_closing`), so fenced commands are safe to send again.
    Every command raises `TaskNotFound` for an unknown id and `InvalidTransition` when the
    task's state does not allow it.

    When the store's disk or server fails, a method raises `StoreUnavailable` if nothing was
    applied, or `OutcomeUnknown` if the failure came while the operation may have been
    applied; never the backend's own errors.
    """

    blocking: ClassVar[bool] = True
    asynchronous: ClassVar[bool] = False
    policy: Policy

    @cached_property
    def outage(self) -> OutageLog:
        """Whether the store is answering, logged once per change (see `store_calls`)."""
        return OutageLog()

    def enqueue(self, new_task: NewTask) -> Task:
        """Add one task (see `enqueue_many`) and return it."""
        outcome = self.enqueue_many([new_task])[0]
        if outcome.task is None:  # an idempotent replay of a task that is gone
            raise TaskNotFound(outcome.task_id)
        return outcome.task

    @abstractmethod
    def enqueue_many(self, new_tasks: Sequence[NewTask]) -> list[Enqueued]:
        """Add tasks, all or nothing, each at the tail of its queue and priority: `pending`, or
        `scheduled` until its `delay` has passed.

        The queue's settings at that moment shape each task for good: its `max_attempts`
        (unless given), its retry backoff base (`retry_backoff`) and its expiry (`expires_in`,
        else the queue's `ttl_seconds`). A task of a `group` that is not the group's turn is
        pending but not deliverable until the task ahead of it is completed, deleted, dead,
        dead-lettered or expired.

        A task with an `idempotency_key` seen in the last `policy.retention_seconds` is not
        created again: its outcome is the first task with `created=False`, or, when the
        fingerprint differs, `IdempotencyConflict` is raised and nothing at all is added.
        """

    def dequeue(
        self, lease_seconds: float | None = None, queue: str = DEFAULT_QUEUE, push: bool = False
    ) -> Task | None:
        """Lease the first pending task of `queue` (highest priority, then oldest) and return
        it; None when none is ready.

        The task becomes `processing` with a fresh `lease_id`, `attempts` goes up by one, and
        the lease lasts `lease_seconds` (default `policy.lease_seconds`). When a lease expires
        the task goes back to its place at the front of the queue, or to `failed` with error
        "lease expired" if it has used `max_attempts`. `push` is as for `dequeue_many`.
        """
        tasks = self.dequeue_many(1, lease_seconds, queue, push=push)
        return tasks[0] if tasks else None

    @abstractmethod
    def dequeue_many(
        self,
        count: int,
        lease_seconds: float | None = None,
        queue: str = DEFAULT_QUEUE,
        worker: str | None = None,
        push: bool = False,
    ) -> list[Task]:
        """Lease up to `count` tasks of `queue`, in dequeue order, each as `dequeue` would,
        within the queue's delivery settings: none while it is paused, no more than its
        `max_processing` leaves room for, no more than its `rate_limit` allows now (a consumer
        turned away by the rate limit is woken, through the ready listeners, when the window
        lets the next task through). Tasks past their expiry are never handed out.

        A `worker` (the consumer's own name for itself) is recorded with each delivery in the
        task's history and in `workers`: it holds the task until the task stops processing.

        Every change to a task is recorded in its history (`models.Happened`; the last
        `models.HISTORY_LENGTH` kept) and, once `event_feed` is started, in the feed.

        A queue with a `push` setting is delivered by the servers' pushers only: a dequeue
        without `push=True` raises `PushQueue` there (checked in the same atomic step, so no
        consumer gets a task of a queue once its push is set); with `push=True`, a queue
        without the setting hands out nothing."""

    @abstractmethod
    def get(self, task_id: str) -> Task | None:
        """Return the task with this id, or None (also once it has been forgotten)."""

    @abstractmethod
    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        """Extend a processing task's lease to `lease_seconds` from now."""

    @abstractmethod
    def progress(self, task_id: str, value: bytes, lease_id: str | None = None) -> Task:
        """Record a processing task's progress (serialized JSON), fenced as `heartbeat` is;
        the lease is not extended. Progress stays through redeliveries and dead-lettering
        (a worker may resume from it) and is cleared by `retry`, which starts the task anew."""

    @abstractmethod
    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        """Mark a processing task `completed`, keeping `result` (serialized JSON) if given."""

    def complete_many(self, items: Sequence[Completion]) -> list[ItemOutcome]:
        """Complete each item on its own; an item that fails does not stop the others."""
        outcomes = []
        for item in items:
            try:
                task = self.complete(item.task_id, item.result, item.lease_id)
            except QueueError as error:
                outcomes.append(ItemOutcome(item.task_id, error=error))
            else:
                outcomes.append(ItemOutcome(item.task_id, task=task))
        return outcomes

    @abstractmethod
    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
        retry_after: float | None = None,
    ) -> Task:
        """Record a failed attempt of a processing task.

        With `retry` and attempts left, the task waits
        `policy.backoff(attempts, its base, retry_after)` seconds as `scheduled` (or goes
        straight to the tail as `pending` when that is 0); otherwise it is dead: it moves to
        its queue's `dead_letter_queue` as `pending` (id and error kept, attempts 0,
        `dead_lettered_from` set), or becomes `failed`. A task past its expiry becomes
        `failed` as expired instead.
        """

    @abstractmethod
    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        """Give a processing task back unfinished: `pending` again at its place at the front."""

    @abstractmethod
    def retry(self, task_id: str) -> Task:
        """Put a `failed` task back at the tail as `pending` with its attempts reset and its
        expiry cleared (an operator's retry runs it however old it is)."""

    def retry_failed(self, queue: str, limit: int) -> int:
        """Put up to `limit` of `queue`'s failed tasks back at the tail as `pending`, attempts
        reset, each atomically as `retry` does (the most recently failed first); return how
        many. A task retried or deleted by someone else meanwhile is skipped, not counted."""
        tasks, _ = self.view(limit, 0, queue, TaskStatus.FAILED)
        retried = 0
        for task in tasks:
            try:
                self.retry(task.id)
            except (TaskNotFound, InvalidTransition):
                continue
            retried += 1
        return retried

    # -- queue settings ------------------------------------------------------------------

    @abstractmethod
    def queue_settings(self, queue: str) -> QueueSettings:
        """The queue's settings; all unset for a queue never configured."""

    @abstractmethod
    def configure(self, queue: str, changes: Mapping[str, object]) -> QueueSettings:
        """Set (a value) or clear (None) the named settings of `queue` in one atomic step and
        return all its settings as they now are. `changes` names only `QueueSettings.NAMES`,
        with values already validated. A queue with any setting is listed by `queues` even
        when it holds no task; clearing its last setting returns it to the defaults.

        When the change lets the queue deliver again (it was paused and is not now), the
        store tells ready listeners that its pending tasks are ready, as an enqueue does, so
        parked consumers (on every server sharing the store) wake at once."""

    @abstractmethod
    def configured_queues(self) -> dict[str, QueueSettings]:
        """Every queue with at least one setting, by name."""

    # -- schedules -------------------------------------------------------------------------

    @abstractmethod
    def put_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        """Create or replace the schedule named `schedule.name` in one atomic step; return it as
        stored and whether it was created.

        The store sets `next_run_at` from its clock (`Schedule.placed`: an `every` schedule
        fires one interval from now, a cron one at its next time after now, a paused one
        never), keeps `last_run_at` of the schedule it replaces and raises its `revision`.
        A new schedule beyond `limits.MAX_SCHEDULES` raises `TooManySchedules`."""

    @abstractmethod
    def get_schedule(self, name: str) -> Schedule | None:
        """The schedule with this name, or None."""

    @abstractmethod
    def schedules(self) -> list[Schedule]:
        """Every schedule, sorted by name (at most `limits.MAX_SCHEDULES`)."""

    @abstractmethod
    def delete_schedule(self, name: str) -> bool:
        """Remove the schedule; False when there was none. Tasks it enqueued stay."""

    @abstractmethod
    def fire_due_schedules(self, limit: int = limits.SCHEDULE_ROUND) -> Round:
        """Fire up to `limit` schedules whose `next_run_at` has come, earliest first, found
        through an index on `next_run_at` (never a scan of every schedule).

        Each firing is one atomic step that checks the schedule's stored `next_run_at` (and
        revision) is the occurrence being fired, enqueues its task through the normal enqueue
        rules with `schedule` and `fire_time` set (`schedules.fire`: the latest occurrence not
        after now, so a store that was down past several occurrences catches up once), and
        advances `next_run_at` to the first occurrence after now. However many servers share
        the store and whenever they restart, each occurrence is enqueued at most once, and
        never one at or before `last_run_at`. A full queue or store skips the occurrence (its
        `Fired` carries the error); a paused schedule is not due."""

    @abstractmethod
    def delete(self, task_id: str) -> None:
        """Remove a task in any state but `processing`."""

    @abstractmethod
    def purge(self, queue: str, status: TaskStatus, limit: int) -> int:
        """Delete up to `limit` of `queue`'s tasks in `status` (one of `models.PURGEABLE`),
        each as `delete` would, in one atomic step; return how many."""

    @abstractmethod
    def view(
        self,
        limit: int,
        offset: int = 0,
        queue: str = DEFAULT_QUEUE,
        status: TaskStatus = TaskStatus.PENDING,
    ) -> tuple[list[Task], int]:
        """Up to `limit` tasks of `queue` in `status` (one of `models.LISTED`) from `offset`,
        and how many the queue has in that state. Pending tasks come in dequeue order; the
        others most recent first, by when they entered that state."""

    @abstractmethod
    def stats(self, queue: str | None = None) -> dict[TaskStatus, int]:
        """The number of tasks in each state (every state present, zeros included), in `queue`
        or, with None, summed over all queues. An unknown queue has all zeros."""

    @abstractmethod
    def queues(self) -> dict[str, dict[TaskStatus, int]]:
        """Every queue that holds tasks or has a setting, by name, with its counts."""

    @abstractmethod
    def totals(self) -> dict[str, dict[Event, int]]:
        """How many of each `Event` happened in each queue in use (every event present, zeros
        included), and under `RETIRED` in all the queues that emptied since the store began.
        A queue used again after emptying counts from zero. Durable stores keep them across
        restarts."""

    @abstractmethod
    def seconds_to_next_deadline(self) -> float | None:
        """Seconds until the next lease expiry or due task, if any (possibly a deadline that no
        longer applies: waking early to reap is harmless)."""

    @abstractmethod
    def reap(self) -> None:
        """Apply whatever is due now: expired leases, due retries, forgotten finished tasks."""

    @abstractmethod
    def add_ready_listener(self, listener: ReadyListener) -> None:
        """Call `listener(queue, n)` whenever n tasks become ready to dequeue in `queue`."""

    @abstractmethod
    def add_finished_listener(self, listener: FinishedListener) -> None:
        """Call `listener(task_id)` when a task becomes completed or failed, or is deleted.
        A store may call it for every such task, or only for those `watch`ed."""

    @abstractmethod
    def saw_worker(self, worker_id: str) -> None:
        """A consumer named `worker_id` called (a fenced call): it is seen now."""

    @abstractmethod
    def workers(self) -> list[WorkerInfo]:
        """The workers seen in the last `limits.WORKER_SEEN_SECONDS`, the latest seen first,
        each with the tasks delivered to it that are still processing under that delivery, and
        how many of its tasks it completed and failed (failed attempts, final or not). Shared
        by every server of a shared store."""

    @property
    @abstractmethod
    def event_feed(self) -> EventFeed:
        """Where this store's changes are read as a stream (see `storage.events`)."""

    def watch(self, task_id: str, seconds: float) -> Task | None:
        """The task, as `get` returns it; and for the next `seconds`, its finishing (or
        deletion) reaches the finished listeners of every server sharing the store, even
        when another server makes it. Stores whose listeners hear of every task in process
        (memory, SQLite) need nothing more than `get`."""
        return self.get(task_id)

    async def run_async(self, method: Callable[..., T], *args: Any) -> T:
        """`method(*args)` awaited on the running loop; only for an `asynchronous` store."""
        raise NotImplementedError(f"{type(self).__name__} is not asynchronous")

    def check(self) -> None:  # noqa: B027 - optional hook, a store in memory is always ready
        """Make sure the store can serve, before the server takes its first request: raise
        `StoreUnavailable` (its `cause` says why) when it cannot, so that a wrong path or URL
        stops the start-up instead of failing every request."""

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing to release
        """Release what the store holds (files, connections). The store is unusable afterwards."""
