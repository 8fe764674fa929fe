"""The pusher: delivers the tasks of push queues to their URLs from the IOLoop.

Every server runs one. It reads which queues push (`configured_queues`) at start, after a
PATCH on this server (`refresh`) and at least every `REFRESH_SECONDS` (a change made through
another server sharing the store), and keeps one `Lane` per push queue. A lane leases tasks
through the store's own dequeue (`push=True`), so attempts, pause, `max_processing`,
`rate_limit`, expiry and dead-lettering apply exactly as they do to pulled tasks, and several
servers pushing one queue never hold one task at once. Each leased task is POSTed to the
queue's URL, signed, and completed or failed under its lease (`outcome.judge`).

A lease lasts the push timeout plus `LEASE_MARGIN_SECONDS`: a server that dies mid-push loses
only its lease, and when it expires the store hands the task to another server's pusher.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado.httpclient import HTTPClientError, HTTPRequest, HTTPResponse
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.simple_httpclient import SimpleAsyncHTTPClient

from tornado_queue import __version__, codec
from tornado_queue.errors import QueueError, StoreFailure, ValidationError
from tornado_queue.models import PushTarget, QueueSettings, Task
from tornado_queue.push_allow import AllowingResolver, PushAllow
from tornado_queue.server import store_calls
from tornado_queue.server.push.outcome import (
    PUSH_MAX_RESULT_BYTES,
    Outcome,
    Reason,
    judge,
    not_answered,
)
from tornado_queue.server.push.signing import webhook_headers
from tornado_queue.storage import Store

log = logging.getLogger("tornado_queue.push")

REFRESH_SECONDS = 1.0
"""The pusher reads the queues' settings at least this often."""
IDLE_SECONDS = 1.0
"""A lane with nothing to push looks again at least this often (a wake-up normally comes at
once, from the store's ready listeners, on every server sharing it)."""
LEASE_MARGIN_SECONDS = 5.0
"""A push's lease outlasts its timeout by this much, so that it is completed or failed under
its own lease, not handed to another server while it is still being answered."""
DEFAULT_CONCURRENCY = 10
"""Pushes in flight per queue and server when the queue sets no `max_processing`."""
MOST_IN_FLIGHT = 1000
"""Pushes in flight per queue and server at most, whatever `max_processing` says."""
STORE_RETRY_SECONDS = 1.0
"""A lane whose store call failed tries again after this long."""


def pusher_name() -> str:
    """The worker id pushes are delivered under (task history, GET /workers, the events)."""
    return f"push/{socket.gethostname()[:80]}/{os.getpid()}"


@dataclass(slots=True)
class PushStatus:
    """What this server saw of one queue's pushes since it started (`push_status`)."""

    in_flight: int = 0
    pushed: int = 0
    failed: int = 0
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None

    def document(self) -> dict[str, object]:
        return {
            "in_flight": self.in_flight,
            "pushed": self.pushed,
            "failed": self.failed,
            "last_success_at": codec.format_time(self.last_success_at),
            "last_error": self.last_error,
            "last_error_at": codec.format_time(self.last_error_at),
        }


PushObserver = Callable[[str, "Reason | None", float], None]
"""Told of each finished push: the queue, why it failed (None: it succeeded), its seconds."""


