"""Chaos checker: producers and consumers work against real server processes while a nemesis
kills them (or their Redis) with SIGKILL and starts them again; afterwards every promise the
queue made to its clients is checked.

    python bench/chaos.py [--backend sqlite|redis|both] [--seconds N] [--kills K] [--seed S]
                          [--groups G] [--max-processing N] [--pause-every S] [--pause-for S]
                          [--push-producers N] [--push-cap N] [--push-fail-fraction F]

(inside the venv: .venv/bin/python bench/chaos.py). The default run is sized for CI: about
12 s of chaos and 6 kills per backend. Everything listens on loopback; Redis is a private
redis-server with `appendfsync always` on a free port, never 6379.

- SQLite: one server on a database file; the nemesis kills it and starts it again on the same
  port and file.
- Redis: two servers on one Redis, clients spread over both; the nemesis kills one server or
  redis-server itself, which restarts on the same port and directory and reloads its AOF.

Producers enqueue tasks, each with its own Idempotency-Key, and repeat the same request after
a lost answer or a 5xx until a 2xx (then the task is "acknowledged"); every other producer puts
each task into one of a few ordered groups. Consumers dequeue (with waits of 0 to 0.5 s) with a
short lease, complete with `{"result": {"lease_id": L}, "lease_id": L}` (so a finished task
names the lease that finished it), or now and then fail with retry first, and repeat the same
call after a lost answer or a 5xx until any other answer. The queue has a `max_processing` cap,
set through PATCH /queues/default before the clients start, and an admin thread pauses it now
and then for a moment and resumes it. Every third task of the other producers is a workflow: a
batch of a parent and a child enqueued `after` it. Consumers name themselves (X-Worker-Id). A
schedule fires every second into a queue nobody consumes.

A push queue runs beside it (bench/chaos_push.py): its own producer enqueues into it, the
servers (started with `--push-allow 127.0.0.1`) push its tasks to a receiver in this process,
which verifies each signature with the `standardwebhooks` package, holds the push for up to
100 ms and answers 200 with `{"lease_id": L}` or, now and then, 503. The queue has a 1 s push
timeout (6 s leases) and `max_processing` 3; now and then a consumer tries to dequeue from it.

Once the nemesis stops, producers stop, the queue is resumed, and consumers and pushers drain
both queues; then every acknowledged task is read back. Checks, each must be 0:

1. acknowledged enqueues lost: 404, or not completed at the end;
2. tasks completed with a 200 under two different lease ids;
3. completed tasks whose consumer never got a 200: the lease named in the result never had
   its complete answered with 200 (it was applied, but the client was told otherwise);
4. duplicate deliveries that neither an expired lease nor an acknowledged fail explains;
5. tasks in the store beyond the acknowledged enqueues and those given up on (one key made two);
6. group overlap: two tasks of one group held by consumers at once;
7. group order: a task of a group first delivered before one whose enqueue was acknowledged
   before its own was first sent;
8. cap exceeded: more than `max_processing` leases held by consumers at once;
9. delivered while paused: a dequeue sent after a pause was acknowledged and answered before
   the resume was sent got a task;
10. workflow order: a child delivered before its parent completed (the server's own times);
11. schedule fired twice: two tasks of the schedule for one occurrence (`fire_time`);
12. history disagrees: a completed task whose history does not end in its completion, under
    the lease and by the worker that completed it, or a child whose history does not show it
    waiting and released before its first delivery;
13. pushes lost: an acknowledged push-queue task 404, or not completed at the end;
14. push completed unanswered: a completed push task whose result is not the receiver's 200
    answer to one of its pushes, or whose history does not end in that completion by the
    pusher that pushed it;
15. unexplained re-pushes: a task leased for a push before the previous push's lease expired
    though the receiver answered that one 200 within the timeout, or one lease pushed twice;
16. push cap exceeded: more pushes in flight at the receiver at once than the push queue's
    `max_processing`;
17. pushes badly signed: a push whose signature does not verify with the queue's secret, or
    whose `webhook-id` is not its task's id;
18. push queue not refusing: a consumer's dequeue from the push queue answered other than 409
    (or a 5xx).

What the consumers saw is judged conservatively: a lease counts as held from its dequeue's
answer until its complete or fail is first sent, or until shortly before the expiry the server
gave it (after that the task may go to another consumer, or its group's next task may); times
are compared on the clients' clock, except that expiry.

The exit status is 1 when any check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import random
import sys
import tempfile
import threading
import time
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos_push import (
    PUSH_CHECKS,
    PUSH_QUEUE,
    PushFigures,
    Receiver,
    push_checks,
    push_figures,
)
from bench.chaos_times import EXPIRY_TOLERANCE, epoch, most_at_once
from tornado_queue.testing import RedisServer, ServerProcess

OUTCOME_UNKNOWN = "urn:tornado-queue:problem:outcome-unknown"
QUEUE = "default"
"""The one queue every task goes into."""
TICKS = "ticks"
"""The queue the schedule fires into; nobody consumes it."""
SCHEDULE = "chaos-tick"
DEQUEUE_WAITS = (0.0, 0.2, 0.5)
"""The `wait` of each dequeue, picked at random: short ones can end inside a pause."""

SERVER_FLAGS = (
    "--log-level",
    "warning",
    # No task may die or be forgotten during a run: a lost one would look like a lost enqueue.
    "--max-attempts",
    "1000",
    "--retention-seconds",
    "86400",
    "--retry-backoff",
    "0.01",
    # The push queue's receiver listens on loopback, which only an IP entry admits.
    "--push-allow",
    "127.0.0.1",
)


@dataclass(frozen=True)
class Settings:
    """One run's shape; the defaults are the CI size."""

    seconds: float = 12.0
    kills: int = 6
    producers: int = 4
    consumers: int = 4
    lease: float = 2.0
    fail_fraction: float = 0.1
    drain_seconds: float = 15.0
    max_backlog: int = 200
    request_timeout: float = 3.0
    max_downtime: float = 0.3
    seed: int | None = None
    groups: int = 4
    """Group names the grouped producers (every other one) pick from; 0: no groups."""
    max_processing: int = 3
    """The queue's cap, set before the clients start; 0: none."""
    pause_every: float = 1.5
    """Mean seconds between the admin's pauses; 0: never paused."""
    pause_for: float = 0.4
    """Seconds each pause lasts (from its answer to the resume being sent)."""
    workflow_every: int = 3
    """Every so many tasks of an ungrouped producer is a workflow (a parent and a child after
    it, in one batch); 0: none."""
    schedule_every: float = 1.0
    """Seconds between the schedule's occurrences; 0: no schedule."""
    push_producers: int = 2
    """Producers enqueueing into the push queue; 0: no push queue. Two outpace what the
    receiver answers at the cap, so the cap is held most of the time."""
    push_backlog: int = 50
    """Push-queue tasks acknowledged and not yet answered 200 that its producers wait under:
    few, so that the queue drains soon after the last kill."""
    push_cap: int = 3
    """The push queue's max_processing: its push concurrency across servers."""
    push_fail_fraction: float = 0.1
    """Pushes the receiver answers 503."""
    push_hold: float = 0.1
    """The receiver holds each push up to this many seconds before answering."""
    push_timeout: int = 1
    """The push queue's timeout_seconds: its leases last this plus the servers' 5 s margin."""
    pull_push_fraction: float = 0.05
    """Dequeues a consumer sends to the push queue instead, each to be refused with 409."""


