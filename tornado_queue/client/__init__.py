"""Use tornado_queue from Python: `Client` (blocking, thread-safe) and `AsyncClient`
(coroutines, on Tornado's `AsyncHTTPClient`), the `Task` they return, and their exceptions.

    from tornado_queue.client import Client

    client = Client("http://127.0.0.1:8000")
    task_id = client.enqueue({"to": "user@example.com"}, queue="emails")
    task = client.dequeue(queue="emails", wait=10)
    if task is not None:
        client.complete(task, result={"sent": True})
"""

from tornado_queue.client.asynchronous import AsyncClient
from tornado_queue.client.endpoint import DEFAULT_URL
from tornado_queue.client.errors import (
    BadRequest,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    ServerError,
    TaskQueueError,
    Throttled,
    TooManyRequests,
    Unauthorized,
    Unavailable,
)
from tornado_queue.client.items import BatchItem
from tornado_queue.client.sync import Client
from tornado_queue.client.task import HistoryEntry, Task, Worker

__all__ = [
    "DEFAULT_URL",
    "AsyncClient",
    "BadRequest",
    "BatchItem",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "Forbidden",
    "HistoryEntry",
    "LeaseLost",
    "NotFound",
    "OutcomeUnknown",
    "ServerError",
    "Task",
    "TaskQueueError",
    "Throttled",
    "TooManyRequests",
    "Unauthorized",
    "Unavailable",
    "Worker",
]
