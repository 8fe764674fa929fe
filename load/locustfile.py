"""Load test: producers enqueue (one by one and in batches), workers dequeue and complete
(polling, long-polling and in batches), observers read the queue.

    locust -f load/locustfile.py --host http://127.0.0.1:8000            # web UI on :8089
    locust -f load/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 30s

An empty-queue 404 on dequeue is the normal answer when workers outpace producers, so it counts
as a success; every other answer than the expected ones is a failure.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from locust import HttpUser, between, task

JSON = {"Content-Type": "application/json"}
EMPTY = 404  # a dequeue that found nothing


class QueueUser(HttpUser):
    """Shared calls: each request passes only with one of the statuses it expects."""

    abstract = True
    wait_time = between(0.0, 0.01)

    def call(
        self,
        method: str,
        path: str,
        expected: tuple[int, ...],
        name: str | None = None,
        check: Callable[[Any], str | None] = lambda _body: None,
        **kw: Any,
    ) -> Any:
        """Make a request; return its JSON body when its status is expected (None for 404).
        `check` may find fault with the body: its message fails the request."""
        with self.client.request(
            method, path, name=name, catch_response=True, headers=JSON, **kw
        ) as response:
            if response.status_code not in expected:
                response.failure(
                    f"{method} {path} answered {response.status_code}: {response.text}"
                )
                return None
            body = None if response.status_code == EMPTY else response.json()
            fault = check(body)
            if fault:
                response.failure(fault)
            else:
                response.success()
            return body

    def complete(self, claimed: dict[str, Any]) -> None:
        self.call(
            "PUT",
            f"/tasks/{claimed['id']}/complete",
            (200,),
            name="/tasks/[id]/complete",
            json={"result": {"ok": True}, "lease_id": claimed["lease_id"]},
        )


class Producer(QueueUser):
    """Enqueues small tasks as fast as a busy backend service would."""

    @task
    def enqueue(self) -> None:
        payload = {"job": "send_email", "to": f"user{random.randrange(10**6)}@example.com"}
        self.call("POST", "/tasks", (201,), json={"payload": payload})


class BatchProducer(QueueUser):
    """Enqueues 50 tasks per request, with mixed priorities."""

    wait_time = between(0.05, 0.1)

    @task
    def enqueue_batch(self) -> None:
        tasks = [{"payload": {"job": "resize", "image": n}, "priority": n % 3} for n in range(50)]
        self.call("POST", "/tasks/batch", (201,), json={"tasks": tasks})


class Worker(QueueUser):
    """Claims the first task and completes it under its lease; an empty queue is not an error."""

    @task
    def dequeue_and_complete(self) -> None:
        claimed = self.call("POST", "/tasks/dequeue", (200, EMPTY))
        if claimed:
            self.complete(claimed)


class LongPollWorker(QueueUser):
    """Waits on the server for work (long-poll) instead of polling, then completes it."""

    @task
    def wait_then_complete(self) -> None:
        claimed = self.call("POST", "/tasks/dequeue?wait=2", (200, EMPTY))
        if claimed:
            self.complete(claimed)


class BatchWorker(QueueUser):
    """Claims up to 50 tasks at a time and completes them in one request."""

    wait_time = between(0.0, 0.05)

    @task
    def dequeue_and_complete_batch(self) -> None:
        claimed = self.call("POST", "/tasks/dequeue/batch?count=50&wait=1", (200,))
        if not claimed or not claimed["tasks"]:
            return
        items = [{"id": each["id"], "lease_id": each["lease_id"]} for each in claimed["tasks"]]
        self.call(
            "POST",
            "/tasks/complete/batch",
            (200,),
            json={"tasks": items},
            check=lambda body: (
                None
                if all(result["status"] == 200 for result in body["results"])
                else f"batch complete refused items: {body['results']}"
            ),
        )


class Observer(QueueUser):
    """Reads the queue the way a dashboard would."""

    wait_time = between(0.5, 1.0)

    @task(3)
    def stats(self) -> None:
        self.call("GET", "/queue/stats", (200,))

    @task
    def view(self) -> None:
        self.call("GET", "/queue/view?limit=50", (200,))

    @task
    def queues(self) -> None:
        self.call("GET", "/queues", (200,))
