"""The one place that decides how the IOLoop calls a store (see `storage.base`): inline for a
store that answers in microseconds, on the default executor for one that does I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from tornado.ioloop import IOLoop

from .storage import Store

T = TypeVar("T")


async def call_store(store: Store, method: Callable[..., T], *args: Any) -> T:
    """Run `method(*args)` of `store` from the IOLoop without ever blocking it on I/O."""
    if store.blocking:
        return await IOLoop.current().run_in_executor(None, method, *args)
    return method(*args)
