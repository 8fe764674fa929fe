"""`GET /workers`: the consumers that name themselves (`X-Worker-Id`), seen lately."""

from __future__ import annotations

from typing import Any

from tornado_queue import codec
from tornado_queue.models import WorkerInfo
from tornado_queue.server.auth import ADMIN
from tornado_queue.server.handlers.base import ApiHandler


def worker_document(info: WorkerInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "last_seen": codec.format_time(info.last_seen),
        "tasks": list(info.tasks),
        "completed": info.completed,
        "failed": info.failed,
    }


class WorkersHandler(ApiHandler):
    """`GET /workers`: each worker seen in the last `limits.WORKER_SEEN_SECONDS`, the latest
    seen first, with the tasks it holds and how many it completed and failed."""

    roles = ADMIN

    async def get(self) -> None:
        workers = await self.call_store(self.store.workers)
        self.write_json([worker_document(info) for info in workers])

    head = get
