"""The chaos checker's push queue: a loopback receiver that the servers push to, and the
checks of what it was pushed (see bench/chaos.py).

The receiver verifies each push's Standard Webhooks signature with the independent
`standardwebhooks` package, holds it for a moment, and answers 200 with
`{"lease_id": L}` (so the completed task names the push that finished it) or, now and then,
503 (a failed attempt the servers retry). It is the user's service: the nemesis never kills it.
"""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.chaos_times import EXPIRY_TOLERANCE, epoch, most_at_once

PUSH_QUEUE = "pushed"
"""The queue the servers push; consumers only ever try to dequeue from it and are refused."""

PUSH_CHECKS = {
    "pushes lost": "acknowledged push-queue tasks lost (404 or not completed)",
    "push completed unanswered": "pushed tasks completed by no push the receiver took (200)",
    "unexplained re-pushes": "pushes before the last push's lease expired, unexplained",
    "push cap exceeded": "more pushes in flight at the receiver than max_processing",
    "pushes badly signed": "pushes whose signature or webhook-id does not verify",
    "push queue not refusing": "dequeues from the push queue not refused with 409",
}


@dataclass(frozen=True)
class Push:
    """One push as the receiver saw it; times on the wall clock."""

    task_id: str
    webhook_id: str
    lease_id: str
    started_at: float
    """The server's time when it leased the task for this push."""
    lease_expires_at: float
    worker: str | None
    """The pusher that holds the lease, from the pushed task's history."""
    arrived: float
    answered: float
    """Just before the answer was written: the push was surely in flight until then."""
    status: int
    signed: bool
    """The signature verified with the queue's secret."""


def _pusher_of(task: dict[str, Any]) -> str | None:
    """The worker named by the last delivery in a pushed task's history: the pusher."""
    for entry in reversed(task.get("history") or []):
        if entry.get("event") == "delivered":
            return entry.get("worker")
    return None


