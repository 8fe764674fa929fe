"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

from tornado_queue.server.auth import ADMIN
from tornado_queue.server.handlers.base import ApiHandler
from tornado_queue.server.metrics import CONTENT_TYPE


class MetricsHandler(ApiHandler):
    """Request latency from this process; queue counts and event totals from the store."""

    roles = ADMIN

    async def get(self) -> None:
        counts = await self.call_store(self.store.queues)
        totals = await self.call_store(self.store.totals)
        settings = await self.call_store(self.store.configured_queues)
        self.services.metrics.waiting(self.waiters.count(), self.services.result_waiters.count())
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(self.services.metrics.exposition(counts, totals, settings))

    head = get
