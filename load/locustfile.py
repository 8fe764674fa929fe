"""Load test: producers enqueue (one by one and in batches), workers dequeue and complete
(polling, long-polling and in batches), observers read the queue.

    locust -f load/locustfile.py --host http://127.0.0.1:8000            # web UI on :8089
    locust -f load/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 30s

An empty-queue 404 on dequeue is the normal answer when workers outpace producers, so it counts
as a success; every other non-2xx is a failure.
"""

from __future__ import annotations

import random

from locust import HttpUser, between, task

JSON = {"Content-Type": "application/json"}


class Producer(HttpUser):
    """Enqueues small tasks as fast as a busy backend service would."""

    weight = 1
    wait_time = between(0.0, 0.01)

    @task
    def enqueue(self) -> None:
        payload = {"job": "send_email", "to": f"user{random.randrange(10**6)}@example.com"}
        with self.client.post(
            "/tasks", json={"payload": payload}, headers=JSON, catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"enqueue answered {response.status_code}: {response.text}")


class Worker(HttpUser):
    """Claims the oldest task and completes it under its lease; an empty queue is not an error."""

    weight = 1
    wait_time = between(0.0, 0.01)

    @task
    def dequeue_and_complete(self) -> None:
        with self.client.post("/tasks/dequeue", catch_response=True) as response:
            if response.status_code == 404:
                response.success()  # nothing to do right now
                return
            if response.status_code != 200:
                response.failure(f"dequeue answered {response.status_code}: {response.text}")
                return
            task = response.json()
        with self.client.put(
            f"/tasks/{task['id']}/complete",
            json={"result": {"ok": True}, "lease_id": task["lease_id"]},
            name="/tasks/[id]/complete",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"complete answered {response.status_code}: {response.text}")


class LongPollWorker(HttpUser):
    """Waits on the server for work (long-poll) instead of polling, then completes it."""

    weight = 1
    wait_time = between(0.0, 0.01)

    @task
    def wait_then_complete(self) -> None:
        with self.client.post(
            "/tasks/dequeue?wait=2", name="/tasks/dequeue?wait=2", catch_response=True
        ) as response:
            if response.status_code == 404:
                response.success()  # the wait ended with nothing to do
                return
            if response.status_code != 200:
                response.failure(f"long-poll answered {response.status_code}: {response.text}")
                return
            task = response.json()
        with self.client.put(
            f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}",
            name="/tasks/[id]/complete",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"complete answered {response.status_code}: {response.text}")


class BatchProducer(HttpUser):
    """Enqueues 50 tasks per request, with mixed priorities."""

    weight = 1
    wait_time = between(0.05, 0.1)

    @task
    def enqueue_batch(self) -> None:
        tasks = [{"payload": {"job": "resize", "image": n}, "priority": n % 3} for n in range(50)]
        with self.client.post(
            "/tasks/batch", json={"tasks": tasks}, headers=JSON, catch_response=True
        ) as response:
            if response.status_code != 201:
                response.failure(f"batch answered {response.status_code}: {response.text}")


class BatchWorker(HttpUser):
    """Claims up to 50 tasks at a time and completes them in one request."""

    weight = 1
    wait_time = between(0.0, 0.05)

    @task
    def dequeue_and_complete_batch(self) -> None:
        with self.client.post(
            "/tasks/dequeue/batch?count=50&wait=1",
            name="/tasks/dequeue/batch",
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"batch dequeue answered {response.status_code}")
                return
            tasks = response.json()["tasks"]
        if not tasks:
            return
        items = [{"id": task["id"], "lease_id": task["lease_id"]} for task in tasks]
        with self.client.post(
            "/tasks/complete/batch", json={"tasks": items}, headers=JSON, catch_response=True
        ) as response:
            statuses = {result["status"] for result in response.json().get("results", [])}
            if response.status_code != 200 or statuses != {200}:
                response.failure(f"batch complete answered {response.status_code}: {statuses}")


class Observer(HttpUser):
    """Reads the queue the way a dashboard would."""

    weight = 1
    wait_time = between(0.5, 1.0)

    @task(3)
    def stats(self) -> None:
        self.client.get("/queue/stats")

    @task
    def view(self) -> None:
        self.client.get("/queue/view?limit=50")

    @task
    def queues(self) -> None:
        self.client.get("/queues")
