"""Running one task's function for the worker runner: find the function, call it with the
payload, and turn what happened into a result to complete with or an error text to fail with.

The rule: the function receives the task's payload (a dict) as its only argument. An
`async def` function is run to completion on the calling thread's own event loop. Inside
either, `current_task()` gives the whole `Task` (id, attempts, ...) and `report_progress(value)`
records how far it has come (the task's `progress`, kept if it is delivered again).
"""

from __future__ import annotations

import asyncio
import contextvars
import importlib
import inspect
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from tornado_queue.client import Task
from tornado_queue.validation import MAX_ERROR_CHARS

TaskFunction = Callable[[dict[str, Any]], Any]
Reporter = Callable[[Any], Task]
"""Sends a running task's progress to the server (under its lease)."""

_current: contextvars.ContextVar[Task] = contextvars.ContextVar("tornado_queue_task")
_reporter: contextvars.ContextVar[Reporter] = contextvars.ContextVar("tornado_queue_progress")


def current_task() -> Task:
    """The task whose function is running (from inside that function); LookupError outside."""
    return _current.get()


def report_progress(value: Any) -> Task:
    """Record the running task's progress (any JSON value, at most 4096 bytes), fenced by its
    lease; a task delivered again after a crash starts with it in `current_task().progress`.
    Raises `LeaseLost` when the lease has moved on; LookupError outside a task's function."""
    return _reporter.get()(value)


def load_function(spec: str) -> TaskFunction:
    """`package.module:function` (or `module:Class.method`) imported and returned; ValueError
    with a sentence saying what is wrong otherwise."""
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"expected MODULE:FUNCTION (e.g. myapp.tasks:send_email), got {spec!r}")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r}: {exc}") from exc
    for name in attribute.split("."):
        try:
            target = getattr(target, name)
        except AttributeError:
            raise ValueError(f"{module_name!r} has no attribute {attribute!r}") from None
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    return target


@dataclass(frozen=True)
class Outcome:
    """What to tell the server: complete with `result`, or fail with `error` (retried while
    attempts are left when `retry`)."""

    ok: bool
    result: Any = None
    error: str = ""
    retry: bool = True


def run(
    function: TaskFunction, task: Task, loop: asyncio.Runner, report: Reporter | None = None
) -> Outcome:
    """Call `function(task.payload)`; an awaitable it returns is run on `loop`. `report`
    is what `report_progress` calls meanwhile."""
    token = _current.set(task)
    reporter = _reporter.set(report or _no_reporter)
    try:
        value = function(task.payload)
        if inspect.isawaitable(value):
            # The runner's loop keeps its own context: pass ours, which holds the task.
            value = loop.run(_awaited(value), context=contextvars.copy_context())
    except BaseException as exc:  # whatever the function raises (SystemExit too) fails the task
        return Outcome(ok=False, error=error_text(exc))
    finally:
        _reporter.reset(reporter)
        _current.reset(token)
    try:
        orjson.dumps(value)
    except TypeError as exc:
        # Running it again would give the same value, and repeat its side effects: no retry.
        name = getattr(function, "__qualname__", repr(function))
        error = f"TypeError: the return value of {name} is not JSON-serialisable: {exc}"
        return Outcome(ok=False, error=error, retry=False)
    return Outcome(ok=True, result=value)


def _no_reporter(_value: Any) -> Task:
    raise LookupError("this task's function runs without a server to report progress to")


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def error_text(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """`"{type}: {message}\\n{traceback}"`, cut to `limit` characters (what the server takes)
    by dropping the middle of the traceback: its start and its last frames, where the error
    was raised, are kept."""
    head = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    text = f"{head}\n{trace}"
    if len(text) <= limit:
        return text
    head = head[: limit // 4]
    cut = "\n[…]\n"
    return head + cut + trace[len(trace) - (limit - len(head) - len(cut)) :]
