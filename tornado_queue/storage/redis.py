"""RedisStore: several tornado_queue servers share one queue through one Redis."""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from tornado_queue import ids
from tornado_queue.clock import Clock, SystemClock
from tornado_queue.errors import (
    OutcomeUnknown,
    QueueError,
    StoreUnavailable,
    TaskNotFound,
    key_conflict,
    lease_lost,
    not_failed,
    not_processing,
    queue_full,
    still_processing,
    store_full,
    too_many_queues,
)
from tornado_queue.models import DEFAULT_QUEUE, Enqueued, Event, NewTask, Task, TaskStatus
from tornado_queue.storage.base import Policy, ReadyListener, Store

log = logging.getLogger("tornado_queue.redis")

SCRIPT = (Path(__file__).parent / "lua" / "store.lua").read_text()

MIN_REDIS_VERSION = (5, 0)
"""The script pops tasks with ZPOPMIN, which came in Redis 5.0."""

UNCHANGING = frozenset({"get", "view", "counts", "totals", "deadline", "reap"})
"""Operations that change nothing a client asked for (reads, and reaping, which only applies
what was due anyway): a failure in the middle of one is a plain outage."""


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
    redis.BusyLoadingError,
    redis.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
)
"""Failures that prove the script did not run: no connection, or Redis refused it (loading
its data, a read-only replica, out of memory)."""


