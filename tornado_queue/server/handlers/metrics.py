"""`GET /metrics`: Prometheus text format."""

from __future__ import annotations

from ..auth import ADMIN
from ..metrics import CONTENT_TYPE, Metrics
from .base import ApiHandler


class MetricsHandler(ApiHandler):
    """Request latency from this process; queue counts and event totals from the store."""

    roles = ADMIN

    async def get(self) -> None:
        counts = await self.call_store(self.store.queues)
        totals = await self.call_store(self.store.totals)
        metrics: Metrics = self.application.settings["metrics"]
        self.set_header("Content-Type", CONTENT_TYPE)
        self.finish(metrics.exposition(counts, totals))

    head = get