class Lane:
    """One push queue on this server: leases up to `concurrency` of its tasks at a time and
    pushes each as its own coroutine."""

    def __init__(self, pusher: Pusher, queue: str, settings: QueueSettings) -> None:
        self._pusher = pusher
        self.queue = queue
        self.target: PushTarget = settings.push  # type: ignore[assignment]
        self.concurrency = concurrency_of(settings)
        self.status = PushStatus()
        self._wake = asyncio.Event()
        self._pushes: set[asyncio.Task[None]] = set()
        self._loop_task = asyncio.ensure_future(self._run())

    def update(self, settings: QueueSettings) -> None:
        """New settings for the queue (a new URL, timeout, headers or secret, a new cap)."""
        self.target = settings.push  # type: ignore[assignment]
        self.concurrency = concurrency_of(settings)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    @property
    def longest_push(self) -> float:
        """The longest a push in flight may still take (its timeout)."""
        return self.target.timeout_seconds

    async def stop(self, grace: float) -> None:
        """Lease nothing more; give pushes in flight `grace` seconds, then let their tasks go
        (released at once, so another server can push them without waiting for the lease)."""
        self._loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._loop_task
        if self._pushes:
            await asyncio.wait(list(self._pushes), timeout=grace)
        for push in list(self._pushes):
            push.cancel()
        if self._pushes:
            await asyncio.gather(*self._pushes, return_exceptions=True)

    async def _run(self) -> None:
        pusher = self._pusher
        while True:
            room = self.concurrency - self.status.in_flight
            if room <= 0:
                await self._idle()
                continue
            target = self.target
            lease = target.timeout_seconds + LEASE_MARGIN_SECONDS
            try:
                tasks = await store_calls.call_store(
                    pusher.store,
                    pusher.store.dequeue_many,
                    room,
                    lease,
                    self.queue,
                    pusher.worker_id,
                    True,
                )
            except StoreFailure:
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            except QueueError as error:  # not expected: the store refused the dequeue
                log.warning("push queue '%s': dequeue refused: %s", self.queue, error)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            except Exception:
                log.exception("push queue '%s': dequeue failed", self.queue)
                await asyncio.sleep(STORE_RETRY_SECONDS)
                continue
            for task in tasks:
                self.status.in_flight += 1
                push = asyncio.ensure_future(self._push(task, target))
                self._pushes.add(push)
                push.add_done_callback(self._pushes.discard)
            if len(tasks) < room:
                await self._idle()

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), IDLE_SECONDS)
        self._wake.clear()

    async def _push(self, task: Task, target: PushTarget) -> None:
        pusher = self._pusher
        lease_id = task.lease_id
        started = time.monotonic()
        finished = False
        try:
            outcome = await pusher.deliver(task, target)
            elapsed = time.monotonic() - started
            await self._settle(task, outcome)
            finished = True
            self._note(outcome, elapsed)
        except asyncio.CancelledError:
            if not finished and lease_id is not None:
                await self._let_go(task.id, lease_id)
            raise
        finally:
            self.status.in_flight -= 1
            self._wake.set()

    async def _settle(self, task: Task, outcome: Outcome) -> None:
        """Complete or fail the task under the lease it was pushed under. A lease lost
        meanwhile (it expired and another server has the task) is left to its new holder."""
        store = self._pusher.store
        try:
            if outcome.succeeded:
                await store_calls.call_store(
                    store, store.complete, task.id, outcome.result, task.lease_id
                )
            else:
                await store_calls.call_store(
                    store,
                    store.fail,
                    task.id,
                    outcome.error,
                    outcome.retry,
                    task.lease_id,
                    outcome.retry_after,
                )
        except QueueError as error:
            log.info("push of task %s: its outcome was not recorded: %s", task.id, error)
        except StoreFailure:
            log.warning(
                "push of task %s: the store failed recording its outcome; the task will be "
                "pushed again when its lease expires",
                task.id,
            )

    async def _let_go(self, task_id: str, lease_id: str) -> None:
        store = self._pusher.store
        with contextlib.suppress(QueueError, StoreFailure):
            await store_calls.call_store(store, store.release, task_id, lease_id)

    def _note(self, outcome: Outcome, elapsed: float) -> None:
        status = self.status
        now = self._pusher.clock()
        if outcome.succeeded:
            status.pushed += 1
            status.last_success_at = now
        else:
            status.failed += 1
            status.last_error = outcome.error
            status.last_error_at = now
        self._pusher.observe(self.queue, outcome.reason, elapsed)


def concurrency_of(settings: QueueSettings) -> int:
    cap = settings.max_processing
    return min(cap if cap is not None else DEFAULT_CONCURRENCY, MOST_IN_FLIGHT)