# --- the wire ------------------------------------------------------------------------------


class NoAnswer(Exception):
    """The request got no HTTP answer: refused, reset, or timed out."""


@dataclass(frozen=True)
class Reply:
    status: int
    document: Any
    problem: str | None
    """The problem `type` of an error answer, or None."""


class Wire:
    """One thread's kept-alive connections, one per server URL."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._connections: dict[str, http.client.HTTPConnection] = {}

    def send(
        self,
        url: str,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        connection = self._connections.get(url)
        if connection is None:
            parts = urlsplit(url)
            connection = http.client.HTTPConnection(parts.hostname, parts.port, self.timeout)
            self._connections[url] = connection
        data = None if body is None else orjson.dumps(body)
        sent = {"Content-Type": "application/json"} if data is not None else {}
        try:
            connection.request(method, path, data, sent | (headers or {}))
            response = connection.getresponse()
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            # Never reuse a broken connection: the next request opens a fresh one.
            connection.close()
            del self._connections[url]
            raise NoAnswer(f"{method} {url}{path}: {type(error).__name__}: {error}") from error
        try:
            document = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            document = None
        problem = None
        if response.status >= 400 and isinstance(document, dict):
            problem = str(document.get("type", "about:blank"))
        return Reply(response.status, document, problem)

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()


# --- what the clients saw --------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    task_id: str
    lease_id: str
    started_at: float
    lease_expires_at: float
    group: str | None
    worker: str
    """The X-Worker-Id its consumer sent."""
    sent: float
    """Monotonic: just before the dequeue was sent."""
    answered: float
    """Monotonic: just after its answer came."""
    answered_wall: float
    """The same moment on the wall clock, to compare with the server's `lease_expires_at`."""


@dataclass(frozen=True)
class Outcome:
    """The last answer to a complete or fail on one lease; status None: gave up unanswered."""

    task_id: str
    lease_id: str
    action: str
    status: int | None
    answers: tuple[str, ...]
    """Each try's status, "-" for no answer."""
    sent_wall: float
    """Wall clock: just before the first try was sent."""


@dataclass(frozen=True)
class Enqueue:
    """An acknowledged enqueue of a grouped task, with monotonic times."""

    task_id: str
    group: str
    sent: float
    """Just before the first try was sent: the task was created after this."""
    acknowledged: float
    """Just after the 2xx came: the task was created before this."""


@dataclass(frozen=True)
class Pause:
    """One pause of the queue, with monotonic times: it was surely paused in between."""

    acknowledged: float
    """Just after the pause's 200 came."""
    resume_sent: float
    """Just before the resume's first try was sent."""


@dataclass
class History:
    """Everything the clients were told, filled in by their threads."""

    acknowledged: list[str] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    grouped: dict[str, Enqueue] = field(default_factory=dict)
    """Acknowledged grouped enqueues by task id."""
    pauses: list[Pause] = field(default_factory=list)
    workflows: list[tuple[str, str]] = field(default_factory=list)
    """Acknowledged workflows: (parent id, child id)."""
    empty_dequeues: list[tuple[float, float]] = field(default_factory=list)
    """Each 404 dequeue's monotonic sent and answered times."""
    pushed: list[str] = field(default_factory=list)
    """Acknowledged enqueues into the push queue, by task id."""
    pulled: list[str] = field(default_factory=list)
    """What each dequeue from the push queue that was not refused (409) got."""
    counts: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counts[name] += n

    def saw(self, reply: Reply) -> None:
        """Count the answers that say the store is struggling, by problem type."""
        if reply.status == 503:
            self.count("503")
            self.count(f"503 {reply.problem}")
        elif reply.status >= 500:
            self.count("other 5xx")


