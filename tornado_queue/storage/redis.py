"""RedisStore: several tornado_queue servers share one queue through one Redis."""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tornado_queue import ids
from tornado_queue.clock import Clock, SystemClock
from tornado_queue.errors import (
    InvalidTransition,
    OutcomeUnknown,
    PushQueue,
    QueueError,
    StoreUnavailable,
    TaskNotFound,
    TooManySchedules,
    key_conflict,
    lease_lost,
    not_failed,
    not_processing,
    parent_failed,
    parent_twice,
    parent_unknown,
    queue_full,
    still_processing,
    store_full,
    too_many_dependents,
    too_many_queues,
)
from tornado_queue.limits import (
    EVENT_BUFFER,
    MAX_DEPENDENTS,
    MAX_SCHEDULES,
    MAX_WORKERS,
    SCHEDULE_ROUND,
    WORKER_SEEN_SECONDS,
)
from tornado_queue.models import (
    DEFAULT_QUEUE,
    HISTORY_LENGTH,
    PURGEABLE,
    Completion,
    Enqueued,
    Event,
    Extras,
    HistoryEntry,
    ItemOutcome,
    NewTask,
    QueueSettings,
    Task,
    TaskStatus,
    WorkerInfo,
)
from tornado_queue.schedules import Fired, Round, Schedule, firing
from tornado_queue.storage.autopipeline import AutoPipeline, LuaCode, NotSent, is_code_missing
from tornado_queue.storage.base import (
    MAX_BACKOFF_SECONDS,
    FinishedListener,
    Policy,
    ReadyListener,
    Store,
)
from tornado_queue.storage.events import EventFeed
from tornado_queue.storage.redis_events import HAPPENED, ON_SECONDS, RedisFeed

log = logging.getLogger("tornado_queue.redis")

CODE = LuaCode.of(
    # the numbers the script shares with the other stores, ahead of its code
    f"local HISTORY, MAX_WORKERS, MAX_BACKOFF = {HISTORY_LENGTH}, {MAX_WORKERS}, "
    f"{MAX_BACKOFF_SECONDS!r}\n" + (Path(__file__).parent / "lua" / "store.lua").read_text()
)

MIN_REDIS_VERSION = (5, 0)
"""The script pops tasks with ZPOPMIN, which came in Redis 5.0."""

UNCHANGING = frozenset(
    {
        "get",
        "view",
        "counts",
        "totals",
        "deadline",
        "reap",
        "settings",
        "configured",
        "watch",
        "schedule_get",
        "schedule_list",
        "schedule_due",
        "saw_worker",
        "workers",
        "feed_on",
    }
)
"""Operations that change nothing a client asked for (reads, and reaping, which only applies
what was due anyway; a watch only marks a task as waited on, seeing a worker again only moves
when it was seen, switching the event feed on again only makes it last longer): a failure in
the middle of one is a plain outage."""

SEEN_RESOLUTION = 1.0
"""A worker's last sighting is written at most once a second per server: a consumer naming
itself on every call costs Redis one call a second, not one per call."""

WATCH_MARGIN_SECONDS = 5.0
"""A watch outlives the wait it is for by this much, so a finish at the wait's very end (or a
clock a little apart from Redis's) is still told."""


class _NotSent(redis.ConnectionError):
    """No connection to Redis could be made, so the command was never sent."""


