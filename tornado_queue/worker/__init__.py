"""The worker runner: `tornado-queue worker MODULE:FUNCTION` runs a function on every task of a
queue, through the HTTP client. Inside that function, `current_task()` gives the whole task and
`report_progress(value)` records how far it has come."""

from tornado_queue.worker.execution import current_task, report_progress

__all__ = ["current_task", "report_progress"]