class Backlog:
    """Acknowledged tasks not yet finished: producers wait while there are too many, so the
    queue never grows past what consumers drain in a moment."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open = 0
        self._changed = threading.Condition()

    def add(self) -> None:
        with self._changed:
            self._open += 1

    def done(self) -> None:
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_for_room(self, stop: threading.Event) -> None:
        with self._changed:
            while self._open >= self.limit and not stop.is_set():
                self._changed.wait(0.1)


# --- clients ---------------------------------------------------------------------------------


class Clients:
    """Producer and consumer threads over a list of server URLs, and an admin thread that
    pauses and resumes the queue."""

    def __init__(
        self, urls: list[str], settings: Settings, history: History, give_up_at: float
    ) -> None:
        self.urls = urls
        self.settings = settings
        self.history = history
        self.give_up_at = give_up_at
        self.stop_producing = threading.Event()
        self.stop_consuming = threading.Event()
        self.backlog = Backlog(settings.max_backlog)
        self.push_backlog = Backlog(settings.push_backlog)
        self.errors: list[str] = []
        seed = settings.seed or 0
        self.producers = [
            self._thread(f"producer-{n}", self._produce, n, random.Random(seed + 1000 + n))
            for n in range(settings.producers)
        ]
        self.producers += [
            self._thread(f"push-producer-{n}", self._produce_pushed, n)
            for n in range(settings.push_producers)
        ]
        self.consumers = [
            self._thread(f"consumer-{n}", self._consume, n, random.Random(seed + n))
            for n in range(settings.consumers)
        ]
        self.admins = (
            [self._thread("admin", self._administer, random.Random(seed - 1))]
            if settings.pause_every > 0
            else []
        )

    def _thread(self, name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
        def guarded() -> None:
            # A client that breaks would quietly stop working: the run must fail instead.
            try:
                target(*args)
            except Exception as error:
                self.errors.append(f"{name}: {type(error).__name__}: {error}")
                self.abandon()

        return threading.Thread(target=guarded, name=name, daemon=True)

    def start(self) -> None:
        for thread in self.producers + self.consumers + self.admins:
            thread.start()

    def abandon(self) -> None:
        """Stop every client at once: no more retries, no more tasks."""
        self.give_up_at = 0.0
        self.stop_producing.set()
        self.stop_consuming.set()

    def join_producers(self) -> None:
        """Stop the producers, and the admin once it has resumed the queue."""
        self.stop_producing.set()
        for thread in self.producers + self.admins:
            thread.join(max(0.0, self.give_up_at - time.monotonic()) + 5)

    def join_consumers(self) -> None:
        self.stop_consuming.set()
        for thread in self.consumers:
            thread.join(max(0.0, self.give_up_at - time.monotonic()) + 5)

    def _until_answered(
        self, wire: Wire, home: int, method: str, path: str, *, body: Any, headers: dict[str, str]
    ) -> tuple[Reply | None, tuple[str, ...]]:
        """Send one request until it gets an answer other than a 5xx, or the run gives up
        (None); also each try's status. A lost answer moves to the next server: another one
        may be up."""
        server, answers = home, []
        while True:
            if answers:
                self.history.count("retries")
            try:
                reply = wire.send(self.urls[server], method, path, body, headers)
            except NoAnswer:
                answers.append("-")
                self.history.count("no answer")
                server = (server + 1) % len(self.urls)
            else:
                answers.append(str(reply.status))
                self.history.saw(reply)
                if reply.status < 500:
                    return reply, tuple(answers)
            if time.monotonic() >= self.give_up_at:
                return None, tuple(answers)
            time.sleep(min(0.2, 0.01 * 2 ** min(len(answers), 5)))

    def _produce(self, number: int, rng: random.Random) -> None:
        wire = Wire(self.settings.request_timeout)
        home = number % len(self.urls)
        grouped = self.settings.groups > 0 and number % 2 == 1
        sequence = 0
        try:
            while not self.stop_producing.is_set():
                self.backlog.wait_for_room(self.stop_producing)
                if self.stop_producing.is_set():
                    return
                key = f"chaos-{number}-{sequence}"
                payload = {"producer": number, "sequence": sequence}
                every = self.settings.workflow_every
                if not grouped and every and sequence % every == every - 1:
                    sequence += 1
                    self._enqueue_workflow(wire, home, key, payload)
                    continue
                body: dict[str, Any] = {"payload": payload}
                group = f"group-{rng.randrange(self.settings.groups)}" if grouped else None
                if group is not None:
                    body["group"] = group
                sent = time.monotonic()
                reply, _ = self._until_answered(
                    wire, home, "POST", "/tasks", body=body, headers={"Idempotency-Key": key}
                )
                sequence += 1
                if reply is not None and reply.status in (200, 201):
                    task_id = reply.document["id"]
                    acknowledged = time.monotonic()
                    with self.history.lock:
                        self.history.acknowledged.append(task_id)
                        if group is not None:
                            enqueue = Enqueue(task_id, group, sent, acknowledged)
                            self.history.grouped[task_id] = enqueue
                    self.backlog.add()
                elif reply is None:
                    self.history.count("enqueues given up")
                else:
                    self.history.count(f"enqueue answered {reply.status}")
        finally:
            wire.close()

    def _produce_pushed(self, number: int) -> None:
        """Enqueue into the push queue; the receiver's first 200 for a task makes room."""
        wire = Wire(self.settings.request_timeout)
        home = number % len(self.urls)
        sequence = 0
        try:
            while not self.stop_producing.is_set():
                self.push_backlog.wait_for_room(self.stop_producing)
                if self.stop_producing.is_set():
                    return
                key = f"chaos-push-{number}-{sequence}"
                body = {"queue": PUSH_QUEUE, "payload": {"pusher": number, "sequence": sequence}}
                reply, _ = self._until_answered(
                    wire, home, "POST", "/tasks", body=body, headers={"Idempotency-Key": key}
                )
                sequence += 1
                if reply is not None and reply.status in (200, 201):
                    with self.history.lock:
                        self.history.pushed.append(reply.document["id"])
                    self.push_backlog.add()
                elif reply is None:
                    self.history.count("enqueues given up")
                else:
                    self.history.count(f"enqueue answered {reply.status}")
        finally:
            wire.close()

    def _enqueue_workflow(self, wire: Wire, home: int, key: str, payload: Any) -> None:
        """A parent and a child after it, in one batch, each with its own idempotency key."""
        body = {
            "tasks": [
                {"payload": payload, "idempotency_key": f"{key}-parent"},
                {"payload": payload, "idempotency_key": f"{key}-child", "after": ["#0"]},
            ]
        }
        reply, _ = self._until_answered(wire, home, "POST", "/tasks/batch", body=body, headers={})
        if reply is not None and reply.status in (200, 201):
            parent, child = reply.document["ids"]
            with self.history.lock:
                self.history.acknowledged += [parent, child]
                self.history.workflows.append((parent, child))
            self.backlog.add()
            self.backlog.add()
        elif reply is None:
            self.history.count("enqueues given up", 2)
        else:
            self.history.count(f"enqueue answered {reply.status}")

    def _consume(self, number: int, rng: random.Random) -> None:
        wire = Wire(self.settings.request_timeout)
        server = number % len(self.urls)
        me = {"X-Worker-Id": f"chaos-consumer-{number}"}
        try:
            while not self.stop_consuming.is_set():
                if self.settings.push_producers and rng.random() < self.settings.pull_push_fraction:
                    server = self._pull_push_queue(wire, server, me)
                    continue
                wait = rng.choice(DEQUEUE_WAITS)
                dequeue = f"/tasks/dequeue?queue={QUEUE}&lease={self.settings.lease}&wait={wait}"
                sent = time.monotonic()
                try:
                    reply = wire.send(self.urls[server], "POST", dequeue, headers=me)
                except NoAnswer:
                    # Not repeated: a lease lost with the answer comes back when it expires.
                    self.history.count("dequeues unanswered")
                    server = (server + 1) % len(self.urls)
                    time.sleep(0.02)
                    continue
                answered = (time.monotonic(), time.time())
                self.history.saw(reply)
                if reply.status == 200:
                    self._work(wire, server, reply.document, rng, (sent, *answered), me=me)
                elif reply.status == 404:  # nothing to do within the wait
                    with self.history.lock:
                        self.history.empty_dequeues.append((sent, answered[0]))
                    if wait == 0:
                        time.sleep(0.01)
                else:
                    time.sleep(0.02)
        finally:
            wire.close()

    def _pull_push_queue(self, wire: Wire, server: int, me: dict[str, str]) -> int:
        """Try to dequeue from the push queue, which must refuse; the server to use next."""
        path = f"/tasks/dequeue?queue={PUSH_QUEUE}&lease={self.settings.lease}"
        try:
            reply = wire.send(self.urls[server], "POST", path, headers=me)
        except NoAnswer:
            self.history.count("dequeues unanswered")
            return (server + 1) % len(self.urls)
        self.history.saw(reply)
        if reply.status == 409:
            self.history.count("pulls refused")
        elif reply.status < 500:
            got = f"task {reply.document['id']}" if reply.status == 200 else "no 409"
            with self.history.lock:
                self.history.pulled.append(f"answered {reply.status}: {got}")
        return server

    def _work(
        self,
        wire: Wire,
        server: int,
        task: dict[str, Any],
        rng: random.Random,
        times: tuple[float, float, float],
        *,
        me: dict[str, str],
    ) -> None:
        """Finish one delivered task; `me`: the consumer's X-Worker-Id header; `times`: its
        dequeue's sent, answered and answered on the wall clock."""
        lease_id = task["lease_id"]
        delivery = Delivery(
            task["id"],
            lease_id,
            epoch(task["started_at"]),
            epoch(task["lease_expires_at"]),
            task.get("group"),
            me["X-Worker-Id"],
            *times,
        )
        with self.history.lock:
            self.history.deliveries.append(delivery)
        time.sleep(rng.uniform(0, 0.003))
        if rng.random() < self.settings.fail_fraction:
            action, body = "fail", {"error": "chaos", "retry": True, "lease_id": lease_id}
        else:
            action, body = "complete", {"result": {"lease_id": lease_id}, "lease_id": lease_id}
        path = f"/tasks/{task['id']}/{action}"
        sent_wall = time.time()
        reply, answers = self._until_answered(wire, server, "PUT", path, body=body, headers=me)
        status = None if reply is None else reply.status
        outcome = Outcome(task["id"], lease_id, action, status, answers, sent_wall)
        with self.history.lock:
            self.history.outcomes[lease_id] = outcome
        if action == "complete":  # whatever the answer, this client is done with the task
            self.backlog.done()

    def _administer(self, rng: random.Random) -> None:
        """Pause the queue now and then, for a moment; always resume it before stopping."""
        wire = Wire(self.settings.request_timeout)
        every, length = self.settings.pause_every, self.settings.pause_for
        try:
            while not self.stop_producing.wait(rng.uniform(0.5, 1.5) * every):
                paused = self._set_paused(wire, rng, True)
                acknowledged = time.monotonic()
                self.stop_producing.wait(length)
                resume_sent = time.monotonic()
                if not self._set_paused(wire, rng, None):
                    raise RuntimeError(f"resuming queue '{QUEUE}' got no answer before the end")
                if paused:
                    with self.history.lock:
                        self.history.pauses.append(Pause(acknowledged, resume_sent))
        finally:
            wire.close()

    def _set_paused(self, wire: Wire, rng: random.Random, paused: bool | None) -> bool:
        """PATCH the queue's `paused` until a 200 (True) or the run gives up (False)."""
        path, body = f"/queues/{QUEUE}", {"paused": paused}
        home = rng.randrange(len(self.urls))
        reply, _ = self._until_answered(wire, home, "PATCH", path, body=body, headers={})
        if reply is None:
            self.history.count("pauses given up")
            return False
        if reply.status != 200:
            raise RuntimeError(f"PATCH {path} {body} answered {reply.status}: {reply.document}")
        return True