class _Pool(redis.ConnectionPool):
    """A connection pool that tells a failure to connect (nothing sent, nothing applied) from
    a failure after the command went out (it may have run)."""

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().get_connection(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise _NotSent(str(error)) from error


NOT_APPLIED = (
    _NotSent,
    NotSent,
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
)
"""Failures that prove the script did not run: no connection, or Redis refused it (loading
its data, a read-only replica, out of memory)."""

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Call:
    """One run of the script: the operation, its arguments, and what a refusal names."""

    op: str
    args: tuple[Any, ...]
    task_id: str = ""
    lease_id: str = ""


Steps = Generator[_Call | list[_Call], Any, T]
"""An operation written once for both ways of reaching Redis: it yields each script call and
is sent the call's result (a refusal is raised into it), then returns its answer. It may yield
a list of independent calls instead, and is sent a list of each one's result or refusal
(`QueueError`); on the loop they go to Redis together."""


def _operation(steps: Callable[..., Steps[T]]) -> Callable[..., T]:
    """The blocking method for an operation's steps; `run_async` finds the steps on it."""

    @functools.wraps(steps)
    def blocking(self: RedisStore, *args: Any, **kwargs: Any) -> T:
        return self._run(steps(self, *args, **kwargs))

    blocking.steps = steps  # type: ignore[attr-defined]
    return blocking


class RedisStore(Store):
    """Every operation is one Lua script (`lua/store.lua`): atomic on the Redis server, so
    servers sharing a Redis never race each other, and whichever gets there first applies
    due leases, delays and retention (idempotently: a script sees only what is still due).

    Keys start with `prefix`, a Redis Cluster hash tag by default (`{tq}`), so they all live
    in one slot. When an operation makes tasks ready, the store tells its own listeners at once
    and the script publishes `origin queue count` on `<prefix>:ready`; a subscriber thread
    passes other servers' messages to this server's listeners, so a consumer long-polling here
    gets a task enqueued there within milliseconds. Finished tasks go the same way on
    `<prefix>:finished`, but only those someone `watch`es (a key with a time to live), so a
    task nobody waits on costs one EXISTS.

    Each operation is written once, as steps that yield script calls (`_operation`): worker
    threads call the methods, which block; handlers await `run_async`, which sends the calls
    of one IOLoop turn to Redis together (`AutoPipeline`), with no thread in between.

    A task's history, the workers that name themselves and the event feed are kept by the
    script in the call of each change, so every server reads the same ones: a list of entries
    per task (none for a task that was only enqueued), a sorted set of workers by when they
    were last seen with a set of held tasks and a hash of counts each, and a Redis Stream
    written while some server's feed is started (`storage.redis_events`).
    """

    blocking = True
    asynchronous = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        policy: Policy | None = None,
        clock: Clock | None = None,
        prefix: str = "{tq}",
        event_buffer: int = EVENT_BUFFER,
    ) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._prefix = prefix
        self._origin = uuid.uuid4().hex
        # No resends inside redis-py: a script whose reply was lost must not run twice behind
        # the store's back (a dequeue would lease a second task); the caller decides.
        pool = _Pool.from_url(url, retry=Retry(NoBackoff(), 0))
        self._redis = redis.Redis(connection_pool=pool)
        self._script = self._redis.register_script(CODE.script)
        self._functions: bool | None = None  # known at the first blocking call
        self._listeners: list[ReadyListener] = []
        self._finished_listeners: list[FinishedListener] = []
        self._lock = threading.Lock()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._subscriber: Any = None  # started with the first listener
        self._subscriber_failing = False
        self._url = url
        self._pipeline: AutoPipeline | None = None  # made on the first call from a loop
        self._event_buffer = event_buffer
        self._feed = RedisFeed(self._redis, prefix, self._switch_feed_on)
        self._seen: dict[str, float] = {}  # when this server last told Redis of each worker

    # -- commands ---------------------------------------------------------------------------

    @_operation
    def enqueue_many(self, new_tasks: Sequence[NewTask]) -> Steps[list[Enqueued]]:
        args: list[Any] = [len(new_tasks)]
        for new_task in new_tasks:
            args += [
                ids.task_id(),
                new_task.queue,
                new_task.payload,
                new_task.priority,
                repr(new_task.delay),
                new_task.max_attempts or "",  # none: the queue's setting, else the policy's
                new_task.idempotency_key or "",
                new_task.fingerprint,
                new_task.group or "",
                "" if new_task.expires_in is None else repr(new_task.expires_in),
                "",  # schedule and fire_time: set only by a schedule's firing
                "",
                "" if new_task.after is None else orjson.dumps(list(new_task.after)),
            ]
        policy = self.policy
        args += [policy.max_pending, policy.max_tasks, policy.max_queues, policy.max_attempts]
        args.append(MAX_DEPENDENTS)
        outcomes = yield _Call("enqueue", tuple(args))
        # Each outcome carries its task, so a batch costs one round trip, not one per task.
        return [
            Enqueued(task_id.decode(), _task(flat) if flat else None, created=bool(created))
            for task_id, created, flat in outcomes
        ]

    @_operation
    def dequeue_many(
        self,
        count: int,
        lease_seconds: float | None = None,
        queue: str = DEFAULT_QUEUE,
        worker: str | None = None,
        push: bool = False,
    ) -> Steps[list[Task]]:
        # no lease given: the queue's setting, else the policy's (read by the script)
        lease = repr(lease_seconds) if lease_seconds else ""
        default = repr(self.policy.lease_seconds)
        lease_ids = [ids.lease_id() for _ in range(count)]
        # the script checks the queue's push setting in the read it makes anyway: no extra call
        args = (queue, lease, default, worker or "", "1" if push else "", *lease_ids)
        taken = yield _Call("dequeue", args)
        if worker is not None and taken:
            self._saw(worker, self._clock.time())  # the script saw it
        return [_task(flat) for flat in taken]

    @_operation
    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Steps[Task]:
        lease = repr(lease_seconds) if lease_seconds else ""
        args = (task_id, lease, lease_id or "", repr(self.policy.lease_seconds))
        return _task((yield _Call("heartbeat", args, task_id, lease_id or "")))

    @_operation
    def progress(self, task_id: str, value: bytes, lease_id: str | None = None) -> Steps[Task]:
        args = (task_id, value, lease_id or "")
        return _task((yield _Call("progress", args, task_id, lease_id or "")))

    @_operation
    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Steps[Task]:
        return _task((yield _completion(task_id, result, lease_id)))

    @_operation
    def complete_many(self, items: Sequence[Completion]) -> Steps[list[ItemOutcome]]:
        calls = [_completion(item.task_id, item.result, item.lease_id) for item in items]
        outcomes = []
        # Each item on its own (a refused one does not stop the others), all sent together.
        for item, outcome in zip(items, (yield calls), strict=True):
            if isinstance(outcome, QueueError):
                outcomes.append(ItemOutcome(item.task_id, error=outcome))
            else:
                outcomes.append(ItemOutcome(item.task_id, task=_task(outcome)))
        return outcomes

    @_operation
    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
        retry_after: float | None = None,
    ) -> Steps[Task]:
        args = (
            task_id,
            "0" if error is None else "1",
            error or "",
            "1" if retry else "0",
            lease_id or "",
            repr(self.policy.retry_backoff),
            "" if retry_after is None else repr(float(retry_after)),
        )
        return _task((yield _Call("fail", args, task_id, lease_id or "")))

    @_operation
    def release(self, task_id: str, lease_id: str | None = None) -> Steps[Task]:
        args = (task_id, lease_id or "")
        return _task((yield _Call("release", args, task_id, lease_id or "")))

    @_operation
    def retry(self, task_id: str) -> Steps[Task]:
        return _task((yield _Call("retry", (task_id,), task_id)))

    @_operation
    def retry_failed(self, queue: str, limit: int) -> Steps[int]:
        page, _ = yield _Call("view", (queue, limit, 0, TaskStatus.FAILED.value))
        calls = [_Call("retry", (task_id,), task_id) for task_id in map(_task_id, page)]
        # each retry its own atomic call, all sent together; one refused (retried or deleted
        # meanwhile) is skipped
        outcomes = yield calls
        return sum(1 for outcome in outcomes if not isinstance(outcome, QueueError))

    @_operation
    def delete(self, task_id: str) -> Steps[None]:
        yield _Call("delete", (task_id,), task_id)

    @_operation
    def purge(self, queue: str, status: TaskStatus, limit: int) -> Steps[int]:
        if status not in PURGEABLE:
            raise InvalidTransition(f"tasks that are {status.value} cannot be purged")
        return int((yield _Call("purge", (queue, status.value, limit))))

    @_operation
    def reap(self) -> Steps[None]:
        yield _Call("reap", ())

    # -- reads ------------------------------------------------------------------------------

    @_operation
    def get(self, task_id: str) -> Steps[Task | None]:
        flat = yield _Call("get", (task_id,))
        return _task(flat) if flat else None

    @_operation
    def watch(self, task_id: str, seconds: float) -> Steps[Task | None]:
        milliseconds = int((seconds + WATCH_MARGIN_SECONDS) * 1000)
        flat = yield _Call("watch", (task_id, milliseconds))
        return _task(flat) if flat else None

    @_operation
    def view(
        self,
        limit: int,
        offset: int = 0,
        queue: str = DEFAULT_QUEUE,
        status: TaskStatus = TaskStatus.PENDING,
    ) -> Steps[tuple[list[Task], int]]:
        page, total = yield _Call("view", (queue, limit, offset, status.value))
        return [_task(flat) for flat in page], int(total)

    @_operation
    def stats(self, queue: str | None = None) -> Steps[dict[TaskStatus, int]]:
        if queue is not None:  # one queue's counts only, not every queue's
            listing = yield from self._counts(queue)
            return listing.get(queue) or dict.fromkeys(TaskStatus, 0)
        total = dict.fromkeys(TaskStatus, 0)
        for counts in (yield from self._counts()).values():
            for status, n in counts.items():
                total[status] += n
        return total

    @_operation
    def queues(self) -> Steps[dict[str, dict[TaskStatus, int]]]:
        return (yield from self._counts())

    @_operation
    def totals(self) -> Steps[dict[str, dict[Event, int]]]:
        totals: dict[str, dict[Event, int]] = {}
        for name, flat in (yield _Call("totals", tuple(Event))):
            for queue, n in zip(flat[::2], flat[1::2], strict=True):
                events = totals.setdefault(queue.decode(), dict.fromkeys(Event, 0))
                events[Event(name.decode())] = int(n)
        return totals

    def _counts(self, *queue: str) -> Steps[dict[str, dict[TaskStatus, int]]]:
        """Counts of the named queue, or of every queue holding tasks or configured."""
        listing = {}
        # By name, so every server lists (and its workers take) the queues in the same order.
        for name, flat, configured in sorted((yield _Call("counts", queue))):
            counts = dict.fromkeys(TaskStatus, 0)
            for status, n in zip(flat[::2], flat[1::2], strict=True):
                counts[TaskStatus(status.decode())] = int(n)
            # a queue is listed while it holds tasks or has a setting, as in every store
            if configured or any(counts.values()):
                listing[name.decode()] = counts
        return listing

    # -- queue settings ---------------------------------------------------------------------

    @_operation
    def queue_settings(self, queue: str) -> Steps[QueueSettings]:
        return _settings((yield _Call("settings", (queue,))))

    @_operation
    def configure(self, queue: str, changes: Mapping[str, object]) -> Steps[QueueSettings]:
        args: list[Any] = [queue]
        for name, value in changes.items():
            # JSON text, so any setting is stored the same way; '' clears it
            args += [name, b"" if value is None else orjson.dumps(QueueSettings.stored(value))]
        return _settings((yield _Call("configure", tuple(args))))

    @_operation
    def configured_queues(self) -> Steps[dict[str, QueueSettings]]:
        return {name.decode(): _settings(flat) for name, flat in (yield _Call("configured", ()))}

    # -- schedules ----------------------------------------------------------------------------

    @_operation
    def put_schedule(self, schedule: Schedule) -> Steps[tuple[Schedule, bool]]:
        placed = schedule.placed(self._clock.time())
        args = (schedule.name, MAX_SCHEDULES, *_schedule_values(placed))
        created, flat = yield _Call("schedule_put", args)
        return _schedule(flat), bool(created)

    @_operation
    def get_schedule(self, name: str) -> Steps[Schedule | None]:
        flat = yield _Call("schedule_get", (name,))
        return _schedule(flat) if flat else None

    @_operation
    def schedules(self) -> Steps[list[Schedule]]:
        found = [_schedule(flat) for flat in (yield _Call("schedule_list", ()))]
        return sorted(found, key=lambda schedule: schedule.name)

    @_operation
    def delete_schedule(self, name: str) -> Steps[bool]:
        return bool((yield _Call("schedule_delete", (name,))))

    @_operation
    def fire_due_schedules(self, limit: int = SCHEDULE_ROUND) -> Steps[Round]:
        # Two steps: read the due schedules, then fire each in the script only if its stored
        # revision and next_run_at are still the ones the occurrence was computed from, so of
        # servers racing for one occurrence exactly one enqueues it.
        flats, after = yield _Call("schedule_due", (limit,))
        due = [_schedule(flat) for flat in flats]
        next_due = None if after is False or after is None else float(after)
        if not due:
            return Round([], False, next_due)
        policy = self.policy
        args: list[Any] = [policy.max_pending, policy.max_tasks, policy.max_queues]
        args.append(policy.max_attempts)
        now = self._clock.time()
        steps = []
        for schedule in due:
            assert schedule.next_run_at is not None
            step = firing(schedule, max(now, schedule.next_run_at))
            steps.append(step)
            args += [
                schedule.name,
                schedule.revision,
                repr(schedule.next_run_at),
                repr(step.fire_time),
                repr(step.next_run_at),
                ids.task_id(),
            ]
        outcomes = yield _Call("schedule_fire", tuple(args))
        fired = []
        for schedule, step, outcome in zip(due, steps, outcomes, strict=True):
            kind = outcome[0]
            if kind == b"stale":  # another server fired it, or it was replaced meanwhile
                continue
            next_due = step.next_run_at if next_due is None else min(next_due, step.next_run_at)
            if kind == b"fired":
                fired.append(Fired(schedule.name, step.fire_time, outcome[1].decode()))
            elif kind == b"skipped":
                refusal = _domain_error(outcome[1].decode()[1:], "enqueue", "", "")
                fired.append(Fired(schedule.name, step.fire_time, error=str(refusal)))
        return Round(fired, len(due) == limit, next_due)

    # -- workers and the event feed -------------------------------------------------------

    @_operation
    def saw_worker(self, worker_id: str) -> Steps[None]:
        now = self._clock.time()
        if now - self._seen.get(worker_id, -math.inf) < SEEN_RESOLUTION:
            return  # told within the last second: nothing to send
        yield _Call("saw_worker", (worker_id,))
        self._saw(worker_id, now)

    @_operation
    def workers(self) -> Steps[list[WorkerInfo]]:
        listing = [
            WorkerInfo(
                name.decode(),
                float(last_seen),
                tuple(sorted(task_id.decode() for task_id in held)),
                int(completed),
                int(failed),
            )
            for name, last_seen, held, completed, failed in (
                yield _Call("workers", (WORKER_SEEN_SECONDS,))
            )
        ]
        listing.sort(key=lambda info: (-info.last_seen, info.id))
        return listing

    @property
    def event_feed(self) -> EventFeed:
        return self._feed

    @_operation
    def _switch_feed_on(self) -> Steps[None]:
        yield _Call("feed_on", (self._event_buffer, ON_SECONDS))

    def _saw(self, worker_id: str, at: float) -> None:
        seen = self._seen
        if len(seen) >= MAX_WORKERS and worker_id not in seen:
            seen.clear()  # bounded; forgetting only costs a call each
        seen[worker_id] = at

    @_operation
    def seconds_to_next_deadline(self) -> Steps[float | None]:
        deadlines = [float(each) for each in (yield _Call("deadline", ())) if each]
        return min(deadlines) - self._clock.time() if deadlines else None

    async def run_async(self, method: Callable[..., T], *args: Any) -> T:
        """Run `method(*args)` (one of this store's operations, or a partial of one) on the
        running event loop: its script calls join the loop's pipeline (`AutoPipeline`)
        instead of blocking a thread."""
        keywords: dict[str, Any] = {}
        if isinstance(method, functools.partial):
            args = (*method.args, *args)
            keywords = method.keywords
            method = method.func
        steps_of = getattr(method, "steps", None)
        if steps_of is None:  # not written as steps: a blocking call on the executor
            blocking = functools.partial(method, *args, **keywords)
            return await asyncio.get_running_loop().run_in_executor(None, blocking)
        steps = steps_of(self, *args, **keywords)
        try:
            call = next(steps)
            while True:
                call = _resume(steps, call, await self._outcome_async(call))
        except StopIteration as done:
            return done.value

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]
            self._subscribe()

    def add_finished_listener(self, listener: FinishedListener) -> None:
        with self._lock:
            self._finished_listeners = [*self._finished_listeners, listener]
            self._subscribe()

    def _subscribe(self) -> None:
        """With the lock held: start the subscriber on both channels at the first listener
        (other servers' messages matter only once someone here listens)."""
        if self._subscriber is None:
            self._pubsub.subscribe(
                **{
                    f"{self._prefix}:ready": self._on_message,
                    f"{self._prefix}:finished": self._on_finished_message,
                }
            )
            self._subscriber = self._pubsub.run_in_thread(
                sleep_time=0.05, daemon=True, exception_handler=self._on_subscriber_error
            )

    def check(self) -> None:
        """Ask Redis for its version: a URL that cannot be reached, or a Redis too old for
        the script, is refused at start-up (the pool connects lazily, at the first request)."""
        try:
            info = self._redis.info("server")
        except redis.RedisError as error:
            raise StoreUnavailable(error) from error
        check_version(info)

    def close(self) -> None:
        self._feed.close()
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber.join(timeout=5)
        self._pubsub.close()
        self._redis.close()
        if self._pipeline is not None:
            self._pipeline.close()

    def flush(self) -> None:
        """Remove every key of this store's prefix (for tests)."""
        for key in self._redis.scan_iter(match=f"{self._prefix}:*", count=1000):
            self._redis.delete(key)

    # -- internals ----------------------------------------------------------------------------

    def _arguments(self, call: _Call) -> list[Any]:
        now = repr(self._clock.time())
        retention = repr(self.policy.retention_seconds)
        return [call.op, now, retention, self._origin, *call.args]

    def _run(self, steps: Steps[T]) -> T:
        """Run an operation's steps here, blocking this thread on each script call."""
        try:
            call = next(steps)
            while True:
                call = _resume(steps, call, self._outcome(call))
        except StopIteration as done:
            return done.value

    def _outcome(self, call: _Call | list[_Call]) -> Any:
        """What a yielded call (or list of calls) came to, blocking: the result or the
        refusal of each; an outage is raised."""
        if isinstance(call, list):
            return [self._outcome(each) for each in call]
        try:
            return self._execute(call)
        except QueueError as refusal:
            return refusal

    async def _outcome_async(self, call: _Call | list[_Call]) -> Any:
        """`_outcome` awaited on the loop: the calls of a list are sent together."""
        if isinstance(call, list):
            futures = [self._execute_async(each) for each in call]
            return _outcomes(await asyncio.gather(*futures, return_exceptions=True))
        try:
            return await self._execute_async(call)
        except QueueError as refusal:
            return refusal

    def _execute(self, call: _Call) -> Any:
        try:
            reply = self._send_blocking(self._arguments(call))
        except redis.RedisError as error:
            raise _failure(call, error) from error
        return self._answer(call, reply)

    def _send_blocking(self, args: list[Any]) -> Any:
        """FCALL where Redis has functions, else the script (redis-py resends it with EVAL
        when Redis lost it: that call never ran)."""
        if self._functions is None:
            self._functions = self._load_library()
        if self._functions:
            try:
                return self._redis.fcall(CODE.name, 1, self._prefix, *args)
            except redis.ResponseError as error:
                if not is_code_missing(error):
                    raise
                self._functions = None  # load it again next time; this call never ran
        return self._script(keys=[self._prefix], args=args)

    def _load_library(self) -> bool:
        try:
            self._redis.function_load(CODE.library.decode(), replace=True)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            raise _NotSent(str(error)) from error  # the call itself was not sent
        except redis.ResponseError:
            return False  # a Redis before 7.0, or a user not allowed to load functions
        return True

    async def _execute_async(self, call: _Call) -> Any:
        pipeline = self._pipeline
        if pipeline is None or pipeline.loop is not asyncio.get_running_loop():
            if pipeline is not None:
                pipeline.close()
            pipeline = self._pipeline = AutoPipeline(self._url, CODE)
        try:
            reply = await pipeline.call((self._prefix,), self._arguments(call))
        except redis.RedisError as error:
            raise _failure(call, error) from error
        return self._answer(call, reply)

    def _answer(self, call: _Call, reply: Any) -> Any:
        """Tell this server's listeners what became ready (the script told the others); turn
        a refusal into its domain error."""
        result, ready, finished = reply
        for queue, count in zip(ready[::2], ready[1::2], strict=True):
            self._notify(queue.decode(), int(count))
        for task_id in finished:
            self._notify_finished(task_id.decode())
        if isinstance(result, bytes) and result.startswith(b"!"):
            # A refusal: what was due was still applied (and told), nothing else changed.
            raise _domain_error(result[1:].decode(), call.op, call.task_id, call.lease_id)
        return result

    def _on_subscriber_error(self, error: BaseException, _pubsub: Any, _thread: Any) -> None:
        """Redis went away under the subscriber: say so once, then keep trying every second
        (the next read reconnects and subscribes again) instead of letting the thread die and
        other servers' wake-ups stop for good. Local consumers still hear of local tasks."""
        if not self._subscriber_failing:
            log.warning("lost the ready channel (%r); reconnecting every second", error)
            self._subscriber_failing = True
        time.sleep(1.0)

    def _on_message(self, message: dict[str, Any]) -> None:
        self._channel_back()
        origin, queue, count = message["data"].decode().split(" ")
        if origin != self._origin:
            self._notify(queue, int(count))

    def _on_finished_message(self, message: dict[str, Any]) -> None:
        self._channel_back()
        origin, task_id = message["data"].decode().split(" ", 1)
        if origin != self._origin:  # this server's own were told from the script's reply
            self._notify_finished(task_id)

    def _channel_back(self) -> None:
        if self._subscriber_failing:
            log.info("ready channel back")
            self._subscriber_failing = False

    def _notify(self, queue: str, count: int) -> None:
        for listener in self._listeners:
            listener(queue, count)

    def _notify_finished(self, task_id: str) -> None:
        for listener in self._finished_listeners:
            listener(task_id)


