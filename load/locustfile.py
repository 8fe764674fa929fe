"""Load test: producers enqueue, workers dequeue and complete.

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