# --- the systems under test --------------------------------------------------------------------


class Sqlite:
    """One server on one database file; a kill takes the server down."""

    kinds = ("server",)

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._logs = 0
        db = str(directory / "tasks.db")
        self.server = ServerProcess(self._log(), "--backend", "sqlite", "--db", db, *SERVER_FLAGS)

    @property
    def urls(self) -> list[str]:
        return [self.server.url]

    def kill(self, kind: str, rng: random.Random) -> Callable[[], None]:
        """SIGKILL the server (the only `kind`); return what starts it again."""
        self.server.kill()
        return self._restart

    def _restart(self) -> None:
        self.server = self.server.restart(self._log())

    def _log(self) -> Path:
        self._logs += 1
        return self.directory / f"server-{self._logs}.log"

    def close(self) -> None:
        self.server.kill()


class Redis:
    """Two servers on one redis-server that keeps an append-only file; a kill takes down one
    server, or Redis."""

    kinds = ("redis", "server")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._logs = 0
        (directory / "redis").mkdir()
        self.redis = RedisServer(directory / "redis", append_only=True)
        flags = ("--backend", "redis", "--redis-url", self.redis.url, "--redis-prefix", "{chaos}")
        self.servers: list[ServerProcess] = []
        try:
            for _ in range(2):
                self.servers.append(ServerProcess(self._log(), *flags, *SERVER_FLAGS))
        except BaseException:
            self.close()
            raise

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def kill(self, kind: str, rng: random.Random) -> Callable[[], None]:
        """SIGKILL redis-server or a server picked by `rng`; return what starts it again."""
        if kind == "redis":
            self.redis.kill()
            return self.redis.start
        number = rng.randrange(len(self.servers))
        self.servers[number].kill()

        def restart() -> None:
            self.servers[number] = self.servers[number].restart(self._log())

        return restart

    def _log(self) -> Path:
        self._logs += 1
        return self.directory / f"server-{self._logs}.log"

    def close(self) -> None:
        for server in self.servers:
            server.kill()
        self.redis.kill()


System = Sqlite | Redis
SYSTEMS: dict[str, type[Sqlite] | type[Redis]] = {"sqlite": Sqlite, "redis": Redis}


def wait_until_healthy(urls: list[str], deadline: float) -> None:
    """Every server answers /healthz with 200 (its store too), or RuntimeError."""
    wire = Wire(2.0)
    try:
        for url in urls:
            while True:
                with contextlib.suppress(NoAnswer):
                    if wire.send(url, "GET", "/healthz").status == 200:
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} is not healthy after the chaos")
                time.sleep(0.05)
    finally:
        wire.close()


def set_up_queue(url: str, settings: Settings, receiver: Receiver, deadline: float) -> None:
    """Give the queue its cap, create the schedule, and make the push queue push to
    `receiver` with its own cap (when there are), before any client starts."""
    if settings.max_processing:
        body = {"max_processing": settings.max_processing}
        _send_until_2xx(url, "PATCH", f"/queues/{QUEUE}", body, deadline)
    if settings.schedule_every:
        body = {"queue": TICKS, "payload": {}, "every": settings.schedule_every}
        _send_until_2xx(url, "PUT", f"/schedules/{SCHEDULE}", body, deadline)
    if settings.push_producers:
        push = {"url": receiver.url, "timeout_seconds": settings.push_timeout}
        body = {"max_processing": settings.push_cap, "push": push}
        reply = _send_until_2xx(url, "PATCH", f"/queues/{PUSH_QUEUE}", body, deadline)
        # Only the PATCH that first sets push shows the secret: one whose answer was lost and
        # was sent again gets none (nothing is killed yet, so that is not expected).
        secret = reply.document["settings"]["push"].get("secret")
        if secret is None:
            raise RuntimeError(f"PATCH /queues/{PUSH_QUEUE} answered without the push secret")
        receiver.secret = secret