def _resume(steps: Steps[Any], call: _Call | list[_Call], outcome: Any) -> _Call | list[_Call]:
    """Give an operation's steps what their last yield came to; their next yield. A single
    call's refusal is raised into them; a list's results and refusals are sent as a list."""
    if isinstance(outcome, QueueError) and not isinstance(call, list):
        return steps.throw(outcome)
    return steps.send(outcome)


def _completion(task_id: str, result: bytes | None, lease_id: str | None) -> _Call:
    flag = "0" if result is None else "1"
    args = (task_id, flag, result or b"", lease_id or "")
    return _Call("complete", args, task_id, lease_id or "")


def _outcomes(outcomes: list[Any]) -> list[Any]:
    """Results and refusals of calls sent together; any other failure (an outage) is raised."""
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, QueueError):
            raise outcome
    return outcomes


def _failure(call: _Call, error: redis.RedisError) -> Exception:
    """What a failed script call means: nothing applied, or an outcome nobody can know."""
    if isinstance(error, NOT_APPLIED):
        return StoreUnavailable(error)
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        if call.op in UNCHANGING:
            return StoreUnavailable(error)
        return OutcomeUnknown(error)
    return error  # a script error: a bug, not an outage


def check_version(info: Mapping[str, Any]) -> None:
    """Raise `StoreUnavailable` when the server's `INFO server` answer shows a Redis older than
    `MIN_REDIS_VERSION`; a version it cannot read (a Redis-compatible server) is let through."""
    version = str(info.get("redis_version", ""))
    numbers = re.match(r"(\d+)\.(\d+)", version)
    if numbers and (int(numbers[1]), int(numbers[2])) < MIN_REDIS_VERSION:
        needed = ".".join(map(str, MIN_REDIS_VERSION))
        reason = f"Redis {version} is too old: {needed} or later is needed (for ZPOPMIN)"
        raise StoreUnavailable(RuntimeError(reason))


