"""The worker runner: `tornado-queue worker MODULE:FUNCTION` runs a function on every task of a
queue, through the HTTP client. Inside that function, `current_task()` gives the whole task."""

from tornado_queue.worker.execution import current_task

__all__ = ["current_task"]