def _send_until_2xx(url: str, method: str, path: str, body: Any, deadline: float) -> Reply:
    wire = Wire(2.0)
    try:
        while True:
            with contextlib.suppress(NoAnswer):
                reply = wire.send(url, method, path, body)
                if reply.status < 300:
                    return reply
                if reply.status < 500:
                    raise RuntimeError(f"{method} {path} answered {reply.status}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{method} {path} got no 2xx")
            time.sleep(0.05)
    finally:
        wire.close()


def fire_times(url: str, settings: Settings, deadline: float) -> list[str]:
    """The `fire_time` of every task the schedule enqueued (nobody consumes them)."""
    if not settings.schedule_every:
        return []
    found: list[str] = []
    while True:
        path = f"/queue/view?queue={TICKS}&status=pending&limit=100&offset={len(found)}"
        page = _send_until_2xx(url, "GET", path, None, deadline).document
        found += [task["fire_time"] for task in page if task.get("schedule") == SCHEDULE]
        if len(page) < 100:
            return found


def drain(url: str, give_up_at: float, timeout: float) -> bool:
    """Wait until the clients' queue and the push queue hold nothing unfinished (True), or
    `give_up_at`."""
    wire = Wire(timeout)
    try:
        while time.monotonic() < give_up_at:
            if unfinished(url, wire, QUEUE) == 0 and unfinished(url, wire, PUSH_QUEUE) == 0:
                return True
            time.sleep(0.05)
        return False
    finally:
        wire.close()


def unfinished(url: str, wire: Wire, queue: str) -> int | None:
    """Tasks of `queue` not yet completed or failed, or None when the server did not answer."""
    counts = _stats(url, wire, queue)
    if counts is None:
        return None
    return counts["pending"] + counts["scheduled"] + counts["processing"] + counts["waiting"]


def stored_tasks(url: str, deadline: float) -> int:
    """How many tasks the store holds in the clients' queue and the push queue, in every
    state."""
    wire = Wire(2.0)
    stored = 0
    try:
        for queue in (QUEUE, PUSH_QUEUE):
            while (counts := _stats(url, wire, queue)) is None:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} did not answer GET /queue/stats")
                time.sleep(0.05)
            stored += sum(counts.values())
        return stored
    finally:
        wire.close()


def _stats(url: str, wire: Wire, queue: str) -> dict[str, int] | None:
    try:
        reply = wire.send(url, "GET", f"/queue/stats?queue={queue}")
    except NoAnswer:
        return None
    return reply.document if reply.status == 200 else None


def read_tasks(url: str, ids: list[str], deadline: float) -> dict[str, dict | None]:
    """Every task by id (None for a 404), read by a few threads."""

    def read(chunk: list[str]) -> dict[str, dict | None]:
        found: dict[str, dict | None] = {}
        wire = Wire(2.0)
        try:
            for task_id in chunk:
                while True:
                    with contextlib.suppress(NoAnswer):
                        reply = wire.send(url, "GET", f"/tasks/{task_id}")
                        if reply.status in (200, 404):
                            found[task_id] = reply.document if reply.status == 200 else None
                            break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"GET /tasks/{task_id} got no 200 or 404")
                    time.sleep(0.05)
        finally:
            wire.close()
        return found

    readers = 4
    with ThreadPoolExecutor(readers) as pool:
        parts = pool.map(read, [ids[n::readers] for n in range(readers)])
        return {task_id: task for part in parts for task_id, task in part.items()}


# --- the verdict -------------------------------------------------------------------------------


CHECKS = {
    "lost": "acknowledged enqueues lost (404 or not completed)",
    "completed twice": "tasks completed with 200 under two lease ids",
    "completed unconfirmed": "completed, but that lease's complete never got a 200",
    "unexplained redeliveries": "redeliveries before the lease expired, no fail acknowledged",
    "extra tasks": "tasks stored beyond acknowledged and given-up enqueues",
    "group overlap": "two tasks of one group held at once",
    "group order": "grouped tasks first delivered before one enqueued earlier",
    "cap exceeded": "more leases held at once than max_processing",
    "delivered while paused": "dequeues wholly inside a pause that got a task",
    "workflow order": "children delivered before their parent completed",
    "schedule fired twice": "occurrences of the schedule enqueued twice",
    "history disagrees": "histories that miss or misname a completion or a release",
    **PUSH_CHECKS,
}


@dataclass(frozen=True)
class Control:
    """How much of queue control a run exercised."""

    max_processing: int
    most_held: int
    """The most leases consumers surely held at once."""
    grouped_tasks: int
    """Acknowledged grouped tasks delivered at least once: those the group checks judge."""
    groups: int
    pauses: int
    dequeues_in_pauses: int
    """Dequeues sent after a pause was acknowledged and answered before its resume was sent."""
    workflows: int = 0
    """Acknowledged workflows (a parent and a child)."""
    fired: int = 0
    """Tasks the schedule enqueued."""


@dataclass
class Report:
    """The checks (each must be 0) and the figures of one backend's run."""

    backend: str
    seed: int
    checks: dict[str, int]
    examples: dict[str, list[str]]
    acknowledged: int
    completions: int
    deliveries: int
    kills: Counter[str]
    counts: Counter[str]
    chaos_seconds: float
    drain_seconds: float
    drained: bool
    control: Control
    push: PushFigures = field(default_factory=PushFigures)

    @property
    def ok(self) -> bool:
        return not any(self.checks.values())

    def unavailable_by_type(self) -> dict[str, int]:
        return {
            name.removeprefix("503 "): n
            for name, n in sorted(self.counts.items())
            if name.startswith("503 ")
        }

    def refused(self) -> int:
        """Enqueues answered with a 4xx: none is expected."""
        return sum(n for name, n in self.counts.items() if name.startswith("enqueue answered"))

    def render(self) -> str:
        kills = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kills.items())) or "none"
        drain = f"{self.drain_seconds:.1f} s drain" + ("" if self.drained else " (timed out)")
        lines = [
            f"{self.backend}: {self.chaos_seconds:.1f} s chaos + {drain}; kills: {kills}; "
            f"--seed {self.seed}",
            f"  {'check':<62} {'count':>6} {'must be':>8}",
        ]
        for name, text in CHECKS.items():
            count = self.checks[name]
            verdict = "ok" if count == 0 else "FAIL"
            lines.append(f"  {text:<62} {count:>6} {0:>8}  {verdict}")
            lines += [f"      e.g. {example}" for example in self.examples[name][:3]]
        finished = self.chaos_seconds + self.drain_seconds
        unavailable = ", ".join(f"{kind} {n}" for kind, n in self.unavailable_by_type().items())
        counts = self.counts
        lines += [
            f"  acknowledged enqueues {self.acknowledged} "
            f"({self.acknowledged / self.chaos_seconds:.0f}/s), "
            f"completions {self.completions} ({self.completions / finished:.0f}/s), "
            f"deliveries {self.deliveries}",
            f"  client retries {counts['retries']}, unanswered requests "
            f"{counts['no answer'] + counts['dequeues unanswered']}, "
            f"503s {counts['503']} ({unavailable or 'none'}), "
            f"of them outcome-unknown {counts['503 ' + OUTCOME_UNKNOWN]}",
            f"  complete/fail answered 409 {counts['409']}, given up "
            f"{counts['gave up'] + counts['enqueues given up']}, "
            f"other 5xx {counts['other 5xx']}, enqueues refused {self.refused()}",
            f"  queue control: max_processing {self.control.max_processing or 'none'} "
            f"(most leases held at once {self.control.most_held}), "
            f"grouped tasks {self.control.grouped_tasks} in {self.control.groups} groups, "
            f"pauses {self.control.pauses} (dequeues inside them "
            f"{self.control.dequeues_in_pauses})",
            f"  workflows {self.control.workflows}, schedule occurrences fired "
            f"{self.control.fired}",
            f"  push: {self.push.acknowledged} tasks acknowledged, {self.push.pushes} pushes "
            f"by {self.push.pushers} pushers ({self.push.failed_answers} answered 503, "
            f"{self.push.pushed_after_expiry} after a lease ran out), most in flight "
            f"{self.push.most_in_flight} (max_processing {self.push.cap}), "
            f"pulls refused {self.push.pulls_refused}",
        ]
        return "\n".join(lines)