def _domain_error(text: str, op: str, task_id: str, lease_id: str) -> QueueError:
    """The domain error for a script's refusal (`!WORD details`)."""
    word, _, rest = text.partition(" ")
    action, _, status = rest.partition(" ")
    numbers = rest.split(" ")
    refusals = {
        "NOTFOUND": lambda: TaskNotFound(task_id),
        "PUSHQUEUE": lambda: PushQueue(rest),
        "CONFLICT": lambda: key_conflict(rest),
        "LEASELOST": lambda: lease_lost(action, task_id, lease_id, status),
        "TRANSITION": lambda: not_processing(action, task_id, status),
        "NOTFAILED": lambda: not_failed(task_id, rest),
        "PROCESSING": lambda: still_processing(task_id),
        # waiting, adding, limit, queue / held, adding, limit
        "QUEUEFULL": lambda: queue_full(
            " ".join(numbers[3:]), int(numbers[0]), int(numbers[1]), int(numbers[2])
        ),
        "STOREFULL": lambda: store_full(int(numbers[0]), int(numbers[1]), int(numbers[2])),
        # in use, limit, queue
        "TOOMANYSCHEDULES": lambda: TooManySchedules(int(rest)),
        "TOOMANYQUEUES": lambda: too_many_queues(
            int(numbers[0]), " ".join(numbers[2:]), int(numbers[1])
        ),
        # the batch item (-1 for a single enqueue), the parent's id (, the limit)
        "PARENTUNKNOWN": lambda: parent_unknown(_item(numbers[0]), numbers[1]),
        "PARENTFAILED": lambda: parent_failed(_item(numbers[0]), numbers[1]),
        "PARENTTWICE": lambda: parent_twice(_item(numbers[0]), numbers[1]),
        "DEPENDENTS": lambda: too_many_dependents(_item(numbers[0]), numbers[1], int(numbers[2])),
    }
    make = refusals.get(word)
    if make is None:
        raise RuntimeError(f"redis store script failed in {op}: {text}")
    return make()


