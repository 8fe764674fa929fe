"""Task routes: enqueue, dequeue, read and complete one task."""

from __future__ import annotations

from .. import validation
from ..errors import TaskNotFound
from .base import ApiHandler, Problem


class TasksHandler(ApiHandler):
    """`POST /tasks`: enqueue a task."""

    async def post(self) -> None:
        new_task = validation.new_task(self.json_body())
        task = await self.call_store(self.store.enqueue, new_task)
        self.set_header("Location", f"/tasks/{task.id}")
        self.write_task(task, status=201)


class DequeueHandler(ApiHandler):
    """`POST /tasks/dequeue`: lease the oldest pending task."""

    async def post(self) -> None:
        self.body_bytes()  # enforce the body limit even though the body is unused
        task = await self.call_store(self.store.dequeue)
        if task is None:
            raise Problem(404, "the queue is empty: no pending task to dequeue")
        self.write_task(task)


class TaskHandler(ApiHandler):
    """`GET /tasks/{id}`: one task."""

    async def get(self, task_id: str) -> None:
        task = await self.call_store(self.store.get, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        self.write_task(task)


class CompleteHandler(ApiHandler):
    """`PUT /tasks/{id}/complete`: mark a processing task completed."""

    async def put(self, task_id: str) -> None:
        validation.complete_request(self.json_body())
        task = await self.call_store(self.store.complete, task_id)
        self.write_task(task)
