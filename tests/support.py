"""Helpers shared by several test modules: the task document's fields, a polling wait for
threaded tests, small MemoryStore shortcuts and an HTTP opener that bypasses proxies."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from tornado_queue.clock import Clock
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.storage import MemoryStore, Policy
from tornado_queue.storage.redis import RedisStore

# --- the task document -----------------------------------------------------------------------

TASK_FIELDS = frozenset(
    {
        "id",
        "queue",
        "payload",
        "status",
        "priority",
        "attempts",
        "max_attempts",
        "created_at",
        "available_at",
        "lease_id",
        "lease_expires_at",
        "started_at",
        "finished_at",
        "result",
        "progress",
        "error",
        "group",
        "expires_at",
        "dead_lettered_from",
        "after",
        "dependents",
        "schedule",
        "fire_time",
        "history",
    }
)
TIMESTAMP_FIELDS = (
    "created_at",
    "available_at",
    "lease_expires_at",
    "started_at",
    "finished_at",
    "expires_at",
    "fire_time",
)

# --- waiting on threads ----------------------------------------------------------------------

DEADLINE_SECONDS = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE_SECONDS) -> bool:
    """Poll `condition` until it holds or `timeout` passes; return whether it held."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)
    return True


# --- MemoryStore shortcuts -------------------------------------------------------------------


def new_task(number: int = 0, max_attempts: int | None = None) -> NewTask:
    return NewTask(payload=b'{"n":%d}' % number, max_attempts=max_attempts)


def enqueue(store: MemoryStore, count: int = 1) -> list[str]:
    """Enqueue `count` tasks with payloads {"n": 0}, {"n": 1}, ...; their ids, in order."""
    return [store.enqueue(new_task(number)).id for number in range(count)]


def expected_stats(**counts: int) -> dict[TaskStatus, int]:
    stats = dict.fromkeys(TaskStatus, 0)
    stats.update({TaskStatus(name): count for name, count in counts.items()})
    return stats


# --- HTTP from a thread ----------------------------------------------------------------------

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""A urllib opener that never goes through an HTTP proxy (tests talk to 127.0.0.1)."""


def call(
    url: str, method: str, path: str, body: object = None, timeout: float = 30
) -> tuple[int, Any]:
    """One JSON request to a real server: its status and document (None for an empty answer,
    a 204), whatever the status."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data else {}
    request = urllib.request.Request(url + path, data, headers, method=method)
    try:
        with NO_PROXY.open(request, timeout=timeout) as response:
            answer = response.read()
            return response.status, json.loads(answer) if answer else None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


# --- two servers' stores on one Redis ---------------------------------------------------------


@contextmanager
def shared_redis_stores(
    redis_url: str, policy: Policy, clock: Clock | None, prefix: str
) -> Iterator[tuple[RedisStore, RedisStore]]:
    """Two Redis stores with one prefix, as two servers sharing a queue have: emptied before
    and after, closed after."""
    a, b = (RedisStore(redis_url, policy, clock, prefix=prefix) for _ in range(2))
    try:
        a.flush()
        yield a, b
    finally:
        a.flush()
        a.close()
        b.close()