def _item(text: str) -> int | None:
    return None if text == "-1" else int(text)


STATUSES = {status.value.encode(): status for status in TaskStatus}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode()


def _time(value: bytes | None) -> float | None:
    return None if value is None else float(value)  # float() and int() read bytes as they are


def _settings(flat: Sequence[bytes]) -> QueueSettings:
    """A queue's settings from its hash (names, JSON values); a name this version does not know
    (written by a newer server sharing the Redis) is ignored."""
    pairs = iter(flat)
    values = {name.decode(): orjson.loads(value) for name, value in zip(pairs, pairs, strict=True)}
    return QueueSettings.from_stored(values)


SCHEDULE_FIELDS = (
    "queue",
    "payload",
    "cron",
    "every",
    "timezone",
    "priority",
    "max_attempts",
    "paused",
    "next_run_at",
)
"""A schedule's fields in the order the script's `schedule_put` reads them."""


def _schedule_values(schedule: Schedule) -> list[Any]:
    """The values of `SCHEDULE_FIELDS`, '' for unset (numbers with every digit)."""
    values: list[Any] = []
    for name in SCHEDULE_FIELDS:
        value = getattr(schedule, name)
        if value is None or value is False:
            values.append("")
        elif value is True:
            values.append("1")
        elif isinstance(value, float):
            values.append(repr(value))
        else:
            values.append(value)
    return values