def judge(
    history: History,
    tasks: dict[str, dict | None],
    stored: int,
    max_processing: int = 0,
    fired: list[str] | None = None,
) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Count each check's violations, with examples of each. `stored`: the tasks the store
    holds at the end, in every state; `max_processing`: the queue's cap (0: none); `fired`:
    the fire time of each task the schedule enqueued."""
    examples = {
        "lost": list(_lost(tasks)),
        "completed twice": list(_completed_twice(history)),
        "completed unconfirmed": list(_completed_unconfirmed(history, tasks)),
        "unexplained redeliveries": list(_unexplained_redeliveries(history)),
        "group overlap": list(_group_overlaps(history)),
        "group order": list(_group_order(history)),
        "cap exceeded": _concurrency(history, max_processing)[1] if max_processing else [],
        "delivered while paused": [
            f"task {delivery.task_id}: dequeue sent {delivery.sent - pause.acknowledged:.3f} s "
            f"after the pause was acknowledged, answered "
            f"{pause.resume_sent - delivery.answered:.3f} s before the resume was sent"
            for delivery, pause in _inside_pauses(history, history.deliveries)
        ],
        "workflow order": list(_workflow_order(history, tasks)),
        "schedule fired twice": [
            f"{when}: {n} tasks" for when, n in Counter(fired or []).items() if n > 1
        ],
        "history disagrees": list(_history_disagrees(history, tasks)),
    }
    checks = {name: len(found) for name, found in examples.items()}
    # An enqueue given up on may have been applied; beyond those, a task the store holds
    # and no acknowledged enqueue names was created twice by one Idempotency-Key.
    explained = (
        len(set(history.acknowledged))
        + len(set(history.pushed))
        + history.counts["enqueues given up"]
    )
    checks["extra tasks"] = max(0, stored - explained)
    examples["extra tasks"] = (
        [f"{stored} tasks stored, {explained} enqueues acknowledged or given up"]
        if checks["extra tasks"]
        else []
    )
    return checks, examples


def _workflow_order(history: History, tasks: dict[str, dict | None]) -> Iterator[str]:
    """A child delivered (the server's start time) before its parent completed (the server's
    finish time: a completed task never finishes again)."""
    started: defaultdict[str, list[float]] = defaultdict(list)
    for delivery in history.deliveries:
        started[delivery.task_id].append(delivery.started_at)
    for parent_id, child_id in history.workflows:
        parent = tasks.get(parent_id)
        finished = parent and parent["status"] == "completed" and parent["finished_at"]
        for start in started.get(child_id, []):
            if not finished or start < epoch(finished) - EXPIRY_TOLERANCE:
                when = finished or "never"
                yield f"child {child_id} delivered at {start} before parent {parent_id} ({when})"


def _history_disagrees(history: History, tasks: dict[str, dict | None]) -> Iterator[str]:
    """A completed task's last history entry is its completion, under the lease its result
    names, by the worker that lease was delivered to; a child shows `waiting` and `released`,
    in that order, before any delivery (unless older entries fell out of its last 20)."""
    worker_of = {delivery.lease_id: delivery.worker for delivery in history.deliveries}
    for task_id, task in tasks.items():
        if task is None or task["status"] != "completed":
            continue
        events = task.get("history") or []
        last = events[-1] if events else {}
        result = task.get("result")
        lease_id = result.get("lease_id") if isinstance(result, dict) else None
        wanted = ("completed", lease_id, worker_of.get(lease_id or ""))
        seen = (last.get("event"), last.get("lease_id"), last.get("worker"))
        if seen != wanted:
            yield f"{task_id}: last history entry {seen}, expected {wanted}"
    for _, child_id in history.workflows:
        child = tasks.get(child_id)
        names = [entry["event"] for entry in (child or {}).get("history") or []]
        if names[:1] != ["enqueued"]:
            continue  # the start fell out of its last 20 entries
        if names[:3] != ["enqueued", "waiting", "released"]:
            yield f"child {child_id}: history begins {names[:4]}"


def _lost(tasks: dict[str, dict | None]) -> Iterator[str]:
    for task_id, task in tasks.items():
        if task is None or task["status"] != "completed":
            yield f"{task_id}: {'404' if task is None else task['status']}"


def _completed_twice(history: History) -> Iterator[str]:
    confirmed: defaultdict[str, set[str]] = defaultdict(set)
    for outcome in history.outcomes.values():
        if outcome.action == "complete" and outcome.status == 200:
            confirmed[outcome.task_id].add(outcome.lease_id)
    for task_id, leases in confirmed.items():
        if len(leases) > 1:
            yield f"{task_id}: leases {sorted(leases)}"


def _completed_unconfirmed(history: History, tasks: dict[str, dict | None]) -> Iterator[str]:
    for task_id, task in tasks.items():
        if task is None or task["status"] != "completed":
            continue
        result = task.get("result")
        lease_id = result.get("lease_id") if isinstance(result, dict) else None
        outcome = history.outcomes.get(lease_id or "")
        if outcome is None:
            yield f"{task_id}: completed by lease {lease_id}, which no client completed"
        elif outcome.action != "complete" or outcome.status != 200:
            yield (
                f"{task_id}: completed by lease {lease_id}, whose {outcome.action} was "
                f"answered {_answers(outcome)}"
            )


def _answers(outcome: Outcome) -> str:
    """The answers to each try, "-" for none: `-, 409`."""
    return ", ".join(outcome.answers) + ("" if outcome.status else " (gave up)")


def _unexplained_redeliveries(history: History) -> Iterator[str]:
    by_task: defaultdict[str, list[Delivery]] = defaultdict(list)
    for delivery in history.deliveries:
        by_task[delivery.task_id].append(delivery)
    for task_id, deliveries in by_task.items():
        deliveries.sort(key=lambda delivery: delivery.started_at)
        for first, second in pairwise(deliveries):
            outcome = history.outcomes.get(first.lease_id)
            failed = outcome is not None and outcome.action == "fail" and outcome.status == 200
            if failed or second.started_at >= first.lease_expires_at - EXPIRY_TOLERANCE:
                continue
            told = "nothing" if outcome is None else f"{outcome.action} {_answers(outcome)}"
            early = first.lease_expires_at - second.started_at
            yield (
                f"{task_id}: lease {second.lease_id} started {early:.3f} s before lease "
                f"{first.lease_id} expired (whose client got {told})"
            )


def _held(delivery: Delivery, history: History) -> tuple[float, float] | None:
    """On the wall clock, when the lease was surely held, or None if never surely: from the
    dequeue's answer until the complete or fail was first sent, and until shortly before the
    expiry the server gave it (the two clocks may differ a little)."""
    end = delivery.lease_expires_at - EXPIRY_TOLERANCE
    outcome = history.outcomes.get(delivery.lease_id)
    if outcome is not None:
        end = min(end, outcome.sent_wall)
    return (delivery.answered_wall, end) if end > delivery.answered_wall else None


def _group_overlaps(history: History) -> Iterator[str]:
    by_group: defaultdict[str, list[tuple[float, float, Delivery]]] = defaultdict(list)
    for delivery in history.deliveries:
        held = _held(delivery, history)
        if delivery.group is not None and held is not None:
            by_group[delivery.group].append((*held, delivery))
    for group, leases in by_group.items():
        leases.sort(key=lambda lease: lease[0])
        holding: list[tuple[float, Delivery]] = []
        for start, end, delivery in leases:
            holding = [(until, other) for until, other in holding if until > start]
            for until, other in holding:
                yield (
                    f"{group}: lease {delivery.lease_id} of task {delivery.task_id} held while "
                    f"lease {other.lease_id} of task {other.task_id} was, for "
                    f"{(min(until, end) - start) * 1000:.1f} ms"
                )
            holding.append((end, delivery))


def _group_order(history: History) -> Iterator[str]:
    """A task Y of a group first delivered before a task X of it whose enqueue was
    acknowledged before Y's was first sent. X's first known delivery started before X was
    completed, and Y's turn comes only after that: so it is out of order only if Y's first
    dequeue was answered before X's first was sent."""
    first: dict[str, Delivery] = {}
    for delivery in history.deliveries:
        known = first.get(delivery.task_id)
        if delivery.task_id in history.grouped and (known is None or delivery.sent < known.sent):
            first[delivery.task_id] = delivery
    by_group: defaultdict[str, list[Enqueue]] = defaultdict(list)
    for enqueue in history.grouped.values():
        if enqueue.task_id in first:
            by_group[enqueue.group].append(enqueue)
    for group, enqueues in by_group.items():
        enqueues.sort(key=lambda enqueue: enqueue.acknowledged)
        acknowledged = [enqueue.acknowledged for enqueue in enqueues]
        # latest[n]: of the first n + 1 acknowledged, the one first dequeued last
        latest: list[Enqueue] = []
        for enqueue in enqueues:
            later = not latest or first[enqueue.task_id].sent > first[latest[-1].task_id].sent
            latest.append(enqueue if later else latest[-1])
        for enqueue in enqueues:
            before = bisect_right(acknowledged, enqueue.sent)
            if not before:
                continue
            earlier = latest[before - 1]
            delivered, due_after = first[enqueue.task_id], first[earlier.task_id]
            if delivered.answered < due_after.sent:
                yield (
                    f"{group}: task {enqueue.task_id} first delivered "
                    f"{due_after.sent - delivered.answered:.3f} s before task "
                    f"{earlier.task_id}, whose enqueue was acknowledged before its own was sent"
                )


