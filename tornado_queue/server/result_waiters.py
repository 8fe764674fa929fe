"""Waiting for a result: requests parked on the IOLoop until their task finishes."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tornado import gen
from tornado.ioloop import IOLoop

from tornado_queue.storage import Store


class ResultWaiters:
    """One future per request waiting on a task (`GET /tasks/{id}?wait=`), by task id; no
    thread each, and no polling of the store.

    The store tells `_on_finished(task_id)` when a task becomes completed or failed, or is
    deleted, from whatever thread did it (on Redis, also for a task finished by another
    server, when it was watched). The check of whether anyone here waits on that id is one
    dict lookup, so tasks nobody waits on cost next to nothing; a hit hops to the IOLoop with
    `add_callback` and wakes every waiter of that task, which then reads the task again.

    A waiter is registered (`expect`) *before* its request reads the task, so a finish that
    comes between the read and the wait still wakes it.
    """

    def __init__(self, store: Store) -> None:
        self._io_loop: IOLoop | None = None
        self._parked: dict[str, set[asyncio.Future[None]]] = {}
        self._by_owner: dict[object, tuple[str, asyncio.Future[None]]] = {}
        self._live = 0
        self.closing = False
        store.add_finished_listener(self._on_finished)

    def count(self) -> int:
        """How many requests are parked waiting on a result right now."""
        return self._live

    def expect(self, task_id: str, owner: object) -> asyncio.Future[None]:
        """Register `owner`'s wait on `task_id` before it reads the task; `wait` then parks
        on the returned future, and `leave` (the client went away) or `done` ends it."""
        self._io_loop = IOLoop.current()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._parked.setdefault(task_id, set()).add(future)
        self._by_owner[owner] = (task_id, future)
        if self.closing:
            future.cancel()
        return future

    async def wait(self, future: asyncio.Future[None], timeout: float) -> bool:
        """Park until the task finishes or goes (True), or `timeout` passes, the client leaves
        or the server stops (False)."""
        self._live += 1
        try:
            await gen.with_timeout(timedelta(seconds=timeout), future)
        except (TimeoutError, asyncio.CancelledError):
            return False
        finally:
            self._live -= 1
        return True

    def done(self, owner: object) -> None:
        """`owner` waits no more (answered, or about to look again)."""
        parked = self._by_owner.pop(owner, None)
        if parked is None:
            return
        task_id, future = parked
        futures = self._parked.get(task_id)
        if futures is not None:
            futures.discard(future)
            if not futures:
                del self._parked[task_id]
        future.cancel()

    def leave(self, owner: object) -> None:
        """The client of `owner` went away: its waiter is freed now."""
        self.done(owner)

    def close(self) -> None:
        """Shutting down: every waiter answers now (with the task as it is), and new ones
        answer at once."""
        self.closing = True
        for futures in self._parked.values():
            for future in futures:
                future.cancel()

    def _on_finished(self, task_id: str) -> None:
        # Any thread. A dict lookup (atomic under the GIL) keeps unwatched tasks cheap.
        if task_id in self._parked and self._io_loop is not None:
            self._io_loop.add_callback(self._wake, task_id)

    def _wake(self, task_id: str) -> None:
        for future in self._parked.get(task_id, ()):
            if not future.done():
                future.set_result(None)
