"""Task routes: enqueue, dequeue, read, and the commands on one task."""

from __future__ import annotations

from .. import validation
from ..errors import TaskNotFound
from .base import ApiHandler, Problem

MIN_LEASE_SECONDS = 1
MAX_LEASE_SECONDS = 43_200


class LeaseArguments(ApiHandler):
    """Helpers for routes that take `?lease=` and `?lease_id=`."""

    def lease_seconds(self) -> float | None:
        return self.number_argument("lease", None, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS)

    def query_lease_id(self) -> str | None:
        return self.query_argument("lease_id")


class TasksHandler(ApiHandler):
    """`POST /tasks`: enqueue a task."""

    async def post(self) -> None:
        new_task = validation.new_task(self.json_body())
        task = await self.call_store(self.store.enqueue, new_task)
        self.set_header("Location", f"/tasks/{task.id}")
        self.write_task(task, status=201)


class DequeueHandler(LeaseArguments):
    """`POST /tasks/dequeue?lease=S`: lease the oldest pending task."""

    async def post(self) -> None:
        lease = self.lease_seconds()
        self.body_bytes()  # enforce the body limit even though the body is unused
        task = await self.call_store(self.store.dequeue, lease)
        if task is None:
            raise Problem(404, "the queue is empty: no pending task to dequeue")
        self.write_task(task)


class TaskHandler(ApiHandler):
    """`GET /tasks/{id}`: one task. `DELETE /tasks/{id}`: remove it (not while processing)."""

    async def get(self, task_id: str) -> None:
        task = await self.call_store(self.store.get, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        self.write_task(task)

    head = get

    async def delete(self, task_id: str) -> None:
        await self.call_store(self.store.delete, task_id)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class CompleteHandler(LeaseArguments):
    """`PUT /tasks/{id}/complete`: finish a processing task, optionally with a result."""

    async def put(self, task_id: str) -> None:
        done = validation.completion(self.json_body(), self.query_lease_id())
        task = await self.call_store(self.store.complete, task_id, done.result, done.lease_id)
        self.write_task(task)


class FailHandler(LeaseArguments):
    """`PUT /tasks/{id}/fail`: record a failed attempt; retried after a backoff or dead."""

    async def put(self, task_id: str) -> None:
        failed = validation.failure(self.json_body(), self.query_lease_id())
        task = await self.call_store(
            self.store.fail, task_id, failed.error, failed.retry, failed.lease_id
        )
        self.write_task(task)


class HeartbeatHandler(LeaseArguments):
    """`PUT /tasks/{id}/heartbeat?lease=S`: extend a processing task's lease from now."""

    async def put(self, task_id: str) -> None:
        lease = self.lease_seconds()
        lease_id = validation.heartbeat(self.json_body(), self.query_lease_id())
        task = await self.call_store(self.store.heartbeat, task_id, lease, lease_id)
        self.write_task(task)


class RetryHandler(ApiHandler):
    """`POST /tasks/{id}/retry`: put a failed task back in the queue with fresh attempts."""

    async def post(self, task_id: str) -> None:
        self.body_bytes()
        task = await self.call_store(self.store.retry, task_id)
        self.write_task(task)