def _concurrency(history: History, cap: int) -> tuple[int, list[str]]:
    """The most leases surely held at once, and each lease that took them over `cap`."""
    held = []
    for delivery in history.deliveries:
        surely = _held(delivery, history)
        if surely is not None:
            held.append((*surely, delivery.lease_id))
    return most_at_once(held, cap, "leases held")


def _inside_pauses(
    history: History, dequeues: list[Delivery] | list[tuple[float, float]]
) -> Iterator[tuple[Any, Pause]]:
    """Each of `dequeues` (a delivery, or a 404's sent and answered times) sent after a pause
    was acknowledged and answered before its resume was sent, with that pause."""
    pauses = sorted(history.pauses, key=lambda pause: pause.acknowledged)
    starts = [pause.acknowledged for pause in pauses]
    for dequeue in dequeues:
        sent, answered = (
            (dequeue.sent, dequeue.answered) if isinstance(dequeue, Delivery) else dequeue
        )
        before = bisect_right(starts, sent)
        if before and answered <= pauses[before - 1].resume_sent:
            yield dequeue, pauses[before - 1]


def control_figures(history: History, settings: Settings, fired: int = 0) -> Control:
    grouped = {d.task_id for d in history.deliveries if d.task_id in history.grouped}
    inside = [*_inside_pauses(history, history.deliveries)]
    inside += _inside_pauses(history, history.empty_dequeues)
    return Control(
        max_processing=settings.max_processing,
        most_held=_concurrency(history, 0)[0],
        grouped_tasks=len(grouped),
        groups=len({enqueue.group for enqueue in history.grouped.values()}),
        pauses=len(history.pauses),
        dequeues_in_pauses=len(inside),
        workflows=len(history.workflows),
        fired=fired,
    )


# --- one run -----------------------------------------------------------------------------------


def kill_plan(kinds: tuple[str, ...], kills: int, rng: random.Random) -> list[str]:
    """What each kill takes down: alternating between the kinds, from a random first one, so
    that even a short run kills each kind."""
    first = rng.randrange(len(kinds))
    return [kinds[(first + n) % len(kinds)] for n in range(kills)]


