"""Queue routes: a queue's tasks in order, counts by state, event totals, the list of
queues, and a queue's bulk retry."""

from __future__ import annotations

import asyncio
from typing import Any

from tornado_queue import codec, validation
from tornado_queue.limits import RETRY_ROUND, VIEW_DEFAULT_LIMIT, VIEW_MAX_LIMIT, VIEW_MAX_OFFSET
from tornado_queue.models import LISTED, Event, QueueSettings, TaskStatus
from tornado_queue.server.auth import ADMIN
from tornado_queue.server.handlers.base import Problem
from tornado_queue.server.handlers.tasks import ConsumerArguments

"""Paging walks the pending tasks from the head (about 30 ns a task, under the store lock), so
the deepest page is bounded: at most a few milliseconds of lock time for any request."""
STATS_ORDER = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.SCHEDULED,
)


def counts_document(counts: dict[TaskStatus, int]) -> dict[str, int]:
    return {status.value: counts[status] for status in STATS_ORDER}


class QueueViewHandler(ConsumerArguments):
    """`GET /queue/view?queue=&status=&limit=&offset=`: a queue's tasks in one state, paged
    (pending in dequeue order, processing and failed most recent first); `X-Total-Count` holds
    how many the queue has in that state."""

    roles = ADMIN

    async def get(self) -> None:
        queue = self.queue_argument()
        status = self.status_argument()
        limit = self.int_argument("limit", VIEW_DEFAULT_LIMIT, 0, VIEW_MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, VIEW_MAX_OFFSET)
        tasks, total = await self.call_store(self.store.view, limit, offset, queue, status)
        self.set_header("X-Total-Count", str(total))
        self.write_json([codec.task_document(task) for task in tasks])

    head = get

    def status_argument(self) -> TaskStatus:
        raw = self.query_argument("status")
        if raw is None:
            return TaskStatus.PENDING
        for status in LISTED:
            if raw == status.value:
                return status
        allowed = ", ".join(status.value for status in LISTED)
        raise Problem(400, f"query parameter 'status' must be one of {allowed}, got '{raw[:40]}'")


class QueueStatsHandler(ConsumerArguments):
    """`GET /queue/stats?queue=`: how many tasks are in each state, in one queue or in all."""

    roles = ADMIN

    async def get(self) -> None:
        queue = self.queue_argument() if self.query_argument("queue") is not None else None
        counts = await self.call_store(self.store.stats, queue)
        self.write_json(counts_document(counts))

    head = get


class QueuesHandler(ConsumerArguments):
    """`GET /queues`: every queue that holds tasks or has a setting, by name, with its counts."""

    roles = ADMIN

    async def get(self) -> None:
        queues = await self.call_store(self.store.queues)
        listing: list[dict[str, Any]] = [
            {"name": name, **counts_document(counts)} for name, counts in sorted(queues.items())
        ]
        self.write_json(listing)

    head = get


class QueueTotalsHandler(ConsumerArguments):
    """`GET /queue/totals?queue=`: events counted since the store began (tasks enqueued,
    completed, failed, leases expired), in one queue or summed over all; clients derive rates
    from two readings."""

    roles = ADMIN

    async def get(self) -> None:
        queue = self.queue_argument() if self.query_argument("queue") is not None else None
        totals = await self.call_store(self.store.totals)
        summed = dict.fromkeys(Event, 0)
        for name, events in totals.items():
            if queue is None or name == queue:
                for event, n in events.items():
                    summed[event] += n
        self.write_json({event.value: n for event, n in summed.items()})

    head = get


class QueueHandler(ConsumerArguments):
    """`GET /queues/{name}`: the queue's counts and its settings (`null` where unset);
    `PATCH /queues/{name}`: set or clear (`null`) settings, all at once or none; the answer is
    the queue as GET shows it. Any queue name answers: a queue that holds no task and has no
    setting shows zero counts."""

    roles = ADMIN

    async def get(self, name: str) -> None:
        queue = path_queue(name)
        await self._write_queue(queue, await self.call_store(self.store.queue_settings, queue))

    head = get

    async def patch(self, name: str) -> None:
        queue = path_queue(name)
        changes = validation.queue_settings_changes(self.json_body())
        settings = await self.call_store(self.store.configure, queue, changes)
        await self._write_queue(queue, settings)

    async def _write_queue(self, queue: str, settings: QueueSettings) -> None:
        counts = await self.call_store(self.store.stats, queue)
        self.write_json({"name": queue, **counts_document(counts), "settings": settings.document()})


class QueueRetryHandler(ConsumerArguments):
    """`POST /queues/{name}/retry`: every failed task of the queue back to `pending`, attempts
    reset: `{"retried": n}`. Each task is retried atomically, in rounds of `RETRY_ROUND` with
    other requests served in between; the call stops at the number of failed tasks it found
    when it began, so tasks that keep failing meanwhile cannot keep it going."""

    roles = ADMIN

    async def post(self, name: str) -> None:
        self.body_bytes()
        queue = path_queue(name)
        failed = (await self.call_store(self.store.stats, queue))[TaskStatus.FAILED]
        retried = 0
        while retried < failed:
            limit = min(RETRY_ROUND, failed - retried)
            done = await self.call_store(self.store.retry_failed, queue, limit)
            if not done:  # the rest were retried or deleted by someone else meanwhile
                break
            retried += done
            await asyncio.sleep(0)  # a store called inline: let other requests in
        self.write_json({"retried": retried})


def path_queue(name: str) -> str:
    """The `{name}` of a queue route (a bad one is a 400 naming the rule, as every
    `ValidationError` is)."""
    return validation.queue_name(name, "path parameter 'name'")
