"""A task function for the worker runner:

    cd examples && tornado-queue worker tasks:send_email --queue emails

It gets the task's payload; what it returns becomes the task's result, and an exception fails
the attempt (retried with backoff until the task's attempts are used up).
"""

from __future__ import annotations

from typing import Any

from tornado_queue.worker import current_task


def send_email(payload: dict[str, Any]) -> dict[str, Any]:
    if "@" not in payload.get("to", ""):
        raise ValueError(f"not an e-mail address: {payload.get('to')!r}")
    task = current_task()  # the whole task, when a function needs its id or attempts
    print(f"sending {payload['subject']!r} to {payload['to']} (attempt {task.attempts})")
    return {"sent_to": payload["to"]}
