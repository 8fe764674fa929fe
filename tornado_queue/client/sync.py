"""`Client`: the synchronous client, on the standard library's `http.client`."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
import time
from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import Any, TypeVar

from tornado_queue.client import calls
from tornado_queue.client.calls import Call, Response, TaskRef
from tornado_queue.client.endpoint import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    DEFAULT_URL,
    Endpoint,
    base_headers,
)
from tornado_queue.client.errors import ConnectionFailed
from tornado_queue.client.items import BatchItem
from tornado_queue.client.task import Task, Worker
from tornado_queue.models import FINISHED, TaskStatus

T = TypeVar("T")


class Client:
    """A tornado_queue server, called from ordinary (blocking) code.

    Thread safety: one `Client` may be shared by any number of threads. Each thread gets its
    own kept-alive connection (a `threading.local`), so calls from different threads never
    wait for each other; `close()` closes them all.

    Retries: when no answer comes (connection refused, reset, timed out) or the server answers
    503, a call that is safe to repeat is sent again up to `retries` times, `backoff` seconds
    doubling in between (at least the 503's Retry-After). Safe are GET, DELETE (a repeated
    `purge_queue` deletes what is left), complete / fail / heartbeat (fenced by the lease id:
    a repeat is answered as the first was), enqueue (every enqueue carries an idempotency
    key), `configure_queue` and `put_schedule` (absolute values: a repeat sets the same) and
    `retry_queue` (a repeat retries what is still failed). A dequeue is repeated only after a
    503 saying nothing was applied (see `dequeue`). Other errors the server answers with are
    never retried; they raise a `TaskQueueError` subclass carrying the server's `detail`.

    Workers: with a `worker_id` (1 to 128 visible ASCII characters, say
    "host/pid/slot"), every dequeue, complete, fail, heartbeat and progress carries it as
    `X-Worker-Id`: the server records it in each task's history and lists the worker in
    `workers()`.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        worker_id: str | None = None,
    ) -> None:
        self.endpoint = Endpoint.parse(url)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._headers = base_headers(token)
        self.worker_id = worker_id
        self._worker_headers = calls.worker_headers(worker_id)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._busy: set[http.client.HTTPConnection] = set()
        self._interrupts = 0

    @property
    def url(self) -> str:
        return self.endpoint.url

    # --- producers -----------------------------------------------------------------------

    def enqueue(
        self,
        payload: dict[str, Any],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        idempotency_key: str | None = None,
        group: str | None = None,
        expires_in: float | None = None,
        after: Sequence[str] | None = None,
    ) -> str:
        """Put one task on `queue` (default "default"); return its id.

        Tasks of one queue with the same `group` are delivered one at a time, in order: the
        next only once the one before is completed, deleted, failed, dead-lettered or expired.
        A task is never delivered more than `expires_in` seconds after it was enqueued
        (default: the queue's `ttl_seconds`); it then fails as expired.

        With `after` (1 to 100 task ids) the task is `waiting` until every one of them is
        completed, then pending (its `delay` counted from then); should one fail for good or
        be deleted, it fails too. An unknown or failed parent raises `BadRequest` naming it.

        Every enqueue is sent with an `Idempotency-Key`: yours, or a fresh one made for this
        call, so retrying it after a lost answer never creates a second task. Give your own
        key to make separate calls (a re-run of a job, say) create the task only once.
        """
        return self._call(
            calls.enqueue(
                payload,
                idempotency_key,
                queue=queue,
                priority=priority,
                delay=delay,
                max_attempts=max_attempts,
                group=group,
                expires_in=expires_in,
                after=after,
            )
        )

    def enqueue_many(
        self,
        payloads: Iterable[dict[str, Any] | BatchItem],
        *,
        queue: str | None = None,
        priority: int | None = None,
        delay: float | None = None,
        max_attempts: int | None = None,
        group: str | None = None,
        expires_in: float | None = None,
    ) -> list[str]:
        """Put up to 1000 tasks on `queue` in one request, all or nothing; their ids in order
        (with a `group`, also the order they are delivered in, one at a time). Each item gets
        its own idempotency key, so a retried batch creates nothing twice.

        An item is a payload, or a `BatchItem` with fields of its own (which win over the
        call's): its `after` may name an earlier item of the batch as `"#k"`, so one batch
        holds a whole workflow."""
        return self._call(
            calls.enqueue_many(
                payloads,
                queue=queue,
                priority=priority,
                delay=delay,
                max_attempts=max_attempts,
                group=group,
                expires_in=expires_in,
            )
        )

    # --- consumers -----------------------------------------------------------------------

    def dequeue(
        self, *, queue: str | None = None, wait: float = 0, lease: float | None = None
    ) -> Task | None:
        """Lease the next task of `queue`, waiting up to `wait` seconds (0-30) for one; None
        if none came. `lease` is the lease in seconds (default: the server's).

        Not retried when the answer is lost (or the server says the outcome is unknown): had
        the server leased a task, a second request would lease another while the first stays
        stranded until its lease expires. A `ConnectionFailed` or `OutcomeUnknown` here means:
        try again; the worst case is that delay for one task.
        """
        tasks = self.dequeue_many(1, queue=queue, wait=wait, lease=lease)
        return tasks[0] if tasks else None

    def dequeue_many(
        self, count: int, *, queue: str | None = None, wait: float = 0, lease: float | None = None
    ) -> list[Task]:
        """Lease up to `count` (1-1000) tasks, waiting up to `wait` seconds for the first;
        an empty list if none came. Not retried, as `dequeue`."""
        return self._call(calls.dequeue_many(count, queue, wait, lease))

    def complete(self, task: TaskRef, result: Any = None) -> Task:
        """Finish a task with an optional JSON `result`. With the `Task` from dequeue its lease
        id is sent, and `LeaseLost` says the task is no longer yours."""
        return self._call(calls.complete(task, result))

    def fail(self, task: TaskRef, error: str | None = None, *, retry: bool = True) -> Task:
        """Report a failed attempt: retried after the server's backoff while attempts are left
        (`retry=False`: failed for good). `LeaseLost` as for `complete`."""
        return self._call(calls.fail(task, error, retry))

    def heartbeat(self, task: TaskRef, *, lease: float | None = None) -> Task:
        """Extend the task's lease to `lease` seconds from now (default: the server's)."""
        return self._call(calls.heartbeat(task, lease))

    def progress(self, task: TaskRef, value: Any) -> Task:
        """Record how far the task has come (any JSON value, at most 4096 bytes), shown as its
        `progress`; the lease is not extended. `LeaseLost` as for `complete`."""
        return self._call(calls.progress(task, value))

    # --- reading and operating -----------------------------------------------------------

    def get(self, task: TaskRef, *, wait: float | None = None) -> Task:
        """One task; `NotFound` if unknown or forgotten. With `wait` (up to 30 seconds) an
        unfinished task is answered once it is completed or failed, or as it is when the wait
        ends."""
        return self._call(calls.get(task, wait))

    def wait_for(self, task: TaskRef, timeout: float) -> Task:
        """The task once it is completed or failed, waiting up to `timeout` seconds (in waits
        of up to 30 s, each answered the moment it finishes); `TimeoutError` if it has not
        finished by then, `NotFound` if it is unknown or deleted meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.get(task, wait=calls.result_wait(deadline - time.monotonic()))
            if found.status in FINISHED:
                return found
            if time.monotonic() >= deadline:
                raise calls.timed_out(found, timeout)

    def retry(self, task: TaskRef) -> Task:
        """Put a failed task back in its queue with fresh attempts; `Conflict` unless failed."""
        return self._call(calls.retry(task))

    def queue(self, name: str) -> dict[str, Any]:
        """One queue: `{"name": ..., "pending": n, ..., "settings": {"paused": ...}}`."""
        return self._call(calls.queue(name))

    def configure_queue(self, name: str, **settings: Any) -> dict[str, Any]:
        """Set settings of a queue (None clears one, the others stay as they are); the queue as
        `queue` shows it. The settings: `paused`, `max_processing` (tasks processing at once),
        `rate_limit` (`{"tasks": N, "seconds": S}`: at most N deliveries in any S seconds),
        `lease_seconds`, `max_attempts`, `retry_backoff`, `dead_letter_queue` (where a task
        that would fail goes instead) and `ttl_seconds` (the default `expires_in`). A bad one
        raises `BadRequest` naming it, and nothing changes."""
        return self._call(calls.configure_queue(name, settings))

    def pause(self, name: str) -> dict[str, Any]:
        """Stop delivering the queue's tasks (it still accepts new ones)."""
        return self.configure_queue(name, paused=True)

    def resume(self, name: str) -> dict[str, Any]:
        """Deliver the queue's tasks again; consumers waiting on it wake at once."""
        return self.configure_queue(name, paused=None)

    def retry_queue(self, queue: str) -> int:
        """Put every failed task of `queue` back to pending with fresh attempts; how many."""
        return self._call(calls.retry_queue(queue))

    def purge_queue(self, name: str, status: str) -> int:
        """Delete every task of queue `name` in `status` (pending, scheduled, waiting,
        completed or failed; processing tasks are never purged); how many were deleted."""
        return self._call(calls.purge_queue(name, status))

    def view(
        self,
        queue: str,
        *,
        status: str = TaskStatus.PENDING,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[Task]:
        """A page of `queue`'s tasks in `status` (any state): pending ones in the order they
        will be delivered, the others most recent first. `limit` 0-10000 (default 1000),
        `offset` 0-100000."""
        return self._call(calls.view(queue, status, limit, offset))

    def delete(self, task: TaskRef) -> None:
        """Remove a task that is not processing; `Conflict` while it is."""
        self._call(calls.delete(task))

    def stats(self, queue: str | None = None) -> dict[str, int]:
        """Tasks per state in `queue`, or summed over every queue."""
        return self._call(calls.stats(queue))

    def totals(self, queue: str | None = None) -> dict[str, int]:
        """Events counted since the server started: enqueued, completed, failed,
        lease_expired, dead_lettered, expired."""
        return self._call(calls.totals(queue))

    def queues(self) -> list[dict[str, Any]]:
        """Every queue: `{"name": ..., "pending": n, "processing": n, ...}`, by name."""
        return self._call(calls.queues())

    def workers(self) -> list[Worker]:
        """The workers (consumers with a `worker_id`) the server heard from in the last minute,
        the latest first: each with the tasks it holds and how many it completed and failed."""
        return self._call(calls.workers())

    # --- schedules -----------------------------------------------------------------------

    def put_schedule(
        self,
        name: str,
        *,
        queue: str,
        payload: dict[str, Any],
        cron: str | None = None,
        every: float | None = None,
        timezone: str | None = None,
        priority: int | None = None,
        max_attempts: int | None = None,
        paused: bool | None = None,
    ) -> dict[str, Any]:
        """Create or replace schedule `name`: a task with `payload` on `queue` at each time of
        `cron` (read in `timezone`, default UTC) or every `every` seconds (give exactly one).
        The schedule as stored, with `next_run_at` and `last_run_at`. A bad field raises
        `BadRequest` naming it, and nothing changes."""
        definition = {
            "queue": queue,
            "payload": payload,
            "cron": cron,
            "every": every,
            "timezone": timezone,
            "priority": priority,
            "max_attempts": max_attempts,
            "paused": paused,
        }
        return self._call(calls.put_schedule(name, definition))

    def get_schedule(self, name: str) -> dict[str, Any]:
        """One schedule; `NotFound` when there is none."""
        return self._call(calls.get_schedule(name))

    def schedules(self) -> list[dict[str, Any]]:
        """Every schedule, sorted by name."""
        return self._call(calls.schedules())

    def delete_schedule(self, name: str) -> None:
        """Remove a schedule (the tasks it enqueued stay); `NotFound` when there is none."""
        self._call(calls.delete_schedule(name))

    # --- connections ---------------------------------------------------------------------

    def interrupt(self) -> None:
        """End the requests in progress on every thread now: each raises `ConnectionFailed`.
        For stopping a long-polling `dequeue` from another thread (the server gives back any
        task it leased for a client that has gone)."""
        with self._lock:
            self._interrupts += 1
            busy = list(self._busy)
        for connection in busy:
            sock = connection.sock
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Close every thread's connection; a later call opens a new one."""
        with self._lock:
            connections = list(self._open)
            self._open.clear()
        for connection in connections:
            connection.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, call: Call[T]) -> T:
        attempt = 0
        while True:
            try:
                response = self._send(call)
            except ConnectionFailed:
                pause = calls.retry_pause(call, None, attempt, self.retries, self.backoff)
                if pause is None:
                    raise
            else:
                pause = calls.retry_pause(call, response, attempt, self.retries, self.backoff)
                if pause is None:
                    return calls.check(call, response)
            time.sleep(pause)
            attempt += 1

    def _call_headers(self, call: Call[Any]) -> dict[str, str]:
        headers = self._headers | dict(call.headers)
        return headers | self._worker_headers if call.names_worker else headers

    def _send(self, call: Call[Any]) -> Response:
        connection = self._connection()
        with self._lock:
            interrupts = self._interrupts
            self._busy.add(connection)
        try:
            if connection.sock is None:
                connection.connect()
            if self._interrupts != interrupts:
                raise ConnectionFailed("interrupted")
            connection.sock.settimeout(self.timeout + call.wait)
            connection.request(
                call.method,
                self.endpoint.prefix + call.path,
                body=call.body,
                headers=self._call_headers(call),
            )
            reply = connection.getresponse()
            body = reply.read()
        except (OSError, http.client.HTTPException) as exc:
            self._discard(connection)
            raise ConnectionFailed(
                f"{call.method} {self.url}{call.path}: no answer ({type(exc).__name__}: {exc})"
            ) from exc
        except ConnectionFailed:
            self._discard(connection)
            raise
        finally:
            with self._lock:
                self._busy.discard(connection)
        headers = {name.lower(): value for name, value in reply.getheaders()}
        return Response(reply.status, headers, body)

    def _connection(self) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            https = self.endpoint.https
            kind = http.client.HTTPSConnection if https else http.client.HTTPConnection
            connection = kind(self.endpoint.host, self.endpoint.port, timeout=self.timeout)
            self._local.connection = connection
        with self._lock:
            self._open.add(connection)  # again after a close(): close() must reach it too
        return connection

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        # A broken connection is never reused: the next call opens a fresh one.
        connection.close()
        self._local.connection = None
        with self._lock:
            self._open.discard(connection)
