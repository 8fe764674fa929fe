"""Task routes: enqueue, dequeue (long-poll, batches), read, and the commands on one task."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from types import MappingProxyType

from tornado.ioloop import IOLoop

from tornado_queue import codec, validation
from tornado_queue.errors import TaskNotFound
from tornado_queue.limits import MAX_BATCH, MAX_LEASE_SECONDS, MAX_WAIT_SECONDS, MIN_LEASE_SECONDS
from tornado_queue.models import DEFAULT_QUEUE, FINISHED, Enqueued, Task
from tornado_queue.server.auth import ADMIN, ANY_ROLE, CONSUMERS, PRODUCERS
from tornado_queue.server.handlers.base import ApiHandler, Problem, status_for

# Why a call may be applied again after the store failed mid-operation (see ApiHandler.call_store).
KEYED = "every task has an idempotency key: a repeat replays the first"
FENCED = "fenced by the lease id: a repeat answers as the first did"
SEEN = "seeing a worker again only moves the time it was last seen"


def fenced(lease_id: str | None) -> str | None:
    return FENCED if lease_id is not None else None


class ConsumerArguments(ApiHandler):
    """Query arguments of the consumer routes: `queue`, `lease`, `lease_id`, `wait`; and the
    consumer's name for itself (`X-Worker-Id`)."""

    def queue_argument(self) -> str:
        raw = self.query_argument("queue")
        if raw is None:
            return DEFAULT_QUEUE
        return validation.queue_name(raw, "query parameter 'queue'")

    def lease_seconds(self) -> float | None:
        return self.number_argument("lease", None, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS)

    def query_lease_id(self) -> str | None:
        return self.query_argument("lease_id")

    def wait_seconds(self) -> float:
        return self.number_argument("wait", 0, 0, MAX_WAIT_SECONDS) or 0.0

    async def seen(self, worker: str | None) -> None:
        """A consumer that named itself called: it is seen now (`GET /workers`). Before the
        call it comes with, so a store that fails here has changed nothing else."""
        if worker is not None:
            await self.call_store(self.store.saw_worker, worker, reapply=SEEN)

    async def take_waiting(
        self, queue: str, wait: float, take: Callable[[], list[Task]]
    ) -> list[Task]:
        """Call `take` until it returns something or `wait` seconds pass, parked on the IOLoop
        in between (see `Waiters`). Nothing taken is ever left with a client that has gone."""
        io_loop = IOLoop.current()
        deadline = io_loop.time() + wait
        front = False
        while True:
            seen = self.waiters.generation(queue)
            taken = await self.call_store(take)
            if self.connection_lost():
                await self._give_back(taken)
                return []
            remaining = deadline - io_loop.time()
            if taken or remaining <= 0:
                return taken
            limit = self.config.max_waiters
            if limit and not front and self.waiters.count() >= limit:
                raise Problem(
                    503,
                    f"{limit} consumers are already waiting for tasks (--max-waiters); "
                    "try again shortly",
                    {"Retry-After": "1"},
                )
            woke = await self.waiters.wait(queue, remaining, seen, self, front=front)
            if self.connection_lost():
                if woke:
                    self.waiters.pass_on(queue)
                return []
            if not woke:  # the wait ended (or the server is stopping): one last look
                return await self.call_store(take)
            front = True  # woken but beaten to the task: keep the turn

    async def seen_idle(self, worker: str | None) -> None:
        """A dequeue that got nothing still shows its worker alive (a delivery shows it)."""
        if not self.connection_lost():
            await self.seen(worker)

    async def _give_back(self, tasks: list[Task]) -> None:
        """Tasks leased for a client that left while the store was working: back in place."""
        for task in tasks:
            await self.call_store(self.store.release, task.id, task.lease_id)