class Receiver:
    """`with Receiver(...) as receiver`: pushes to `receiver.url` are kept in
    `receiver.pushes`. `secret` must be set (from the PATCH that turned push on) before the
    first push; `on_taken(task_id)` is called on each task's first 200."""

    def __init__(self, fail_fraction: float, hold: float, seed: int) -> None:
        self.secret: str | None = None
        self.pushes: list[Push] = []
        self.lock = threading.Lock()
        self._fail_fraction = fail_fraction
        self._hold = hold
        self._rng = random.Random(seed)
        self._taken: set[str] = set()
        self.on_taken: Callable[[str], None] = lambda _task_id: None
        receiver = self

        class Hook(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                receiver._answer(self)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _answer(self, hook: BaseHTTPRequestHandler) -> None:
        arrived = time.time()
        body = hook.rfile.read(int(hook.headers.get("Content-Length", "0")))
        headers = {name.lower(): value for name, value in hook.headers.items()}
        task = orjson.loads(body)
        with self.lock:
            fail = self._rng.random() < self._fail_fraction
            hold = self._rng.uniform(0, self._hold)
        time.sleep(hold)  # a push in flight for a moment: servers are killed mid-push
        status = 503 if fail else 200
        answered = time.time()
        with self.lock:
            self.pushes.append(
                Push(
                    task_id=task["id"],
                    webhook_id=headers.get("webhook-id", ""),
                    lease_id=task["lease_id"],
                    started_at=epoch(task["started_at"]),
                    lease_expires_at=epoch(task["lease_expires_at"]),
                    worker=_pusher_of(task),
                    arrived=arrived,
                    answered=answered,
                    status=status,
                    signed=self._verifies(body, headers),
                )
            )
            first = status == 200 and task["id"] not in self._taken
            self._taken.add(task["id"])
        if first:
            self.on_taken(task["id"])
        answer = orjson.dumps({"lease_id": task["lease_id"]}) if status == 200 else b""
        try:
            hook.send_response(status)
            hook.send_header("Content-Type", "application/json")
            hook.send_header("Content-Length", str(len(answer)))
            hook.end_headers()
            hook.wfile.write(answer)
        except OSError:  # the pushing server was killed mid-push
            pass

    def _verifies(self, body: bytes, headers: dict[str, str]) -> bool:
        if self.secret is None:
            return False
        try:
            Webhook(self.secret).verify(body, headers)
        except WebhookVerificationError:
            return False
        return True


# --- the verdict -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PushFigures:
    """How much pushing a run did."""

    acknowledged: int = 0
    """Acknowledged enqueues into the push queue."""
    pushes: int = 0
    failed_answers: int = 0
    """Pushes the receiver answered 503."""
    pushed_after_expiry: int = 0
    """Pushes of a task after its previous push's lease ran out, its outcome never recorded:
    the server holding it was killed mid-push, or its store could not be reached."""
    most_in_flight: int = 0
    cap: int = 0
    pushers: int = 0
    """Distinct pushers (server processes) that pushed."""
    pulls_refused: int = 0
    """Dequeues from the push queue answered 409."""


def push_checks(
    pushes: list[Push],
    *,
    acknowledged: list[str],
    tasks: dict[str, dict | None],
    cap: int,
    timeout: float,
    pulled: list[str],
) -> dict[str, list[str]]:
    """Each push check's violations. `acknowledged`: the push-queue tasks whose enqueue was
    acknowledged, `tasks` them read back at the end; `cap`: the queue's max_processing;
    `timeout`: its push timeout_seconds; `pulled`: what each dequeue from it that was not
    refused got."""
    return {
        "pushes lost": [
            f"{task_id}: {'404' if tasks.get(task_id) is None else tasks[task_id]['status']}"
            for task_id in acknowledged
            if (tasks.get(task_id) or {}).get("status") != "completed"
        ],
        "push completed unanswered": list(_completed_unanswered(pushes, acknowledged, tasks)),
        "unexplained re-pushes": list(_unexplained_repushes(pushes, timeout)),
        "push cap exceeded": _over_cap(pushes, cap)[1],
        "pushes badly signed": [
            f"{push.task_id}: lease {push.lease_id}, webhook-id {push.webhook_id!r}"
            + ("" if push.signed else ", signature does not verify")
            for push in pushes
            if not push.signed or push.webhook_id != push.task_id
        ],
        "push queue not refusing": list(pulled),
    }


def push_figures(
    pushes: list[Push], acknowledged: int, cap: int, pulls_refused: int
) -> PushFigures:
    after_expiry = sum(
        1
        for first, second in _pairs(pushes)
        if second.started_at >= first.lease_expires_at - EXPIRY_TOLERANCE
    )
    return PushFigures(
        acknowledged=acknowledged,
        pushes=len(pushes),
        failed_answers=sum(1 for push in pushes if push.status != 200),
        pushed_after_expiry=after_expiry,
        most_in_flight=_over_cap(pushes, 0)[0],
        cap=cap,
        pushers=len({push.worker for push in pushes}),
        pulls_refused=pulls_refused,
    )


def _pairs(pushes: list[Push]) -> Iterator[tuple[Push, Push]]:
    """Each task's consecutive pushes, in the order the server leased them."""
    by_task: defaultdict[str, list[Push]] = defaultdict(list)
    for push in pushes:
        by_task[push.task_id].append(push)
    for task_pushes in by_task.values():
        task_pushes.sort(key=lambda push: push.started_at)
        yield from pairwise(task_pushes)


def _taken_in_time(push: Push, timeout: float) -> bool:
    """Whether the receiver let `push` end as a success: answered 200 within the timeout."""
    return push.status == 200 and push.answered - push.started_at < timeout


def _unexplained_repushes(pushes: list[Push], timeout: float) -> Iterator[str]:
    """A push of a task leased before the previous push's lease expired, though the receiver
    answered that one 200 within the timeout (a 503 or a timeout is a failed attempt, retried
    at once); or one lease pushed twice."""
    for first, second in _pairs(pushes):
        if first.lease_id == second.lease_id:
            yield f"{first.task_id}: lease {first.lease_id} pushed twice"
        elif _taken_in_time(first, timeout) and (
            second.started_at < first.lease_expires_at - EXPIRY_TOLERANCE
        ):
            early = first.lease_expires_at - second.started_at
            yield (
                f"{first.task_id}: lease {second.lease_id} started {early:.3f} s before lease "
                f"{first.lease_id} expired, which the receiver answered 200"
            )


def _completed_unanswered(
    pushes: list[Push], acknowledged: list[str], tasks: dict[str, dict | None]
) -> Iterator[str]:
    """A completed push task whose result is not the receiver's 200 answer to one of its
    pushes, or whose history does not end in that completion, under that lease, by the pusher
    that pushed it."""
    taken = {push.lease_id: push for push in pushes if push.status == 200}
    for task_id in acknowledged:
        task = tasks.get(task_id)
        if task is None or task["status"] != "completed":
            continue
        result = task.get("result")
        lease_id = result.get("lease_id") if isinstance(result, dict) else None
        push = taken.get(lease_id or "")
        if push is None or push.task_id != task_id or result != {"lease_id": lease_id}:
            yield f"{task_id}: result {result}, which no 200 of the receiver answered"
            continue
        last = (task.get("history") or [{}])[-1]
        seen = (last.get("event"), last.get("lease_id"), last.get("worker"))
        if seen != ("completed", lease_id, push.worker):
            yield f"{task_id}: last history entry {seen}, pushed by {push.worker}"


def _over_cap(pushes: list[Push], cap: int) -> tuple[int, list[str]]:
    """The most pushes surely in flight at the receiver at once (from arrival until the answer
    was written, or until shortly before the lease expired), and each that took them over
    `cap` (0: none)."""
    held = [
        (push.arrived, min(push.answered, push.lease_expires_at - EXPIRY_TOLERANCE), push.lease_id)
        for push in pushes
    ]
    return most_at_once(held, cap, "pushes in flight")
