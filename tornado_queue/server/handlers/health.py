"""`GET /healthz`: is the server up and its store answering?"""

from __future__ import annotations

import logging

from tornado_queue.server.handlers.base import ApiHandler, Problem

log = logging.getLogger("tornado_queue.health")


class HealthHandler(ApiHandler):
    """200 `{"status": "ok"}` when the store answers a cheap read; 503 when it does not."""

    roles = None  # load balancers and orchestrators probe it without a token

    async def get(self) -> None:
        try:
            await self.call_store(self.store.stats, "default")
        except Problem:
            raise  # a failure the store names as such: already a 503 with Retry-After
        except Exception as error:
            log.warning("health check: the store failed: %r", error)
            raise Problem(503, f"the store is not answering: {type(error).__name__}") from None
        self.write_json({"status": "ok"})

    head = get