class TasksHandler(ApiHandler):
    """`POST /tasks`: enqueue a task (idempotent with an `Idempotency-Key` header)."""

    roles = PRODUCERS

    async def post(self) -> None:
        new_task = validation.new_task(self.json_body(), idempotency_key=self.idempotency_key())
        keyed = KEYED if new_task.idempotency_key else None
        enqueued = await self.call_store(self.store.enqueue_many, [new_task], reapply=keyed)
        outcome: Enqueued = enqueued[0]
        self.set_header("Location", f"/tasks/{outcome.task_id}")
        status = 201 if outcome.created else 200
        if outcome.task is None:  # a replay whose task has since been deleted or forgotten
            self.write_json({"id": outcome.task_id}, status)
        else:
            self.write_task(outcome.task, status)


class TaskBatchHandler(ApiHandler):
    """`POST /tasks/batch`: enqueue up to 1000 tasks, all or nothing."""

    roles = PRODUCERS

    async def post(self) -> None:
        if "Idempotency-Key" in self.request.headers:
            raise Problem(
                400,
                "the Idempotency-Key header is for POST /tasks; in a batch give each task its "
                "own 'idempotency_key' field",
            )
        new_tasks = validation.new_task_batch(self.json_body())
        keyed = KEYED if all(new_task.idempotency_key for new_task in new_tasks) else None
        outcomes = await self.call_store(self.store.enqueue_many, new_tasks, reapply=keyed)
        created = any(outcome.created for outcome in outcomes)
        self.write_json({"ids": [outcome.task_id for outcome in outcomes]}, 201 if created else 200)


class DequeueHandler(ConsumerArguments):
    """`POST /tasks/dequeue?queue=&wait=&lease=`: lease the first pending task."""

    roles = CONSUMERS

    async def post(self) -> None:
        queue, lease, wait = self.queue_argument(), self.lease_seconds(), self.wait_seconds()
        worker = self.worker_id()
        self.body_bytes()  # enforce the body limit even though the body is unused
        tasks = await self.take_waiting(
            queue, wait, partial(self.store.dequeue_many, 1, lease, queue, worker)
        )
        if not tasks:
            await self.seen_idle(worker)
            raise Problem(404, f"queue '{queue}' is empty: no pending task to dequeue")
        self.write_task(tasks[0])


class DequeueBatchHandler(ConsumerArguments):
    """`POST /tasks/dequeue/batch?count=&queue=&wait=&lease=`: lease up to `count` tasks."""

    roles = CONSUMERS

    async def post(self) -> None:
        count = self.int_argument("count", 1, 1, MAX_BATCH)
        queue, lease, wait = self.queue_argument(), self.lease_seconds(), self.wait_seconds()
        worker = self.worker_id()
        self.body_bytes()
        tasks = await self.take_waiting(
            queue, wait, partial(self.store.dequeue_many, count, lease, queue, worker)
        )
        if not tasks:
            await self.seen_idle(worker)
        self.write_json({"tasks": [codec.task_document(task) for task in tasks]})


class CompleteBatchHandler(ConsumerArguments):
    """`POST /tasks/complete/batch`: complete each item on its own."""

    roles = CONSUMERS

    async def post(self) -> None:
        worker = self.worker_id()
        completions = validation.completion_batch(self.json_body())
        await self.seen(worker)
        fenced = FENCED if all(item.lease_id for item in completions) else None
        outcomes = await self.call_store(self.store.complete_many, completions, reapply=fenced)
        results = []
        for outcome in outcomes:
            if outcome.error is None:
                results.append({"id": outcome.task_id, "status": 200})
            else:
                status = status_for(outcome.error)
                results.append(
                    {"id": outcome.task_id, "status": status, "detail": str(outcome.error)}
                )
        self.write_json({"results": results})


