"""MemoryStore: deques of ids, a dict of tasks and one lock. The default and fastest store."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from itertools import chain, islice
from types import TracebackType

from tornado_queue import ids
from tornado_queue.clock import Clock, SystemClock
from tornado_queue.errors import (
    InvalidTransition,
    PushQueue,
    TaskNotFound,
    TooManySchedules,
    key_conflict,
    lease_lost,
    not_failed,
    not_processing,
    parent_deleted_error,
    parent_failed_error,
    still_processing,
)
from tornado_queue.limits import MAX_SCHEDULES, SCHEDULE_ROUND
from tornado_queue.models import (
    DEFAULT_QUEUE,
    FINISHED,
    HISTORY_LENGTH,
    PURGEABLE,
    Enqueued,
    Event,
    Extras,
    Happened,
    HistoryEntry,
    NewTask,
    QueueSettings,
    Task,
    TaskStatus,
    WorkerInfo,
    add_history,
    holder,
)
from tornado_queue.schedules import Round, Schedule, fire
from tornado_queue.storage.base import (
    EXPIRED_ERROR,
    RETIRED,
    FinishedListener,
    Policy,
    ReadyListener,
    Store,
    check_parents,
    item_ids,
    repeats_closing,
    to_create,
)
from tornado_queue.storage.deadlines import DeadlineHeap
from tornado_queue.storage.delivery import DeliveryRules, delivers_more
from tornado_queue.storage.events import EventFeed, LocalFeed
from tornado_queue.storage.groups import Groups
from tornado_queue.storage.idempotency import IdempotencyKeys
from tornado_queue.storage.pending import PendingQueue
from tornado_queue.storage.schedule_book import ScheduleBook
from tornado_queue.storage.workers import WorkerBook

# Globals read instead of enum class attributes on the hot paths (a class attribute of an enum
# costs several times a global read).
_PENDING = TaskStatus.PENDING
_PROCESSING = TaskStatus.PROCESSING
_SCHEDULED = TaskStatus.SCHEDULED
_COMPLETED = TaskStatus.COMPLETED
_FAILED = TaskStatus.FAILED
_WAITING = TaskStatus.WAITING
_ENQUEUED = Event.ENQUEUED
_COMPLETED_EVENT = Event.COMPLETED
_DELIVERED = Happened.DELIVERED
_COMPLETED_NOTE = Happened.COMPLETED
_new_entry = tuple.__new__  # `HistoryEntry(...)` without its Python-level __new__, on hot paths
_task_id = ids.task_id
_lease_id = ids.lease_id
_new_object = object.__new__
_init_task = Task.__init__


def _zero_counts() -> dict[TaskStatus, int]:
    return dict.fromkeys(TaskStatus, 0)


def _no_listings() -> dict[TaskStatus, dict[str, None]]:
    # Insertion-ordered dicts used as ordered sets: O(1) add and remove, and the newest last.
    # Pending tasks are listed by their `PendingQueue` (and `Groups.waiting`) instead.
    return {status: {} for status in TaskStatus if status is not TaskStatus.PENDING}


class MemoryStore(Store):
    """Tasks in process memory; lost on restart, shared only by threads of one process.

    State, all guarded by `_lock`:
    - `_tasks`: every known task by id;
    - `_pending`: per queue, its pending tasks in dequeue order (see `PendingQueue`: a deque
      per priority plus a heap of tasks that came back unfinished);
    - `_counts` / `_queue_counts`: tasks per state, overall and per queue, so stats are O(1);
    - `_listed`: per queue, the ids of its tasks in every state but pending in the order they
      entered that state, so listing or purging them never scans;
    - `_groups`: ordered groups, each with its head and the tasks waiting behind it (see
      `Groups`); a waiting task is pending but not in `_pending` until its turn;
    - `_events`: per queue in use, the `Event`s counted (folded into `RETIRED` when it empties);
    - `_settings` by queue, and `_rules` for the queues whose delivery is limited (paused, a
      concurrency cap, a rate limit: see `DeliveryRules`);
    - five `DeadlineHeap`s: leases by expiry, scheduled tasks (delays, retry backoffs) by due
      time, finished tasks by the time they are forgotten, tasks by their expiry, and the
      queues whose rate window opens for a consumer that was turned away; entries are checked
      against the task (or queue) when they fall due;
    - `_keys`: recent idempotency keys.
    Every operation holds the lock, reads the clocks, first applies what is due (`_reap`), and
    tells ready listeners afterwards, even if it raised: an `_Operation` does that. The hot ones
    (a single enqueue, dequeue, complete) spell it out instead, with one try/finally: a
    context manager object costs them more than their own work. Callers only ever get
    snapshots.
    """

    blocking = False

    def __init__(self, policy: Policy | None = None, clock: Clock | None = None) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        if type(self._clock) is SystemClock:
            # The functions themselves: one Python frame less per read, two reads per operation.
            self._time, self._monotonic = time.time, time.monotonic
        else:
            self._time, self._monotonic = self._clock.time, self._clock.monotonic
        self._lock = threading.Lock()
        self._tasks: dict[str, Task] = {}
        self._pending: dict[str, PendingQueue] = {}
        self._counts = _zero_counts()
        self._queue_counts: dict[str, dict[TaskStatus, int]] = {}
        self._listed: dict[str, dict[TaskStatus, dict[str, None]]] = {}
        self._events: dict[str, dict[Event, int]] = {}
        self._leases = DeadlineHeap()
        self._schedule = DeadlineHeap()
        self._retention = DeadlineHeap()
        self._expiries = DeadlineHeap()
        self._windows = DeadlineHeap()  # (when, queue): a rate window opens for a waiter
        self._keys = IdempotencyKeys()
        self._listeners: list[ReadyListener] = []
        self._finished_listeners: list[FinishedListener] = []
        # Ids of tasks finished or deleted under the lock, told to the finished listeners
        # once it is released (kept only while anyone listens).
        self._finished: list[str] = []
        self._settings: dict[str, QueueSettings] = {}
        # Read on every dequeue and completion: a dict lookup, not a settings read.
        self._rules: dict[str, DeliveryRules] = {}
        # Queues whose settings shape new tasks (backoff, expiry): the one-task fast path of
        # enqueue is for the others.
        self._shaping: set[str] = set()
        self._groups = Groups(self._tasks.get)
        self._schedules = ScheduleBook()
        self._workers = WorkerBook()
        self._feed = LocalFeed()
        # No deadline of any heap comes before this: an operation starting earlier has nothing
        # to reap (one comparison instead of a look at four heaps).
        self._reap_from = math.inf

    @property
    def policy(self) -> Policy:
        return self._policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        # What the hot paths need, read once here instead of through the policy every time.
        self._policy = policy
        self._limited = policy.limited
        self._lease_seconds = policy.lease_seconds
        self._max_attempts = policy.max_attempts
        self._retention_seconds = policy.retention_seconds

    # -- commands ---------------------------------------------------------------------------

    def enqueue_many(self, new_tasks: Sequence[NewTask]) -> list[Enqueued]:
        if len(new_tasks) == 1 and not self._limited:
            new_task = new_tasks[0]
            if (
                not new_task.idempotency_key
                and new_task.delay <= 0
                and new_task.group is None
                and new_task.expires_in is None
                and new_task.after is None
                and new_task.queue not in self._shaping
            ):
                return [self._enqueue_one(new_task)]
        # uuid4s and records are built before taking the lock to keep the critical section short.
        fresh = [self._new_record(new_task) for new_task in new_tasks]
        limited = self._limited
        if not any(new_task.idempotency_key for new_task in new_tasks):
            with self._operation() as op:  # the common case: nothing to match
                if limited:
                    self._check_room(new_tasks)
                parents = self._parents(new_tasks, *item_ids(new_tasks, fresh, {}))
                for new_task, task, after in zip(new_tasks, fresh, parents, strict=True):
                    self._add(task, new_task, op, after)
                return [Enqueued(task.id, task.snapshot(), created=True) for task in fresh]
        with self._operation() as op:
            replays = self._match_keys(new_tasks)
            if limited:
                self._check_room(to_create(new_tasks, replays))
            first_ids = {key: first_id for key, (first_id, _) in replays.items()}
            parents = self._parents(new_tasks, *item_ids(new_tasks, fresh, first_ids))
            outcomes = []
            for new_task, task, after in zip(new_tasks, fresh, parents, strict=True):
                key = new_task.idempotency_key
                if key is not None and key in replays:
                    first_id, first = replays[key]
                    snapshot = None if first is None else first.snapshot()
                    outcomes.append(Enqueued(first_id, snapshot, created=False))
                    continue
                self._add(task, new_task, op, after)
                if key is not None:
                    forget_at = op.now + self._retention_seconds
                    self._keys.remember(key, task.id, new_task.fingerprint, forget_at)
                    self._due_at(forget_at)
                    replays[key] = (task.id, task)
                outcomes.append(Enqueued(task.id, task.snapshot(), created=True))
            return outcomes

    def _enqueue_one(self, new_task: NewTask) -> Enqueued:
        """`enqueue_many` of one task with no key, delay, group or expiry, into a queue whose
        settings shape nothing, with no limits: the common case."""
        # Allocated and initialised apart: a class call with keywords builds a dict for them.
        task = _new_object(Task)
        _init_task(
            task,
            _task_id(),
            new_task.payload,
            0.0,
            new_task.max_attempts or self._default_attempts(new_task.queue),
            queue=new_task.queue,
            priority=new_task.priority,
        )
        queue = task.queue
        ready = None
        lock = self._lock
        lock.acquire()
        try:
            wall = self._time()
            now = self._monotonic()
            if now >= self._reap_from:
                ready = self._reap_now(now, wall)
            # `_add` spelled out for a task that goes straight to its queue's tail.
            task.created_at = task.available_at = wall
            self._tasks[task.id] = task
            pending = self._pending.get(queue)
            if pending is None:
                pending = self._open_queue(queue)
            self._events[queue][_ENQUEUED] += 1
            self._counts[_PENDING] += 1
            self._queue_counts[queue][_PENDING] += 1
            pending.append(task)
            copy = task.snapshot()
            if ready is not None:  # told together with what reaping made ready
                ready[queue] = ready.get(queue, 0) + 1
            if self._feed.on:
                self._feed.record(task, HistoryEntry(wall, Happened.ENQUEUED))
        finally:
            finished = self._take_finished() if self._finished else None
            self._lock.release()
            if ready:
                self._notify_ready(ready)
            if finished:
                self._notify_finished(finished)
            if self._feed.on:
                self._feed.flush()
        if ready is None:
            for listener in self._listeners:
                listener(queue, 1)
        return Enqueued(task.id, copy, created=True)

    def dequeue_many(  # noqa: PLR0912, PLR0915 - spelled out: it runs for every task handed out
        self,
        count: int,
        lease_seconds: float | None = None,
        queue: str = DEFAULT_QUEUE,
        worker: str | None = None,
        push: bool = False,
    ) -> list[Task]:
        lease = lease_seconds or self._default_lease(queue)
        taken: list[Task] = []
        ready = None
        self._lock.acquire()
        try:
            wall = self._time()
            now = self._monotonic()
            if now >= self._reap_from:
                ready = self._reap_now(now, wall)
            # A push queue has rules (`push` is a delivery setting): a queue without any is
            # pulled, so the common case pays one test of `push` for it.
            rules = self._rules.get(queue) if self._rules else None
            if rules is not None:
                if rules.push != push:
                    if rules.push:
                        raise PushQueue(queue)
                    return taken  # a pusher asking for a queue no longer pushed
            elif push:
                return taken
            pending = self._pending.get(queue)
            if pending is None:
                return taken
            counts, queue_counts = self._counts, self._queue_counts[queue]
            if rules is not None:
                count = rules.allowance(count, queue_counts[_PROCESSING], now)
            # Leasing spelled out (`_move` to processing, `_push_lease`), with what every task
            # of the batch shares read once: this runs for every task handed out.
            processing = self._listed[queue][_PROCESSING]
            leases, is_lease_entry = self._leases, self._is_lease_entry
            deadline, expires_at = now + lease, wall + lease
            feed = self._feed if self._feed.on else None
            while len(taken) < count:
                task = pending.pop()
                if task is None:
                    break
                task_id = task.id
                counts[_PENDING] -= 1
                counts[_PROCESSING] += 1
                queue_counts[_PENDING] -= 1
                queue_counts[_PROCESSING] += 1
                processing[task_id] = None
                task.status = _PROCESSING
                task.attempts += 1
                task.lease_id = lease_id = _lease_id()
                task.started_at = wall
                task.lease_deadline = deadline
                task.lease_expires_at = expires_at
                leases.push(deadline, task_id, counts[_PROCESSING], is_lease_entry)
                # Its history and worker, and the feed while it is on.
                entry = _new_entry(HistoryEntry, (wall, _DELIVERED, lease_id, worker, None))
                history = task.history
                if history is None:
                    task.history = (entry,)
                else:
                    add_history(task, entry)
                if worker is not None:
                    self._workers.took(worker, task_id, wall)
                if feed is not None:
                    feed.record(task, entry)
                taken.append(task.snapshot())
            if taken:
                self._reap_from = min(self._reap_from, deadline)
            if rules is not None and rules.delivered(len(taken), now):
                self._wake_when_open(queue, rules)
            return taken
        finally:
            finished = self._take_finished() if self._finished else None
            self._lock.release()
            if ready:
                self._notify_ready(ready)
            if finished:
                self._notify_finished(finished)
            if self._feed.on:
                self._feed.flush()

    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        with self._operation() as op:
            task = self._leased_task(task_id, "heartbeat", lease_id)
            lease = lease_seconds or self._default_lease(task.queue)
            task.lease_deadline = op.now + lease
            task.lease_expires_at = op.wall + lease
            self._push_lease(task)
            return task.snapshot()

    def complete(  # noqa: PLR0912, PLR0915 - spelled out: it runs for every task completed
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        ready = None
        lock = self._lock
        lock.acquire()
        try:
            wall = self._time()
            now = self._monotonic()
            if now >= self._reap_from:
                ready = self._reap_now(now, wall)
            task = self._tasks.get(task_id)
            if task is None:
                raise TaskNotFound(task_id)
            if task.lease_id != lease_id or task.status is not _PROCESSING:
                # Not under the task's current lease: a repeat, unfenced, or refused.
                if repeats_closing("complete", task, lease_id):
                    return task.snapshot()  # the first result stands
                task = self._leased_task(task_id, "complete", lease_id)
            task.closed_lease = lease_id
            ended, history = task.lease_id, task.history
            worker = history[-1][3] if history else None  # `holder`
            task.lease_id = task.lease_deadline = task.lease_expires_at = None  # `_end_lease`
            task.result = result
            # `_finish` and `_move` spelled out for a processing task that completes.
            queue = task.queue
            counts, queue_counts = self._counts, self._queue_counts[queue]
            counts[_PROCESSING] -= 1
            counts[_COMPLETED] += 1
            queue_counts[_PROCESSING] -= 1
            queue_counts[_COMPLETED] += 1
            del self._listed[queue][_PROCESSING][task_id]
            self._listed[queue][_COMPLETED][task_id] = None
            task.status = _COMPLETED
            task.finished_at = wall
            if self._finished_listeners:
                self._finished.append(task_id)
            task.forget_at = forget_at = now + self._retention_seconds
            finished = counts[_COMPLETED] + counts[_FAILED]
            self._retention.push(forget_at, task_id, finished, self._is_retention_entry)
            self._reap_from = min(self._reap_from, forget_at)
            self._events[queue][_COMPLETED_EVENT] += 1
            if worker is not None:
                self._workers.let_go(worker, task_id, "completed")
            entry = _new_entry(HistoryEntry, (wall, _COMPLETED_NOTE, ended, worker, None))
            if history is not None and len(history) < HISTORY_LENGTH:  # `add_history`
                task.history = (*history, entry)
            else:
                add_history(task, entry)
            if self._feed.on:
                self._feed.record(task, entry)
            if task.group is not None or (self._rules and queue in self._rules):
                # A group's next task, or a free slot under the queue's cap: tell waiters.
                ready = self._turn_ended(task, ready if ready is not None else {})
            if task.extras is not None and task.extras.dependents:
                ready = self._release_dependents(task, ready or {}, now, wall)
            return task.snapshot()
        finally:
            finished = self._take_finished() if self._finished else None
            self._lock.release()
            if ready:
                self._notify_ready(ready)
            if finished:
                self._notify_finished(finished)
            if self._feed.on:
                self._feed.flush()

    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
        retry_after: float | None = None,
    ) -> Task:
        with self._operation() as op:
            task = self._known_task(task_id)
            if repeats_closing("fail", task, lease_id):
                return task.snapshot()  # no second attempt counted, no second backoff
            task = self._leased_task(task_id, "fail", lease_id)
            queue = task.queue
            task.closed_lease = lease_id
            ended = task.lease_id
            worker = self._let_go(task, "failed")
            self._end_lease(task)
            task.error = error
            task.started_at = None
            if self._expired(task, op.now):
                self._expire(task, op)  # never delivered again after its expiry
            elif retry and task.attempts < task.max_attempts:
                backoff = self.policy.backoff(task.attempts, task.backoff, retry_after)
                self._schedule_or_append(task, backoff, op)
                self._note(task, HistoryEntry(op.wall, Happened.FAILED, ended, worker, error))
            else:
                self._dead(task, op, ended, worker)
            self._slot_freed(queue, op)
            return task.snapshot()

    def progress(self, task_id: str, value: bytes, lease_id: str | None = None) -> Task:
        with self._operation():
            task = self._leased_task(task_id, "progress", lease_id)
            task.progress = value
            return task.snapshot()

    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        with self._operation() as op:
            task = self._leased_task(task_id, "release", lease_id)
            self._let_go(task, None)
            self._end_lease(task)
            if self._expired(task, op.now):
                self._expire(task, op)
            else:
                self._put_back(task, op)
            self._slot_freed(task.queue, op)
            return task.snapshot()

    def retry(self, task_id: str) -> Task:
        with self._operation() as op:
            task = self._known_task(task_id)
            if task.status is not TaskStatus.FAILED:
                raise not_failed(task_id, task.status.value)
            self._revive(task, op)
            return task.snapshot()

    def retry_failed(self, queue: str, limit: int) -> int:
        with self._operation() as op:
            listed = self._listed.get(queue)
            if listed is None:
                return 0
            # The most recently failed first, as a page of them is listed.
            chosen = list(islice(reversed(listed[_FAILED]), limit))
            for task_id in chosen:
                self._revive(self._tasks[task_id], op)
            return len(chosen)

    def delete(self, task_id: str) -> None:
        with self._operation() as op:
            task = self._known_task(task_id)
            if task.status is TaskStatus.PROCESSING:
                raise still_processing(task_id)
            self._remove(task, op)

    def purge(self, queue: str, status: TaskStatus, limit: int) -> int:
        if status not in PURGEABLE:
            raise InvalidTransition(f"tasks that are {status.value} cannot be purged")
        with self._operation() as op:
            if queue not in self._queue_counts:
                return 0
            if status is _PENDING:
                # Those waiting behind a group's head first: deleting a head first would only
                # hand its turn to a task about to be deleted too.
                waiting = map(self._tasks.__getitem__, self._groups.waiting.get(queue, {}))
                ordered = chain(waiting, self._pending[queue].in_order())
            else:
                ordered = map(self._tasks.__getitem__, reversed(self._listed[queue][status]))
            chosen = list(islice(ordered, limit))
            for task in chosen:
                self._remove(task, op)
            return len(chosen)

    def reap(self) -> None:
        with self._operation():
            pass

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        with self._operation():
            task = self._tasks.get(task_id)
            return None if task is None else task.snapshot()

    def view(
        self,
        limit: int,
        offset: int = 0,
        queue: str = DEFAULT_QUEUE,
        status: TaskStatus = TaskStatus.PENDING,
    ) -> tuple[list[Task], int]:
        with self._operation():
            if queue not in self._queue_counts:
                return [], 0
            if status is TaskStatus.PENDING:
                # In dequeue order, then those waiting behind their group's head.
                waiting = map(self._tasks.__getitem__, self._groups.waiting.get(queue, {}))
                ordered = chain(self._pending[queue].in_order(), waiting)
            else:
                ordered = map(self._tasks.__getitem__, reversed(self._listed[queue][status]))
            page = islice(ordered, offset, offset + limit)
            total = self._queue_counts[queue][status]
            return [task.snapshot() for task in page], total

    def stats(self, queue: str | None = None) -> dict[TaskStatus, int]:
        with self._operation():
            if queue is None:
                return dict(self._counts)
            return dict(self._queue_counts.get(queue) or _zero_counts())

    def queues(self) -> dict[str, dict[TaskStatus, int]]:
        with self._operation():
            listing = {name: dict(counts) for name, counts in self._queue_counts.items()}
            for name in self._settings:  # kept while it has a setting, tasks or not
                listing.setdefault(name, _zero_counts())
            return listing

    def queue_settings(self, queue: str) -> QueueSettings:
        with self._operation():
            return self._settings.get(queue) or QueueSettings()

    def configure(self, queue: str, changes: Mapping[str, object]) -> QueueSettings:
        with self._operation() as op:
            before = self._settings.get(queue) or QueueSettings()
            after = replace(before, **changes)
            if after.is_default():
                self._settings.pop(queue, None)
            else:
                self._settings[queue] = after
            rules = DeliveryRules.of(after, self._rules.get(queue))
            if rules is None:
                self._rules.pop(queue, None)
            else:
                self._rules[queue] = rules
            if after.retry_backoff is not None or after.ttl_seconds is not None:
                self._shaping.add(queue)
            else:
                self._shaping.discard(queue)
            counts = self._queue_counts.get(queue)
            if counts and counts[_PENDING] and delivers_more(before, after):
                op.ready[queue] = counts[_PENDING]  # resumed or loosened: wake its waiters
            return after

    def configured_queues(self) -> dict[str, QueueSettings]:
        with self._operation():
            return dict(self._settings)

    # -- schedules ----------------------------------------------------------------------------

    def put_schedule(self, schedule: Schedule) -> tuple[Schedule, bool]:
        with self._operation() as op:
            before = self._schedules.get(schedule.name)
            if before is None and len(self._schedules) >= MAX_SCHEDULES:
                raise TooManySchedules(MAX_SCHEDULES)
            stored = replace(
                schedule.placed(op.wall),
                last_run_at=before and before.last_run_at,
                revision=(before.revision if before else 0) + 1,
            )
            self._schedules.put(stored)
            return stored, before is None

    def get_schedule(self, name: str) -> Schedule | None:
        with self._lock:
            return self._schedules.get(name)

    def schedules(self) -> list[Schedule]:
        with self._lock:
            return self._schedules.sorted()

    def delete_schedule(self, name: str) -> bool:
        with self._lock:
            return self._schedules.delete(name)

    def fire_due_schedules(self, limit: int = SCHEDULE_ROUND) -> Round:
        with self._operation() as op:

            def enqueue(new_task: NewTask) -> str:
                if self._limited:
                    self._check_room([new_task])
                task = self._new_record(new_task)
                self._add(task, new_task, op, None)
                return task.id

            fired = []
            for _ in range(limit):
                schedule = self._schedules.pop_due(op.wall)
                if schedule is None:
                    break
                after, outcome = fire(schedule, op.wall, enqueue)
                self._schedules.put(after)
                if outcome is not None:
                    fired.append(outcome)
            next_due = self._schedules.next_due()
            return Round(fired, next_due is not None and next_due <= op.wall, next_due)

    def totals(self) -> dict[str, dict[Event, int]]:
        with self._operation():
            return {name: dict(events) for name, events in self._events.items()}

    def seconds_to_next_deadline(self) -> float | None:
        with self._lock:
            heaps = (self._leases, self._schedule, self._windows)
            deadlines = [heap.first() for heap in heaps]
            now = self._monotonic()
        known = [deadline for deadline in deadlines if deadline is not None]
        return min(known) - now if known else None

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    def add_finished_listener(self, listener: FinishedListener) -> None:
        with self._lock:
            self._finished_listeners = [*self._finished_listeners, listener]

    def saw_worker(self, worker_id: str) -> None:
        with self._lock:
            self._workers.seen(worker_id, self._time())

    def workers(self) -> list[WorkerInfo]:
        with self._operation() as op:
            return self._workers.listing(op.wall)

    @property
    def event_feed(self) -> EventFeed:
        return self._feed

    def _operation(self) -> _Operation:
        return _Operation(self)

    # A queue's own defaults; one dict read (a consistent value, under the GIL) and none at all
    # while no queue has a setting.

    def _default_attempts(self, queue: str) -> int:
        settings = self._settings.get(queue) if self._settings else None
        return (settings and settings.max_attempts) or self._max_attempts

    def _default_lease(self, queue: str) -> float:
        settings = self._settings.get(queue) if self._settings else None
        return (settings and settings.lease_seconds) or self._lease_seconds

    # -- internals: every method below runs with the lock held -------------------------------

    def _new_record(self, new_task: NewTask) -> Task:
        max_attempts = new_task.max_attempts or self._default_attempts(new_task.queue)
        task = Task(
            _task_id(),
            new_task.payload,
            0.0,
            max_attempts,
            queue=new_task.queue,
            priority=new_task.priority,
        )
        task.group = new_task.group
        task.schedule, task.fire_time = new_task.schedule, new_task.fire_time
        return task

    def _note(self, task: Task, entry: HistoryEntry) -> None:
        """Record a change in the task's history and, while it is on, the event feed."""
        add_history(task, entry)
        if self._feed.on:
            self._feed.record(task, entry)

    def _let_go(self, task: Task, outcome: str | None) -> str | None:
        """A processing task stops processing (`completed`, `failed` or None for neither):
        its worker, if it named one, holds it no more. Returns that worker."""
        worker = holder(task)
        if worker is not None:
            self._workers.let_go(worker, task.id, outcome)
        return worker

    def _check_room(self, created: Sequence[NewTask]) -> None:
        def waiting(queue: str) -> int:
            counts = self._queue_counts.get(queue)
            return counts[TaskStatus.PENDING] + counts[TaskStatus.SCHEDULED] if counts else 0

        adding = Counter(new_task.queue for new_task in created)
        self.policy.check_room(
            adding, waiting, lambda: sum(self._counts.values()), self._queue_counts.keys
        )

    def _match_keys(self, new_tasks: Sequence[NewTask]) -> dict[str, tuple[str, Task | None]]:
        """Earlier tasks (id, and the task if it still exists) for the batch's idempotency keys;
        raises before anything changes if a key comes with different content (against memory,
        or twice within the batch)."""
        seen: dict[str, bytes] = {}
        replays: dict[str, tuple[str, Task | None]] = {}
        for new_task in new_tasks:
            key = new_task.idempotency_key
            if not key:
                continue
            remembered = self._keys.get(key)
            fingerprint = remembered.fingerprint if remembered else seen.get(key)
            if fingerprint is not None and fingerprint != new_task.fingerprint:
                raise key_conflict(key)
            seen[key] = new_task.fingerprint
            if remembered is not None:
                replays[key] = (remembered.task_id, self._tasks.get(remembered.task_id))
        return replays

    def _add(
        self, task: Task, new_task: NewTask, op: _Operation, after: tuple[str, ...] | None
    ) -> None:
        task.created_at = task.available_at = op.wall
        # The queue's settings as they are now shape the task for good (its backoff, expiry).
        settings = self._settings.get(task.queue) if self._settings else None
        if settings is not None and settings.retry_backoff is not None:
            task.backoff = settings.retry_backoff
        expires_in = new_task.expires_in or (settings and settings.ttl_seconds)
        self._tasks[task.id] = task
        if expires_in:
            task.expires_at = op.wall + expires_in
            task.expiry = op.now + expires_in
            self._expiries.push(task.expiry, task.id, len(self._tasks), self._is_expiry_entry)
            self._due_at(task.expiry)
        if task.queue not in self._queue_counts:
            self._open_queue(task.queue)
        self._events[task.queue][Event.ENQUEUED] += 1
        self._count(task.queue, task.status, +1)
        if after and self._wait_for(task, after, new_task.delay):
            self._move(task, _WAITING)
            if self._feed.on:
                self._feed.record(task, HistoryEntry(op.wall, Happened.ENQUEUED))
            self._note(task, HistoryEntry(op.wall, Happened.WAITING))
            return
        self._schedule_or_append(task, new_task.delay, op)
        if self._feed.on:
            self._feed.record(task, HistoryEntry(op.wall, Happened.ENQUEUED))

    def _parents(
        self, new_tasks: Sequence[NewTask], stands_for: list[str], creates: list[bool]
    ) -> list[tuple[str, ...] | None]:
        """`check_parents` against the tasks held."""

        def lookup(parent_id: str) -> tuple[bool, int] | None:
            parent = self._tasks.get(parent_id)
            if parent is None:
                return None
            extras = parent.extras
            held = len(extras.dependents) if extras and extras.dependents else 0
            return parent.status is _FAILED, held

        return check_parents(new_tasks, stands_for, creates, lookup)

    def _wait_for(self, task: Task, after: tuple[str, ...], delay: float) -> bool:
        """Link a new task to its parents; True when some parent is not completed yet (the
        task then waits, and its delay runs from when the last one completes)."""
        open_parents = 0
        for parent_id in after:
            parent = self._tasks[parent_id]
            links = parent.extras
            if links is None:
                links = parent.extras = Extras()
            if links.dependents is None:
                links.dependents = []
            links.dependents.append(task.id)
            if parent.status is not _COMPLETED:
                open_parents += 1
        extras = task.extras
        if extras is None:
            extras = task.extras = Extras()
        extras.after, extras.waiting_on, extras.hold = after, open_parents, delay
        return open_parents > 0

    def _release_dependents(
        self, parent: Task, ready: dict[str, int], now: float, wall: float
    ) -> dict[str, int]:
        """After a completion: each dependent whose last parent this was leaves `waiting` for
        its queue (or for `scheduled`, for its delay). Returns `ready` with what became ready."""
        op = _Operation(self)
        op.ready, op.now, op.wall = ready, now, wall
        assert parent.extras is not None and parent.extras.dependents is not None
        for child_id in parent.extras.dependents:
            child = self._tasks.get(child_id)
            if child is None or child.status is not _WAITING:
                continue  # deleted, expired or failed meanwhile
            links = child.extras
            assert links is not None
            links.waiting_on -= 1
            if links.waiting_on <= 0:
                self._schedule_or_append(child, links.hold, op)
                self._note(child, HistoryEntry(wall, Happened.RELEASED))
        return op.ready

    def _fail_dependents(self, parent: Task, reason: str, op: _Operation) -> None:
        """A parent failed (`reason` its error maker's text) or was deleted: its waiting
        dependents fail, naming it, and theirs in turn, naming them, down the chain."""
        stack = [(parent, reason)]
        while stack:
            task, why = stack.pop()
            links = task.extras
            if links is None or not links.dependents:
                continue
            for child_id in links.dependents:
                child = self._tasks.get(child_id)
                if child is None or child.status is not _WAITING:
                    continue
                child.error = (
                    parent_deleted_error(task.id)
                    if why == "deleted"
                    else parent_failed_error(task.id)
                )
                self._leave_group(child, op)
                self._finish(child, _FAILED, op.now, op.wall, Event.FAILED, cascade=False)
                self._note(child, HistoryEntry(op.wall, Happened.DEAD, error=child.error))
                stack.append((child, "failed"))

    def _open_queue(self, queue: str) -> PendingQueue:
        """Start keeping a queue that holds no task yet."""
        self._queue_counts[queue] = _zero_counts()
        pending = self._pending[queue] = PendingQueue(self._tasks.get)
        self._listed[queue] = _no_listings()
        if queue not in self._events:
            self._events[queue] = dict.fromkeys(Event, 0)
        return pending

    def _reap_now(self, now: float, wall: float) -> dict[str, int]:
        """`_reap` for an operation that read the clocks itself: what it made ready, by queue."""
        op = _Operation(self)
        op.now, op.wall = now, wall
        self._reap(op)
        return op.ready

    def _reap(self, op: _Operation) -> None:
        """Apply what is due, in this order: expired leases, due scheduled tasks, expiries,
        opened rate windows, retention, then idempotency keys."""
        now = op.now
        if now < self._reap_from:
            return
        for heap, is_entry, apply in (
            (self._leases, self._is_lease_entry, self._lease_ran_out),
            (self._schedule, self._is_scheduled_entry, self._scheduled_due),
            (self._expiries, self._is_expiry_entry, self._expiry_due),
            (self._windows, self._is_window_entry, self._window_opened),
            (self._retention, self._is_retention_entry, self._retention_due),
        ):
            if heap.due(now):
                for deadline, key in heap.pop_due(now):
                    if is_entry(deadline, key):
                        apply(key, op)
        self._keys.forget_due(now, self._key_needed_until)
        heaps = (self._leases, self._schedule, self._expiries, self._windows, self._retention)
        heads = [heap.first() for heap in heaps]
        heads.append(self._keys.first_deadline())
        self._reap_from = min((head for head in heads if head is not None), default=math.inf)

    def _lease_ran_out(self, task_id: str, op: _Operation) -> None:
        self._expire_lease(self._tasks[task_id], op)

    def _scheduled_due(self, task_id: str, op: _Operation) -> None:
        task = self._tasks[task_id]
        task.due = None
        self._append(task, op)

    def _expiry_due(self, task_id: str, op: _Operation) -> None:
        task = self._tasks[task_id]
        # A processing task runs on; it expires when its lease ends (see `_expired`).
        if task.status is not _PROCESSING:
            self._expire(task, op)

    def _retention_due(self, task_id: str, _op: _Operation) -> None:
        self._forget(self._tasks.pop(task_id))

    def _due_at(self, deadline: float) -> None:
        """Note a deadline pushed on a heap, so `_reap` looks again when it comes."""
        self._reap_from = min(self._reap_from, deadline)

    def _key_needed_until(self, task_id: str, now: float) -> float | None:
        """How long an idempotency key must outlive its term: until its task is forgotten (a
        task not finished yet is looked at again one retention period later)."""
        task = self._tasks.get(task_id)
        if task is None:
            return None
        if task.forget_at is not None:
            return task.forget_at
        return now + self._retention_seconds

    def _expire_lease(self, task: Task, op: _Operation) -> None:
        ended = task.lease_id
        worker = self._let_go(task, None)
        self._end_lease(task)
        self._events[task.queue][Event.LEASE_EXPIRED] += 1
        queue = task.queue
        if self._expired(task, op.now):
            self._note(task, HistoryEntry(op.wall, Happened.LEASE_EXPIRED, ended, worker))
            self._expire(task, op)
        elif task.attempts >= task.max_attempts:
            task.error = "lease expired"
            self._note(task, HistoryEntry(op.wall, Happened.LEASE_EXPIRED, ended, worker))
            self._dead(task, op, ended, worker)
        else:
            self._put_back(task, op)
            self._note(task, HistoryEntry(op.wall, Happened.LEASE_EXPIRED, ended, worker))
        self._slot_freed(queue, op)

    def _expired(self, task: Task, now: float) -> bool:
        return task.expiry is not None and task.expiry <= now

    def _expire(self, task: Task, op: _Operation) -> None:
        """A task past its expiry, pending, scheduled or just off its lease, becomes failed
        and is never delivered (nor dead-lettered)."""
        self._unready(task)
        self._leave_group(task, op)
        task.error = EXPIRED_ERROR
        task.started_at = None
        self._finish(task, TaskStatus.FAILED, op.now, op.wall, Event.EXPIRED)
        self._note(task, HistoryEntry(op.wall, Happened.EXPIRED, error=EXPIRED_ERROR))

    def _dead(self, task: Task, op: _Operation, lease_id: str | None, worker: str | None) -> None:
        """A processing task that failed for good (under `lease_id`, delivered to `worker`): to
        its queue's dead-letter queue, if it has one, else `failed`."""
        settings = self._settings.get(task.queue) if self._settings else None
        if settings is not None and settings.dead_letter_queue is not None:
            self._dead_letter(task, settings.dead_letter_queue, op)
            entry = HistoryEntry(op.wall, Happened.DEAD_LETTERED, lease_id, worker, task.error)
            self._note(task, entry)
            return
        self._leave_group(task, op)
        self._finish(task, TaskStatus.FAILED, op.now, op.wall, Event.FAILED)
        self._note(task, HistoryEntry(op.wall, Happened.DEAD, lease_id, worker, task.error))

    def _dead_letter(self, task: Task, queue: str, op: _Operation) -> None:
        """Move a task that failed for good to `queue` as pending, keeping its id and error."""
        source = task.queue
        self._leave_group(task, op)
        self._events[source][Event.DEAD_LETTERED] += 1
        self._transfer(task, queue)
        task.attempts = 0
        task.started_at = None
        task.dead_lettered_from = source
        self._append(task, op)
        if task.expiry is not None:  # its entry may have fallen due while it was processing
            self._expiries.push(task.expiry, task.id, len(self._tasks), self._is_expiry_entry)
            self._due_at(task.expiry)

    def _transfer(self, task: Task, queue: str) -> None:
        """Move a task, in its state, to another queue (which it may start)."""
        listed = self._listed[task.queue]
        if task.status in listed:
            del listed[task.status][task.id]
        self._count(task.queue, task.status, -1)
        task.queue = queue
        if queue not in self._queue_counts:
            self._open_queue(queue)
        self._count(queue, task.status, +1)
        listed = self._listed[queue]
        if task.status in listed:
            listed[task.status][task.id] = None

    def _revive(self, task: Task, op: _Operation) -> None:
        """A failed task back in its queue with fresh attempts. An operator's retry runs it
        however old it is: its expiry goes."""
        task.attempts = 0
        task.error = task.finished_at = task.forget_at = task.result = task.started_at = None
        task.progress = None
        task.expires_at = task.expiry = None
        self._schedule_or_append(task, 0.0, op)
        self._note(task, HistoryEntry(op.wall, Happened.RETRIED))

    def _remove(self, task: Task, op: _Operation) -> None:
        """Delete a task that is not processing (what waits for it fails)."""
        self._unready(task)
        self._leave_group(task, op)
        if task.extras is not None and task.extras.dependents:
            self._fail_dependents(task, "deleted", op)
        del self._tasks[task.id]
        self._forget(task)
        if self._finished_listeners:
            self._finished.append(task.id)  # a waiter on it learns it is gone
        if self._feed.on:
            self._feed.record(task, HistoryEntry(op.wall, Happened.DELETED))

    def _push_lease(self, task: Task) -> None:
        assert task.lease_deadline is not None
        processing = self._counts[TaskStatus.PROCESSING]
        self._leases.push(task.lease_deadline, task.id, processing, self._is_lease_entry)
        self._due_at(task.lease_deadline)

    # Whether a heap entry still stands for its task's current deadline.
    def _is_lease_entry(self, deadline: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.lease_deadline == deadline

    def _is_scheduled_entry(self, due: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.status is TaskStatus.SCHEDULED and task.due == due

    def _is_retention_entry(self, forget_at: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.status in FINISHED and task.forget_at == forget_at

    def _is_expiry_entry(self, expiry: float, task_id: str) -> bool:
        task = self._tasks.get(task_id)
        return task is not None and task.expiry == expiry and task.status not in FINISHED

    def _is_window_entry(self, opens: float, queue: str) -> bool:
        rules = self._rules.get(queue)
        return rules is not None and rules.wake_at == opens

    def _wake_when_open(self, queue: str, rules: DeliveryRules) -> None:
        """A consumer was turned away by the rate limit: wake the queue's waiters when the
        window lets the next task through."""
        assert rules.wake_at is not None
        self._windows.push(rules.wake_at, queue, len(self._rules), self._is_window_entry)
        self._due_at(rules.wake_at)

    def _window_opened(self, queue: str, op: _Operation) -> None:
        rules = self._rules[queue]
        rules.wake_at = None
        counts = self._queue_counts.get(queue)
        if counts and counts[_PENDING] and rules.rate is not None:
            op.ready[queue] = op.ready.get(queue, 0) + min(counts[_PENDING], rules.rate.tasks)

    def _slot_freed(self, queue: str, op: _Operation) -> None:
        """A task of `queue` stopped processing: under a concurrency cap, a waiter may now
        take the next one."""
        rules = self._rules.get(queue) if self._rules else None
        if rules is not None and rules.max_processing is not None:
            counts = self._queue_counts.get(queue)
            if counts and counts[_PENDING] and queue not in op.ready:
                op.became_ready(queue)

    def _turn_ended(self, task: Task, ready: dict[str, int]) -> dict[str, int]:
        """After a completion (spelled out in `complete`): the task's group moves on, and a
        slot under its queue's cap is free. Returns `ready` with what became ready."""
        op = _Operation(self)
        op.ready = ready
        self._leave_group(task, op)
        self._slot_freed(task.queue, op)
        return op.ready

    def _leave_group(self, task: Task, op: _Operation) -> None:
        """The task's turn in its group is over, or it left the group: the next one's turn."""
        if task.group is None:
            return
        promoted = self._groups.leave(task)
        if promoted is not None:
            self._pending[promoted.queue].put_back(promoted)  # at its place in line
            op.became_ready(promoted.queue)

    def _unready(self, task: Task) -> None:
        """Take a pending task out of its queue's pending order (a task waiting behind its
        group's head is not in it)."""
        if task.status is _PENDING and (task.group is None or not self._groups.is_waiting(task)):
            self._pending[task.queue].discard(task)

    def _end_lease(self, task: Task) -> None:
        # The heap entry stays behind; it no longer matches `lease_deadline` and is skipped.
        task.lease_id = task.lease_deadline = task.lease_expires_at = None

    def _schedule_or_append(self, task: Task, delay: float, op: _Operation) -> None:
        """Make a task wait `delay` seconds as scheduled, or join its queue's tail now."""
        if delay <= 0:
            task.available_at = op.wall
            self._append(task, op)
            return
        task.due = op.now + delay
        task.available_at = op.wall + delay
        self._move(task, TaskStatus.SCHEDULED)
        scheduled = self._counts[TaskStatus.SCHEDULED]
        self._schedule.push(task.due, task.id, scheduled, self._is_scheduled_entry)
        self._due_at(task.due)

    def _append(self, task: Task, op: _Operation) -> None:
        """The task is ready: the tail of its queue, or of its group when it is not the
        group's turn (it becomes deliverable when it is)."""
        self._move(task, TaskStatus.PENDING)
        pending = self._pending[task.queue]
        if task.group is not None:
            pending.take_seq(task)
            if not self._groups.join(task):
                return
        pending.append(task)
        op.became_ready(task.queue)

    def _put_back(self, task: Task, op: _Operation) -> None:
        """A task handed out but not finished goes back to its place at the front."""
        task.started_at = None
        self._move(task, TaskStatus.PENDING)
        self._pending[task.queue].put_back(task)
        op.became_ready(task.queue)

    def _finish(
        self,
        task: Task,
        status: TaskStatus,
        now: float,
        wall: float,
        event: Event,
        *,
        cascade: bool = True,
    ) -> None:
        self._move(task, status)
        self._events[task.queue][event] += 1
        task.finished_at = wall
        if self._finished_listeners:
            self._finished.append(task.id)
        task.forget_at = forget_at = now + self._retention_seconds
        counts = self._counts
        finished = counts[_COMPLETED] + counts[_FAILED]
        self._retention.push(forget_at, task.id, finished, self._is_retention_entry)
        self._reap_from = min(self._reap_from, forget_at)
        if cascade and status is _FAILED and task.extras is not None and task.extras.dependents:
            # Failed for good: whatever waits for it never runs.
            op = _Operation(self)
            op.now, op.wall = now, wall
            self._fail_dependents(task, "failed", op)

    def _known_task(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def _leased_task(self, task_id: str, action: str, lease_id: str | None) -> Task:
        """The live task if it is processing under `lease_id` (when given); raises otherwise."""
        task = self._known_task(task_id)
        if lease_id is not None and task.lease_id != lease_id:
            raise lease_lost(action, task_id, lease_id, task.status.value)
        if task.status is not TaskStatus.PROCESSING:
            raise not_processing(action, task_id, task.status.value)
        return task

    def _move(self, task: Task, status: TaskStatus) -> None:
        """Change a task's state, its listing and the per-state counters together."""
        old = task.status
        if old is not status:
            # Spelled out rather than two `_count` calls: this runs several times per task, and
            # a move never empties a queue (the task stays in it).
            counts, queue_counts = self._counts, self._queue_counts[task.queue]
            counts[status] += 1
            queue_counts[status] += 1
            counts[old] -= 1
            queue_counts[old] -= 1
            listed = self._listed[task.queue]
            if old in listed:
                del listed[old][task.id]
            if status in listed:
                listed[status][task.id] = None
            task.status = status

    def _forget(self, task: Task) -> None:
        """Account for a task removed from `_tasks` (deleted, or past its retention)."""
        listed = self._listed[task.queue]
        if task.status in listed:
            del listed[task.status][task.id]
        self._count(task.queue, task.status, -1)

    def _count(self, queue: str, status: TaskStatus, delta: int) -> None:
        self._counts[status] += delta
        counts = self._queue_counts[queue]
        counts[status] += delta
        if delta < 0 and not counts[status] and not any(counts.values()):
            # A queue is listed while it holds tasks: forgetting empty ones keeps memory and
            # every walk over the queues bounded by the queues in use.
            del self._queue_counts[queue]
            del self._pending[queue]
            del self._listed[queue]
            retired = self._events.setdefault(RETIRED, dict.fromkeys(Event, 0))
            for event, n in self._events.pop(queue).items():
                retired[event] += n

    def _take_finished(self) -> list[str]:
        """The ids finished since the last call (with the lock held)."""
        finished, self._finished = self._finished, []
        return finished

    def _notify_finished(self, finished: list[str]) -> None:
        # After the lock is released, as for ready listeners.
        for task_id in finished:
            for listener in self._finished_listeners:
                listener(task_id)

    def _notify_ready(self, ready: dict[str, int]) -> None:
        # Called after the lock is released; the list is replaced, never mutated, so reading
        # it without the lock is safe.
        for queue, count in ready.items():
            for listener in self._listeners:
                listener(queue, count)


class _Operation:
    """One store operation: holds the lock with the clocks read and due work applied, and tells
    ready listeners afterwards (outside the lock), whether the operation returned or raised."""

    __slots__ = ("now", "ready", "store", "wall")

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.ready: dict[str, int] = {}

    def became_ready(self, queue: str) -> None:
        self.ready[queue] = self.ready.get(queue, 0) + 1

    def __enter__(self) -> _Operation:
        store = self.store
        store._lock.acquire()
        try:
            # Clocks are read under the lock so timestamps agree with the order of operations.
            self.wall, self.now = store._time(), store._monotonic()
            store._reap(self)
        except BaseException:
            store._lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        store = self.store
        finished = store._take_finished() if store._finished else None
        store._lock.release()
        if self.ready:
            store._notify_ready(self.ready)
        if finished:
            store._notify_finished(finished)
        if store._feed.on:
            store._feed.flush()
