"""Queue routes: the pending tasks in order, and counts by state."""

from __future__ import annotations

from .. import codec
from ..models import TaskStatus
from .base import ApiHandler

VIEW_DEFAULT_LIMIT = 1000
VIEW_MAX_LIMIT = 10_000
VIEW_MAX_OFFSET = 100_000
"""Paging walks the pending deque from its head (about 30 ns a task, under the store lock), so
the deepest page is bounded: at most a few milliseconds of lock time for any request."""
STATS_ORDER = (
    TaskStatus.PENDING,
    TaskStatus.PROCESSING,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.SCHEDULED,
)


class QueueViewHandler(ApiHandler):
    """`GET /queue/view`: pending tasks in dequeue order, paged; `X-Total-Count` holds the total."""

    async def get(self) -> None:
        limit = self.int_argument("limit", VIEW_DEFAULT_LIMIT, 0, VIEW_MAX_LIMIT)
        offset = self.int_argument("offset", 0, 0, VIEW_MAX_OFFSET)
        tasks, total = await self.call_store(self.store.view, limit, offset)
        self.set_header("X-Total-Count", str(total))
        self.write_json([codec.task_document(task) for task in tasks])

    head = get


class QueueStatsHandler(ApiHandler):
    """`GET /queue/stats`: how many tasks are in each state."""

    async def get(self) -> None:
        counts = await self.call_store(self.store.stats)
        self.write_json({status.value: counts[status] for status in STATS_ORDER})

    head = get