class Pusher:
    """The server's push lanes, one per push queue (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        allow: PushAllow,
        *,
        observe: PushObserver = lambda _queue, _reason, _seconds: None,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        resolver: AllowingResolver | None = None,
    ) -> None:
        self.store = store
        self.allow = allow
        self.observe = observe
        self.clock = clock
        self.worker_id = worker_id or pusher_name()
        self._resolver = resolver
        self._own_resolver: AllowingResolver | None = None
        self._client: SimpleAsyncHTTPClient | None = None
        self._lanes: dict[str, Lane] = {}
        self._retiring: dict[Lane, asyncio.Future[None]] = {}  # lanes letting pushes end
        self._refused: dict[str, str] = {}  # queue -> the URL last refused (logged once)
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._io_loop: IOLoop | None = None
        store.add_ready_listener(self._on_ready)

    # -- running -------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._io_loop = IOLoop.current()
            self._task = asyncio.ensure_future(self._run())

    async def stop(self, grace: float = 5.0) -> None:
        """Stop every lane (see `Lane.stop`) and close the HTTP client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        lanes, self._lanes = [*self._lanes.values(), *self._retiring], {}
        for retiring in self._retiring.values():
            retiring.cancel()
        self._retiring.clear()
        await asyncio.gather(*(lane.stop(grace) for lane in lanes))
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._own_resolver is not None:  # the client leaves a resolver it was given open
            self._own_resolver.close()
            self._own_resolver = None

    def refresh(self) -> None:
        """The settings changed on this server: read them again now."""
        self._wake.set()

    def status(self, queue: str) -> PushStatus | None:
        """This server's push status of `queue`: None when it does not push it (yet)."""
        lane = self._lanes.get(queue)
        return None if lane is None else lane.status

    async def _run(self) -> None:
        while True:
            try:
                configured = await store_calls.call_store(self.store, self.store.configured_queues)
            except StoreFailure:
                configured = None  # the outage log has said it; keep the lanes as they are
            except Exception:
                log.exception("reading the push queues failed; trying again")
                configured = None
            if configured is not None:
                await self._arrange(configured)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), REFRESH_SECONDS)
            self._wake.clear()

    async def _arrange(self, configured: dict[str, QueueSettings]) -> None:
        """One lane per queue that pushes to a URL this server's --push-allow admits; a lane
        whose queue stopped pushing (or whose URL is not admitted) ends."""
        pushing = {
            name: settings
            for name, settings in configured.items()
            if settings.push is not None and self._admits(name, settings.push)
        }
        for name, settings in pushing.items():
            lane = self._lanes.get(name)
            if lane is None:
                self._lanes[name] = Lane(self, name, settings)
            elif lane.target != settings.push or lane.concurrency != concurrency_of(settings):
                lane.update(settings)
        gone = [name for name in self._lanes if name not in pushing]
        for name in gone:
            # It leases nothing more; its pushes in flight finish under their own leases.
            lane = self._lanes.pop(name)
            self._retiring[lane] = asyncio.ensure_future(lane.stop(grace=lane.longest_push))
            self._retiring[lane].add_done_callback(lambda _done, lane=lane: self._retire(lane))

    def _retire(self, lane: Lane) -> None:
        self._retiring.pop(lane, None)

    def _admits(self, queue: str, target: PushTarget) -> bool:
        """Whether this server may push to `target` (another server, with another
        --push-allow, may have set it): refused targets are logged once, and left to the
        servers that admit them."""
        try:
            self.allow.check_url(target.url)
        except ValidationError as refusal:
            if self._refused.get(queue) != target.url:
                self._refused[queue] = target.url
                log.warning("push queue '%s' is not pushed by this server: %s", queue, refusal)
            return False
        self._refused.pop(queue, None)
        return True

    def _on_ready(self, queue: str, _count: int) -> None:
        """A store's ready listener: runs on whichever thread made tasks ready."""
        if queue not in self._lanes or self._io_loop is None:
            return
        self._io_loop.add_callback(self._wake_lane, queue)

    def _wake_lane(self, queue: str) -> None:
        lane = self._lanes.get(queue)
        if lane is not None:
            lane.wake()

    # -- one push ------------------------------------------------------------------------

    @property
    def client(self) -> SimpleAsyncHTTPClient:
        if self._client is None:
            resolver = self._resolver
            if resolver is None:
                resolver = self._own_resolver = AllowingResolver(self.allow)
            self._client = SimpleAsyncHTTPClient(
                force_instance=True, max_clients=MOST_IN_FLIGHT * 10, resolver=resolver
            )
        return self._client

    async def deliver(self, task: Task, target: PushTarget) -> Outcome:
        """POST the task to its target and judge the answer."""
        body = codec.dumps(codec.task_document(task))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"tornado-queue/{__version__}",
            **webhook_headers(target, task.id, body, self.clock()),
            **dict(target.headers),
        }
        received = bytearray()

        def keep(chunk: bytes) -> None:  # read no more than the bound: the rest is dropped
            room = PUSH_MAX_RESULT_BYTES + 1 - len(received)
            if room > 0:
                received.extend(chunk[:room])

        request = HTTPRequest(
            target.url,
            method="POST",
            body=body,
            headers=headers,
            connect_timeout=target.timeout_seconds,
            request_timeout=target.timeout_seconds,
            follow_redirects=False,
            streaming_callback=keep,
            decompress_response=False,
        )
        try:
            # raise_error=False answers any status; a push that got none still raises.
            response: HTTPResponse = await self.client.fetch(request, raise_error=False)
        except (OSError, HTTPClientError, StreamClosedError) as error:
            return not_answered(error, target.timeout_seconds)
        return judge(response, bytes(received), target.timeout_seconds, self.clock())