class RedisStore(Store):
    """Every operation is one Lua script (`lua/store.lua`): atomic on the Redis server, so
    servers sharing a Redis never race each other, and whichever gets there first applies
    due leases, delays and retention (idempotently: a script sees only what is still due).

    Keys start with `prefix`, a Redis Cluster hash tag by default (`{tq}`), so they all live
    in one slot. When an operation makes tasks ready, the store tells its own listeners at once
    and publishes `origin queue count` on `<prefix>:ready`; a subscriber thread passes other
    servers' messages to this server's listeners, so a consumer long-polling here gets a task
    enqueued there within milliseconds. Blocking (network) calls: handlers use the executor.
    """

    blocking = True

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        policy: Policy | None = None,
        clock: Clock | None = None,
        prefix: str = "{tq}",
    ) -> None:
        self.policy = policy or Policy()
        self._clock = clock or SystemClock()
        self._prefix = prefix
        self._origin = uuid.uuid4().hex
        # No resends inside redis-py: a script whose reply was lost must not run twice behind
        # the store's back (a dequeue would lease a second task); the caller decides.
        pool = _Pool.from_url(url, retry=Retry(NoBackoff(), 0))
        self._redis = redis.Redis(connection_pool=pool)
        self._script = self._redis.register_script(SCRIPT)
        self._listeners: list[ReadyListener] = []
        self._lock = threading.Lock()
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._subscriber: Any = None  # started with the first listener
        self._subscriber_failing = False

    # -- commands ---------------------------------------------------------------------------

    def enqueue_many(self, new_tasks: Sequence[NewTask]) -> list[Enqueued]:
        args: list[Any] = [len(new_tasks)]
        for new_task in new_tasks:
            args += [
                ids.task_id(),
                new_task.queue,
                new_task.payload,
                new_task.priority,
                repr(new_task.delay),
                new_task.max_attempts or self.policy.max_attempts,
                new_task.idempotency_key or "",
                new_task.fingerprint,
            ]
        args += [self.policy.max_pending, self.policy.max_tasks, self.policy.max_queues]
        outcomes = self._call("enqueue", *args)
        # Each outcome carries its task, so a batch costs one round trip, not one per task.
        return [
            Enqueued(task_id.decode(), _task(flat) if flat else None, created=bool(created))
            for task_id, created, flat in outcomes
        ]

    def dequeue_many(
        self, count: int, lease_seconds: float | None = None, queue: str = DEFAULT_QUEUE
    ) -> list[Task]:
        lease = lease_seconds or self.policy.lease_seconds
        lease_ids = [ids.lease_id() for _ in range(count)]
        return [_task(flat) for flat in self._call("dequeue", queue, repr(lease), *lease_ids)]

    def heartbeat(
        self, task_id: str, lease_seconds: float | None = None, lease_id: str | None = None
    ) -> Task:
        lease = lease_seconds or self.policy.lease_seconds
        flat = self._call(
            "heartbeat", task_id, repr(lease), lease_id or "", task_id=task_id, lease_id=lease_id
        )
        return _task(flat)

    def complete(
        self, task_id: str, result: bytes | None = None, lease_id: str | None = None
    ) -> Task:
        flag = "0" if result is None else "1"
        flat = self._call(
            "complete",
            task_id,
            flag,
            result or b"",
            lease_id or "",
            task_id=task_id,
            lease_id=lease_id,
        )
        return _task(flat)

    def fail(
        self,
        task_id: str,
        error: str | None = None,
        retry: bool = True,
        lease_id: str | None = None,
    ) -> Task:
        flat = self._call(
            "fail",
            task_id,
            "0" if error is None else "1",
            error or "",
            "1" if retry else "0",
            lease_id or "",
            repr(self.policy.retry_backoff),
            task_id=task_id,
            lease_id=lease_id,
        )
        return _task(flat)

    def release(self, task_id: str, lease_id: str | None = None) -> Task:
        flat = self._call("release", task_id, lease_id or "", task_id=task_id, lease_id=lease_id)
        return _task(flat)

    def retry(self, task_id: str) -> Task:
        return _task(self._call("retry", task_id, task_id=task_id))

    def delete(self, task_id: str) -> None:
        self._call("delete", task_id, task_id=task_id)

    def reap(self) -> None:
        self._call("reap")

    # -- reads ------------------------------------------------------------------------------

    def get(self, task_id: str) -> Task | None:
        flat = self._call("get", task_id)
        return _task(flat) if flat else None

    def view(
        self,
        limit: int,
        offset: int = 0,
        queue: str = DEFAULT_QUEUE,
        status: TaskStatus = TaskStatus.PENDING,
    ) -> tuple[list[Task], int]:
        page, total = self._call("view", queue, limit, offset, status.value)
        return [_task(flat) for flat in page], int(total)

    def stats(self, queue: str | None = None) -> dict[TaskStatus, int]:
        if queue is not None:  # one queue's counts only, not every queue's
            return self._counts(queue).get(queue) or dict.fromkeys(TaskStatus, 0)
        total = dict.fromkeys(TaskStatus, 0)
        for counts in self.queues().values():
            for status, n in counts.items():
                total[status] += n
        return total

    def queues(self) -> dict[str, dict[TaskStatus, int]]:
        return self._counts()

    def totals(self) -> dict[str, dict[Event, int]]:
        totals: dict[str, dict[Event, int]] = {}
        for name, flat in self._call("totals", *Event):
            for queue, n in zip(flat[::2], flat[1::2], strict=True):
                events = totals.setdefault(queue.decode(), dict.fromkeys(Event, 0))
                events[Event(name.decode())] = int(n)
        return totals

    def _counts(self, *queue: str) -> dict[str, dict[TaskStatus, int]]:
        """Counts of the named queue, or of every queue holding tasks."""
        listing = {}
        # By name, so every server lists (and its workers take) the queues in the same order.
        for name, flat in sorted(self._call("counts", *queue)):
            counts = dict.fromkeys(TaskStatus, 0)
            for status, n in zip(flat[::2], flat[1::2], strict=True):
                counts[TaskStatus(status.decode())] = int(n)
            if any(counts.values()):  # a queue is listed while it holds tasks, as in every store
                listing[name.decode()] = counts
        return listing

    def seconds_to_next_deadline(self) -> float | None:
        deadlines = [float(each) for each in self._call("deadline") if each]
        return min(deadlines) - self._clock.time() if deadlines else None

    def add_ready_listener(self, listener: ReadyListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]
            if self._subscriber is None:
                # Other servers' ready messages matter only once someone here listens.
                self._pubsub.subscribe(**{f"{self._prefix}:ready": self._on_message})
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
        if self._subscriber is not None:
            self._subscriber.stop()
            self._subscriber.join(timeout=5)
        self._pubsub.close()
        self._redis.close()

    def flush(self) -> None:
        """Remove every key of this store's prefix (for tests)."""
        for key in self._redis.scan_iter(match=f"{self._prefix}:*", count=1000):
            self._redis.delete(key)

    # -- internals ----------------------------------------------------------------------------

    def _call(
        self, op: str, *args: Any, task_id: str | None = None, lease_id: str | None = None
    ) -> Any:
        """Run one operation of the script; tell listeners (here and elsewhere) what became
        ready; turn the script's refusals into domain errors."""
        now = repr(self._clock.time())
        retention = repr(self.policy.retention_seconds)
        try:
            result, ready = self._script(keys=[self._prefix], args=[op, now, retention, *args])
        except NOT_APPLIED as error:
            raise StoreUnavailable(error) from error
        except (redis.ConnectionError, redis.TimeoutError) as error:
            if op in UNCHANGING:
                raise StoreUnavailable(error) from error
            raise OutcomeUnknown(error) from error
        pairs = [
            (queue.decode(), int(count))
            for queue, count in zip(ready[::2], ready[1::2], strict=True)
        ]
        for queue, count in pairs:
            self._notify(queue, count)
            self._publish(queue, count)
        if isinstance(result, bytes) and result.startswith(b"!"):
            # A refusal: what was due was still applied (and told), nothing else changed.
            raise _domain_error(result[1:].decode(), op, task_id or "", lease_id or "")
        return result

    def _publish(self, queue: str, count: int) -> None:
        """Tell other servers; the operation is applied already, so a Redis that has just
        gone away costs them only this wake-up (their parked consumers look again when their
        wait ends), never the caller's answer."""
        try:
            self._redis.publish(f"{self._prefix}:ready", f"{self._origin} {queue} {count}")
        except (redis.ConnectionError, redis.TimeoutError) as error:
            log.debug("could not publish a ready message: %r", error)

    def _on_subscriber_error(self, error: BaseException, _pubsub: Any, _thread: Any) -> None:
        """Redis went away under the subscriber: say so once, then keep trying every second
        (the next read reconnects and subscribes again) instead of letting the thread die and
        other servers' wake-ups stop for good. Local consumers still hear of local tasks."""
        if not self._subscriber_failing:
            log.warning("lost the ready channel (%r); reconnecting every second", error)
            self._subscriber_failing = True
        time.sleep(1.0)

    def _on_message(self, message: dict[str, Any]) -> None:
        if self._subscriber_failing:
            log.info("ready channel back")
            self._subscriber_failing = False
        origin, queue, count = message["data"].decode().split(" ")
        if origin != self._origin:
            self._notify(queue, int(count))

    def _notify(self, queue: str, count: int) -> None:
        for listener in self._listeners:
            listener(queue, count)


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
        "TOOMANYQUEUES": lambda: too_many_queues(
            int(numbers[0]), " ".join(numbers[2:]), int(numbers[1])
        ),
    }
    make = refusals.get(word)
    if make is None:
        raise RuntimeError(f"redis store script failed in {op}: {text}")
    return make()


FLOATS = {
    "created_at",
    "available_at",
    "lease_expires_at",
    "started_at",
    "finished_at",
    "forget_at",
}


def _task(flat: Sequence[bytes]) -> Task:
    fields = {name.decode(): value for name, value in zip(flat[::2], flat[1::2], strict=True)}
    text = {
        name: value.decode() for name, value in fields.items() if name not in ("payload", "result")
    }
    task = Task(
        text["id"],
        fields["payload"],
        float(text["created_at"]),
        int(text["max_attempts"]),
        queue=text["queue"],
        priority=int(text["priority"]),
    )
    task.status = TaskStatus(text["status"])
    task.attempts = int(text["attempts"])
    task.seq = int(text["seq"])
    task.lease_id = text.get("lease_id")
    task.error = text.get("error")
    task.closed_lease = text.get("closed_lease")
    task.result = fields.get("result")
    for name in FLOATS - {"created_at"}:
        setattr(task, name, float(text[name]) if name in text else None)
    return task
