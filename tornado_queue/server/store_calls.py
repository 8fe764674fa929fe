"""The one place that decides how the IOLoop calls a store (see `storage.base`): inline for a
store that answers in microseconds, awaited on the loop for one that can (Redis), on the
default executor for one that does blocking I/O (SQLite). It also
keeps the store's `OutageLog`, so an outage is logged once, not once per request."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop

from tornado_queue.errors import StoreFailure
from tornado_queue.storage import Store

T = TypeVar("T")


async def call_store(store: Store, method: Callable[..., T], *args: Any) -> T:
    """Run `method(*args)` of `store` from the IOLoop without ever blocking it on I/O."""
    if not store.blocking:
        return method(*args)  # an in-memory store: no disk, no network, nothing to fail
    try:
        if store.asynchronous:
            answer = await store.run_async(method, *args)
        else:
            answer = await IOLoop.current().run_in_executor(None, method, *args)
    except StoreFailure as failure:
        store.outage.failed(failure)
        raise
    store.outage.answered()
    return answer


async def reap(store: Store) -> None:
    """Apply what is due (the periodic reaper, the long-poll timer). A store that is down is
    already in the outage log; the next round tries again."""
    with contextlib.suppress(StoreFailure):
        await call_store(store, store.reap)