def run(backend: str, settings: Settings, directory: Path) -> Report:
    """Start `backend`'s processes in `directory`, run the chaos, drain, read back, judge."""
    if settings.seed is None:  # one drawn here, so that the report can name it
        settings = replace(settings, seed=random.randrange(2**32))
    seed = settings.seed or 0
    receiver = Receiver(settings.push_fail_fraction, settings.push_hold, seed - 2)
    with receiver:
        system = SYSTEMS[backend](directory)
        try:
            return _run(system, backend, settings, receiver, random.Random(seed))
        finally:
            system.close()


def _run(
    system: System, backend: str, settings: Settings, receiver: Receiver, rng: random.Random
) -> Report:
    history = History()
    set_up_queue(system.urls[0], settings, receiver, time.monotonic() + 30)
    started = time.monotonic()
    chaos_ends = started + settings.seconds
    give_up_at = chaos_ends + settings.drain_seconds
    clients = Clients(system.urls, settings, history, give_up_at)
    receiver.on_taken = lambda _task_id: clients.push_backlog.done()
    clients.start()
    kills: Counter[str] = Counter()
    try:
        interval = settings.seconds / (settings.kills + 1)
        for number, kind in enumerate(kill_plan(system.kinds, settings.kills, rng)):
            # Evenly spread, jittered by a quarter interval, never before the clients warm up.
            at = started + interval * (number + 1 + rng.uniform(-0.25, 0.25))
            time.sleep(max(0.0, at - time.monotonic()))
            restart = system.kill(kind, rng)
            time.sleep(rng.uniform(0, settings.max_downtime))
            restart()
            kills[kind] += 1
        time.sleep(max(0.0, chaos_ends - time.monotonic()))
        chaos_seconds = time.monotonic() - started
        wait_until_healthy(system.urls, time.monotonic() + 30)
        clients.join_producers()

        drain_started = time.monotonic()
        drained = drain(system.urls[0], give_up_at, settings.request_timeout)
        drain_seconds = time.monotonic() - drain_started
    except BaseException:
        clients.abandon()
        raise
    finally:
        clients.join_consumers()
    if clients.errors:
        raise RuntimeError("clients broke: " + "; ".join(clients.errors))

    tasks = read_tasks(system.urls[0], history.acknowledged, time.monotonic() + 60)
    pushed = read_tasks(system.urls[0], history.pushed, time.monotonic() + 60)
    fired = fire_times(system.urls[0], settings, time.monotonic() + 10)
    stored = stored_tasks(system.urls[0], time.monotonic() + 10)
    with receiver.lock:
        pushes = list(receiver.pushes)
    checks, examples = judge(history, tasks, stored, settings.max_processing, fired)
    found = push_checks(
        pushes,
        acknowledged=history.pushed,
        tasks=pushed,
        cap=settings.push_cap,
        timeout=settings.push_timeout,
        pulled=history.pulled,
    )
    examples |= found
    checks |= {name: len(violations) for name, violations in found.items()}
    counts = history.counts.copy()
    for outcome in history.outcomes.values():
        if outcome.status == 409:
            counts["409"] += 1
        elif outcome.status is None:
            counts["gave up"] += 1
    completions = sum(1 for task in tasks.values() if task and task["status"] == "completed")
    return Report(
        backend=backend,
        seed=settings.seed or 0,
        checks=checks,
        examples=examples,
        acknowledged=len(history.acknowledged),
        completions=completions,
        deliveries=len(history.deliveries),
        kills=kills,
        counts=counts,
        chaos_seconds=chaos_seconds,
        drain_seconds=drain_seconds,
        drained=drained,
        control=control_figures(history, settings, len(fired)),
        push=push_figures(
            pushes, len(history.pushed), settings.push_cap, history.counts["pulls refused"]
        ),
    )


@contextlib.contextmanager
def scratch(keep: Path | None) -> Iterator[Path]:
    """`keep` (the logs and data stay there), or a temporary directory removed afterwards."""
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="tq-chaos-") as directory:
        yield Path(directory)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "redis", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=Settings.seconds, help="chaos phase")
    parser.add_argument("--kills", type=int, default=Settings.kills, help="kills per backend")
    parser.add_argument("--producers", type=int, default=Settings.producers)
    parser.add_argument("--consumers", type=int, default=Settings.consumers)
    parser.add_argument("--lease", type=float, default=Settings.lease, help="lease seconds")
    parser.add_argument("--fail-fraction", type=float, default=Settings.fail_fraction)
    parser.add_argument("--drain-seconds", type=float, default=Settings.drain_seconds)
    parser.add_argument("--max-backlog", type=int, default=Settings.max_backlog)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--groups", type=int, default=Settings.groups, help="group names (0: no groups)"
    )
    parser.add_argument(
        "--max-processing",
        type=int,
        default=Settings.max_processing,
        help="the queue's cap (0: none)",
    )
    parser.add_argument(
        "--pause-every",
        type=float,
        default=Settings.pause_every,
        help="mean seconds between pauses (0: never paused)",
    )
    parser.add_argument(
        "--pause-for", type=float, default=Settings.pause_for, help="seconds each pause lasts"
    )
    parser.add_argument(
        "--workflow-every",
        type=int,
        default=Settings.workflow_every,
        help="every so many tasks of an ungrouped producer is a workflow (0: none)",
    )
    parser.add_argument(
        "--schedule-every",
        type=float,
        default=Settings.schedule_every,
        help="seconds between the schedule's occurrences (0: none)",
    )
    parser.add_argument(
        "--push-producers",
        type=int,
        default=Settings.push_producers,
        help="producers into the push queue (0: no push queue)",
    )
    parser.add_argument(
        "--push-cap", type=int, default=Settings.push_cap, help="the push queue's cap"
    )
    parser.add_argument(
        "--push-fail-fraction",
        type=float,
        default=Settings.push_fail_fraction,
        help="pushes the receiver answers 503",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep logs and data here")
    args = parser.parse_args(argv)
    settings = Settings(
        seconds=args.seconds,
        kills=args.kills,
        producers=args.producers,
        consumers=args.consumers,
        lease=args.lease,
        fail_fraction=args.fail_fraction,
        drain_seconds=args.drain_seconds,
        max_backlog=args.max_backlog,
        seed=args.seed,
        groups=args.groups,
        max_processing=args.max_processing,
        pause_every=args.pause_every,
        pause_for=args.pause_for,
        workflow_every=args.workflow_every,
        schedule_every=args.schedule_every,
        push_producers=args.push_producers,
        push_cap=args.push_cap,
        push_fail_fraction=args.push_fail_fraction,
    )
    backends = ["sqlite", "redis"] if args.backend == "both" else [args.backend]
    ok = True
    for backend in backends:
        with scratch(args.keep and args.keep / backend) as directory:
            report = run(backend, settings, directory)
        print(report.render(), flush=True)
        ok = ok and report.ok
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
