"""Queue routes: a queue's tasks in order, counts by state, event totals, the list of
queues, a queue's settings, and its bulk retry and purge."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from typing import Any

from tornado_queue import codec, validation
from tornado_queue.errors import printable
from tornado_queue.limits import (
    PURGE_ROUND,
    PUSH_ROTATION_OVERLAP_SECONDS,
    RETRY_ROUND,
    VIEW_DEFAULT_LIMIT,
    VIEW_MAX_LIMIT,
    VIEW_MAX_OFFSET,
)
from tornado_queue.models import (
    LISTED,
    PURGEABLE,
    Event,
    PushTarget,
    QueueSettings,
    TaskStatus,
)
from tornado_queue.server.auth import ADMIN
from tornado_queue.server.handlers.base import Problem
from tornado_queue.server.handlers.tasks import ConsumerArguments
from tornado_queue.server.push.dispatcher import PushStatus
from tornado_queue.server.push.signing import new_secret

"""Paging walks the pending tasks from the head (about 30 ns a task, under the store lock), so
the deepest page is bounded: at most a few milliseconds of lock time for any request."""
STATS_ORDER = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.SCHEDULED,
    TaskStatus.WAITING,
)


def counts_document(counts: dict[TaskStatus, int]) -> dict[str, int]:
    return {status.value: counts[status] for status in STATS_ORDER}


class QueueViewHandler(ConsumerArguments):
    """`GET /queue/view?queue=&status=&limit=&offset=`: a queue's tasks in one state, paged
    (pending in dequeue order, then those waiting behind their group's head; the other states
    most recent first); `X-Total-Count` holds how many the queue has in that state."""

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
        return status_argument(self, LISTED, TaskStatus.PENDING)


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
    """`GET /queues/{name}`: the queue's counts, its settings (`null` where unset) and, for a
    push queue, this server's `push_status`; `PATCH /queues/{name}`: set or clear (`null`)
    settings, all at once or none; the answer is the queue as GET shows it. Any queue name
    answers: a queue that holds no task and has no setting shows zero counts.

    A PATCH that turns push on gives the queue a new signing secret, shown once, in that
    answer only (`settings.push.secret`); changing a push target keeps its secret."""

    roles = ADMIN

    async def get(self, name: str) -> None:
        queue = path_queue(name)
        await self._write_queue(queue, await self.call_store(self.store.queue_settings, queue))

    head = get

    async def patch(self, name: str) -> None:
        queue = path_queue(name)
        changes = validation.queue_settings_changes(self.json_body(), queue)
        new_push = changes.get("push")
        secret = None
        if isinstance(new_push, PushTarget):
            self.services.push_allow.check_url(new_push.url)
            changes["push"], secret = await self._with_secret(queue, new_push)
        settings = await self.call_store(self.store.configure, queue, changes)
        pusher = self.services.pusher
        if "push" in changes and pusher is not None:
            pusher.refresh()
        await self._write_queue(queue, settings, secret)

    async def _with_secret(self, queue: str, target: PushTarget) -> tuple[PushTarget, str | None]:
        """The target with the queue's signing secrets: those it has, or a new secret (also
        returned, to be shown once) when the queue was not pushing."""
        current = (await self.call_store(self.store.queue_settings, queue)).push
        if current is None:
            secret = new_secret()
            return replace(target, secret=secret), secret
        kept = replace(
            target,
            secret=current.secret,
            previous_secret=current.previous_secret,
            rotated_at=current.rotated_at,
        )
        return kept, None

    async def _write_queue(
        self, queue: str, settings: QueueSettings, secret: str | None = None
    ) -> None:
        counts = await self.call_store(self.store.stats, queue)
        shown = settings.document()
        if secret is not None and isinstance(shown.get("push"), dict):
            shown["push"] = {**shown["push"], "secret": secret}  # type: ignore[dict-item]
        self.write_json(
            {
                "name": queue,
                **counts_document(counts),
                "settings": shown,
                "push_status": self._push_status(queue, settings),
            }
        )

    def _push_status(self, queue: str, settings: QueueSettings) -> dict[str, object] | None:
        if settings.push is None:
            return None
        pusher = self.services.pusher
        status = pusher.status(queue) if pusher is not None else None
        return (status or PushStatus()).document()


class QueuePushSecretHandler(ConsumerArguments):
    """`POST /queues/{name}/push/rotate-secret`: a new signing secret for the push queue,
    shown once: `{"secret", "previous_secret_valid_until"}`. For
    `PUSH_ROTATION_OVERLAP_SECONDS` every push carries a signature by each secret, so that
    receivers can move to the new one without dropping a push."""

    roles = ADMIN

    async def post(self, name: str) -> None:
        self.body_bytes()
        queue = path_queue(name)
        current = (await self.call_store(self.store.queue_settings, queue)).push
        if current is None:
            raise Problem(
                409,
                f"queue '{queue}' has no push setting: set one with PATCH /queues/{queue} first",
            )
        now = time.time()
        secret = new_secret()
        rotated = replace(current, secret=secret, previous_secret=current.secret, rotated_at=now)
        await self.call_store(self.store.configure, queue, {"push": rotated})
        if self.services.pusher is not None:
            self.services.pusher.refresh()
        until = codec.format_time(now + PUSH_ROTATION_OVERLAP_SECONDS)
        self.write_json({"secret": secret, "previous_secret_valid_until": until})


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


class QueuePurgeHandler(ConsumerArguments):
    """`DELETE /queues/{name}/tasks?status=`: delete every task of the queue in one state
    (never processing ones): `{"deleted": n}`. Each round of `PURGE_ROUND` deletions is atomic,
    with other requests served in between; the call stops at the count it found when it
    began."""

    roles = ADMIN

    async def delete(self, name: str) -> None:
        queue = path_queue(name)
        if self.query_argument("status") == TaskStatus.PROCESSING.value:
            raise Problem(
                400,
                "processing tasks are never purged: each is held by a consumer; complete or "
                "fail them, or wait for their leases to expire",
            )
        status = status_argument(self, PURGEABLE, None)
        found = (await self.call_store(self.store.stats, queue))[status]
        deleted = 0
        while deleted < found:
            limit = min(PURGE_ROUND, found - deleted)
            done = await self.call_store(self.store.purge, queue, status, limit)
            if not done:  # the rest went some other way meanwhile
                break
            deleted += done
            await asyncio.sleep(0)  # a store called inline: let other requests in
        self.write_json({"deleted": deleted})


def status_argument(
    handler: ConsumerArguments, allowed: tuple[TaskStatus, ...], default: TaskStatus | None
) -> TaskStatus:
    """The `status` query argument, one of `allowed`; `default` when absent (None: required)."""
    raw = handler.query_argument("status")
    choices = ", ".join(status.value for status in allowed)
    if raw is None:
        if default is None:
            raise Problem(400, f"query parameter 'status' is required: one of {choices}")
        return default
    for status in allowed:
        if raw == status.value:
            return status
    shown = printable(raw[:40])
    raise Problem(400, f"query parameter 'status' must be one of {choices}, got '{shown}'")


def path_queue(name: str) -> str:
    """The `{name}` of a queue route (a bad one is a 400 naming the rule, as every
    `ValidationError` is)."""
    return validation.queue_name(name, "path parameter 'name'")