def _schedule(flat: Sequence[bytes]) -> Schedule:
    """A schedule from its hash (HGETALL's flat list of names and values)."""
    pairs = iter(flat)
    fields = dict(zip(pairs, pairs, strict=True))
    get = fields.get
    max_attempts = get(b"max_attempts")
    return Schedule(
        name=fields[b"name"].decode(),
        queue=fields[b"queue"].decode(),
        payload=fields[b"payload"],
        cron=_text(get(b"cron")),
        every=_time(get(b"every")),
        timezone=fields[b"timezone"].decode(),
        priority=int(fields[b"priority"]),
        max_attempts=None if max_attempts is None else int(max_attempts),
        paused=get(b"paused") == b"1",
        next_run_at=_time(get(b"next_run_at")),
        last_run_at=_time(get(b"last_run_at")),
        revision=int(fields[b"revision"]),
    )


def _task_id(flat: Sequence[bytes]) -> str:
    pairs = iter(flat)
    return dict(zip(pairs, pairs, strict=True))[b"id"].decode()


def _task(flat: Sequence[bytes]) -> Task:
    """A task from its hash (HGETALL's flat list of names and values): only text fields are
    decoded; numbers are read from the bytes, payload and result stay bytes."""
    pairs = iter(flat)
    fields = dict(zip(pairs, pairs, strict=True))
    get = fields.get
    task = Task(
        fields[b"id"].decode(),
        fields[b"payload"],
        float(fields[b"created_at"]),
        int(fields[b"max_attempts"]),
        queue=fields[b"queue"].decode(),
        priority=int(fields[b"priority"]),
    )
    task.status = STATUSES[fields[b"status"]]
    task.attempts = int(fields[b"attempts"])
    task.seq = int(fields[b"seq"])
    task.lease_id = _text(get(b"lease_id"))
    task.error = _text(get(b"error"))
    task.closed_lease = _text(get(b"closed_lease"))
    task.result = get(b"result")
    task.available_at = _time(get(b"available_at"))
    task.lease_expires_at = _time(get(b"lease_expires_at"))
    task.started_at = _time(get(b"started_at"))
    task.finished_at = _time(get(b"finished_at"))
    task.forget_at = _time(get(b"forget_at"))
    task.group = _text(get(b"group"))
    task.expires_at = _time(get(b"expires_at"))
    task.dead_lettered_from = _text(get(b"dead_lettered_from"))
    task.backoff = _time(get(b"backoff"))
    parents, dependents = get(b"parents"), get(b"dependents")
    if parents is not None or dependents is not None:
        task.extras = Extras(
            after=tuple(orjson.loads(parents)) if parents is not None else (),
            dependents=None if dependents is None else orjson.loads(dependents),
            waiting_on=int(get(b"waiting_on") or 0),
            hold=float(get(b"hold") or 0.0),
        )
    task.progress = get(b"progress")
    task.schedule = _text(get(b"schedule"))
    task.fire_time = _time(get(b"fire_time"))
    history = get(b"history")
    if history is not None:
        task.history = _history(history)
    return task


def _history(stored: Sequence[bytes]) -> tuple[HistoryEntry, ...]:
    """A task's changes after its enqueue from its stored entries (see `note` in the script),
    as `Task.history` holds them."""
    history = []
    for entry in stored:
        at, event, lease_id, worker, *error = entry.split(b" ", 4)
        history.append(
            HistoryEntry(
                float(at),
                HAPPENED[event],
                lease_id.decode() if lease_id else None,
                worker.decode() if worker else None,
                error[0].decode() if error else None,
            )
        )
    return tuple(history)