class TaskHandler(ApiHandler):
    """`GET /tasks/{id}`: one task. `DELETE /tasks/{id}`: remove it (not while processing)."""

    # Any role may read a task by its id (see docs/security.md); only an admin deletes.
    roles = ANY_ROLE
    method_roles = MappingProxyType({"DELETE": ADMIN})

    async def get(self, task_id: str) -> None:
        wait = self.number_argument("wait", 0, 0, MAX_WAIT_SECONDS) or 0.0
        task: Task | None
        if wait:
            task = await self.wait_for_result(task_id, wait)
        else:
            task = await self.call_store(self.store.get, task_id)
        if task is None:
            raise TaskNotFound(task_id)
        self.write_task(task)

    head = get

    async def wait_for_result(self, task_id: str, wait: float) -> Task | None:
        """The task once it is completed or failed, or as it is when `wait` seconds have
        passed; None if it does not exist (or is deleted meanwhile: answered at that moment).
        Parked on the IOLoop in between (see `ResultWaiters`), woken by the store."""
        results = self.services.result_waiters
        io_loop = IOLoop.current()
        deadline = io_loop.time() + wait
        limit = self.config.max_waiters
        try:
            while True:
                # Expected before the read, so a finish right after it still wakes this wait.
                future = results.expect(task_id, self)
                remaining = deadline - io_loop.time()
                task: Task | None = await self.call_store(
                    self.store.watch, task_id, max(remaining, 0.0)
                )
                if task is None or task.status in FINISHED or self.connection_lost():
                    return task
                if remaining <= 0 or results.closing:
                    return task
                if limit and results.count() >= limit:
                    raise Problem(
                        503,
                        f"{limit} requests are already waiting for results (--max-waiters); "
                        "try again shortly",
                        {"Retry-After": "1"},
                    )
                if not await results.wait(future, remaining):
                    break  # the wait ran out, the client left or the server is stopping
                results.done(self)  # woken: look again (a wake-up may find it retried)
        finally:
            results.done(self)
        if self.connection_lost():
            return task
        return await self.call_store(self.store.get, task_id)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.services.result_waiters.leave(self)

    async def delete(self, task_id: str) -> None:
        await self.call_store(self.store.delete, task_id)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()


class CompleteHandler(ConsumerArguments):
    """`PUT /tasks/{id}/complete`: finish a processing task, optionally with a result."""

    roles = CONSUMERS

    async def put(self, task_id: str) -> None:
        worker = self.worker_id()
        done = validation.completion(self.json_body(), self.query_lease_id(), task_id)
        await self.seen(worker)
        task = await self.call_store(
            self.store.complete, task_id, done.result, done.lease_id, reapply=fenced(done.lease_id)
        )
        self.write_task(task)


class FailHandler(ConsumerArguments):
    """`PUT /tasks/{id}/fail`: record a failed attempt; retried after a backoff or dead."""

    roles = CONSUMERS

    async def put(self, task_id: str) -> None:
        worker = self.worker_id()
        failed = validation.failure(self.json_body(), self.query_lease_id())
        await self.seen(worker)
        task = await self.call_store(
            self.store.fail,
            task_id,
            failed.error,
            failed.retry,
            failed.lease_id,
            reapply=fenced(failed.lease_id),
        )
        self.write_task(task)


class HeartbeatHandler(ConsumerArguments):
    """`PUT /tasks/{id}/heartbeat?lease=S`: extend a processing task's lease from now."""

    roles = CONSUMERS

    async def put(self, task_id: str) -> None:
        lease, worker = self.lease_seconds(), self.worker_id()
        lease_id = validation.heartbeat(self.json_body(), self.query_lease_id())
        await self.seen(worker)
        task = await self.call_store(
            self.store.heartbeat, task_id, lease, lease_id, reapply=fenced(lease_id)
        )
        self.write_task(task)


class ProgressHandler(ConsumerArguments):
    """`PUT /tasks/{id}/progress`: record a processing task's progress (fenced as a heartbeat;
    the lease is not extended)."""

    roles = CONSUMERS

    async def put(self, task_id: str) -> None:
        worker = self.worker_id()
        report = validation.progress(self.json_body(), self.query_lease_id())
        await self.seen(worker)
        task = await self.call_store(
            self.store.progress,
            task_id,
            report.value,
            report.lease_id,
            reapply=fenced(report.lease_id),
        )
        self.write_task(task)


class RetryHandler(ApiHandler):
    """`POST /tasks/{id}/retry`: put a failed task back in the queue with fresh attempts."""

    roles = ADMIN

    async def post(self, task_id: str) -> None:
        self.body_bytes()
        task = await self.call_store(self.store.retry, task_id)
        self.write_task(task)
