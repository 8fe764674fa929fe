"""Long-poll: consumers parked on the IOLoop until a task is ready in their queue."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import timedelta

from tornado import gen
from tornado.ioloop import IOLoop

from tornado_queue.errors import StoreFailure
from tornado_queue.server import store_calls
from tornado_queue.storage import Store

STALE_RATIO = 2
"""A queue's parked list is rebuilt once it holds this many times more entries than waiters."""


class Waiters:
    """One future per parked consumer, first come first served per queue; no thread each.

    The store tells `_on_ready(queue, n)` when n tasks become ready, from whatever thread made
    them ready; that hops to the IOLoop with `add_callback` (its one thread-safe method) and
    wakes exactly n waiters of that queue. A woken waiter then dequeues for itself, so a task is
    never handed to a client that has gone: a waiter whose client left passes its wake-up on.
    Tasks that become ready by time alone (a delay or backoff ends, a lease expires) are found
    by a timer set for the store's next deadline while anyone waits; every request re-checks it
    (`rearm`), so a deadline set over HTTP is met on time. One set by a worker thread is met
    by the server's periodic reap (every 0.5 s) at the latest.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._io_loop: IOLoop | None = None
        self._parked: dict[str, deque[asyncio.Future[None]]] = {}
        self._live: dict[str, int] = {}  # parked futures not yet woken, timed out or left
        self._generation: dict[str, int] = {}
        self._by_owner: dict[object, tuple[str, asyncio.Future[None]]] = {}
        self._timer: object | None = None
        self._timer_at = float("inf")
        self._arming = False  # a blocking store is being asked for its next deadline
        self._ask_again = False
        self._arming_task: asyncio.Future[None] | None = None  # held so it is not collected
        self.closing = False
        store.add_ready_listener(self._on_ready)

    def generation(self, queue: str) -> int:
        """Read this before looking for a task, and pass it to `wait`: a wake-up that came in
        between is then not missed (the store may run in a thread while the IOLoop goes on)."""
        # From here on, wake-ups from other threads have a loop to reach.
        self._io_loop = IOLoop.current()
        return self._generation.get(queue, 0)

    def close(self) -> None:
        """Shutting down: answer every parked consumer now, and park no one from here on."""
        self.closing = True
        for parked in self._parked.values():
            for future in parked:
                if not future.done():
                    future.cancel()
        self._parked.clear()
        self._live.clear()

    def count(self) -> int:
        """How many consumers are parked right now."""
        return sum(self._live.values())

    async def wait(
        self, queue: str, timeout: float, seen: int, owner: object, *, front: bool = False
    ) -> bool:
        """Park until a task may be ready in `queue` (True) or `timeout` passes (False).

        Returns True at once if a wake-up came since `seen` was read. `front` parks ahead of
        everyone, for a waiter that was woken but lost the task to a consumer that was not
        waiting, so it keeps its turn. `leave(owner)` (the client went away) unparks it: False.
        """
        if self._generation.get(queue, 0) != seen:
            return True
        if self.closing:
            return False
        io_loop = self._io_loop = IOLoop.current()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        parked = self._parked.setdefault(queue, deque())
        self._live[queue] = self._live.get(queue, 0) + 1
        if front:
            parked.appendleft(future)
        else:
            parked.append(future)
        self._by_owner[owner] = (queue, future)
        self._arm_timer(io_loop)
        try:
            await gen.with_timeout(timedelta(seconds=timeout), future)
        except (TimeoutError, asyncio.CancelledError):
            self._unpark(queue, future)
            return False
        finally:
            self._by_owner.pop(owner, None)
        return True

    def leave(self, owner: object) -> None:
        """Unpark `owner`'s waiter, if it is parked (its client went away)."""
        parked = self._by_owner.pop(owner, None)
        if parked is not None:
            self._unpark(*parked)

    def rearm(self) -> None:
        """After a request that may have set an earlier deadline (a delayed task, a backoff, a
        lease): move the timer up if anyone is parked. Cheap when nobody is."""
        if self._parked and self._io_loop is not None:
            self._arm_timer(self._io_loop)

    def pass_on(self, queue: str) -> None:
        """Give a wake-up this waiter cannot use (its client left) to the next one."""
        self._wake(queue, 1)

    def _on_ready(self, queue: str, count: int) -> None:
        # Any thread. Before the first wait there is no IOLoop to reach and nobody to wake.
        if self._io_loop is not None:
            self._io_loop.add_callback(self._wake, queue, count)

    def _wake(self, queue: str, count: int) -> None:
        self._generation[queue] = self._generation.get(queue, 0) + 1
        parked = self._parked.get(queue)
        while parked and count:
            future = parked.popleft()
            if not future.done():
                future.set_result(None)
                self._live[queue] -= 1
                count -= 1
        if parked is not None and not parked:
            del self._parked[queue]
            self._live.pop(queue, None)

    def _unpark(self, queue: str, future: asyncio.Future[None]) -> None:
        """A parked future that will not be woken (timed out, or its client left)."""
        if future.cancel():
            self._live[queue] -= 1
            self._prune(queue)

    def _prune(self, queue: str) -> None:
        """Drop finished futures once they outnumber the live ones: O(1) amortized per waiter,
        using the live count instead of a walk (thousands of waits may end together)."""
        parked = self._parked.get(queue)
        if parked is None:
            return
        live = self._live.get(queue, 0)
        if live == 0:
            del self._parked[queue]
            self._live.pop(queue, None)
        elif len(parked) > STALE_RATIO * live + 16:
            self._parked[queue] = deque(future for future in parked if not future.done())

    def _arm_timer(self, io_loop: IOLoop) -> None:
        """Make sure a timer fires at the store's next deadline while anyone is parked. A store
        that does I/O is asked from a task, never on the IOLoop itself; asks that come while
        one is under way are folded into one more ask after it."""
        if not self._store.blocking:  # in memory: nothing to wait for, nothing to fail
            self._set_timer(io_loop, self._store.seconds_to_next_deadline())
            return
        if self._arming:
            self._ask_again = True
            return
        self._arming = True
        self._arming_task = asyncio.ensure_future(self._arm_from_store(io_loop))

    async def _arm_from_store(self, io_loop: IOLoop) -> None:
        try:
            while True:
                self._ask_again = False
                try:
                    delay = await store_calls.call_store(
                        self._store, self._store.seconds_to_next_deadline
                    )
                except StoreFailure:
                    return  # the store is down: the periodic reaper wakes waiters once it is back
                self._set_timer(io_loop, delay)
                if not (self._ask_again and self._parked):
                    return
        finally:
            self._arming = False

    def _set_timer(self, io_loop: IOLoop, delay: float | None) -> None:
        if delay is None:
            return
        at = io_loop.time() + max(delay, 0.0)
        if at >= self._timer_at:
            return
        if self._timer is not None:
            io_loop.remove_timeout(self._timer)
        self._timer_at = at
        self._timer = io_loop.call_at(at, self._on_timer, io_loop)

    async def _on_timer(self, io_loop: IOLoop) -> None:
        self._timer, self._timer_at = None, float("inf")
        # Reaping makes due tasks ready, and the store's listener wakes their waiters.
        await store_calls.reap(self._store)
        if self._parked:
            self._arm_timer(io_loop)
