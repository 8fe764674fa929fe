"""Fires due schedules from the IOLoop: one loop per server, waking at the earliest next run.

Every server sharing a store runs one; the store decides atomically which of them enqueues an
occurrence (see `Store.fire_due_schedules`), so running several is safe and a server that stops
leaves the others firing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from tornado_queue.codec import format_time
from tornado_queue.errors import StoreFailure
from tornado_queue.schedules import Fired
from tornado_queue.server import store_calls
from tornado_queue.storage import Store

log = logging.getLogger("tornado_queue.schedules")

LONGEST_SLEEP = 1.0
"""The loop looks at the store at least this often: a schedule another server created (or
changed) is fired at most this late."""
WAKE_SLACK = 0.001
"""Sleep this much past a due time, so the wake-up does not come a hair before it."""


class Scheduler:
    """Calls the store's `fire_due_schedules` whenever a schedule may be due: at the earliest
    `next_run_at` the last round reported, at least every `LONGEST_SLEEP`, and at once after
    a PUT on this server (`poke`). Each round runs as handlers call the store (inline, awaited
    or on the executor), so the IOLoop never blocks on it."""

    def __init__(
        self,
        store: Store,
        on_fired: Callable[[str], None] = lambda _schedule: None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._on_fired = on_fired
        self._clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._next_due: float | None = None
        self.fired = 0
        """Occurrences this server enqueued (for metrics and tests)."""

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Stop after the round in progress, if any (a firing is atomic in the store)."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    def poke(self) -> None:
        """A schedule changed here: look again now (its next run may be the earliest)."""
        self._wake.set()

    async def fire_due(self) -> list[Fired]:
        """Fire whatever is due now, round after round while the store says more are due;
        what was fired (or skipped), in order."""
        fired: list[Fired] = []
        while True:
            done = await store_calls.call_store(self._store, self._store.fire_due_schedules)
            self._next_due = done.next_due
            for outcome in done.fired:
                self._report(outcome)
            fired += done.fired
            if not done.more:
                return fired

    async def _run(self) -> None:
        while True:
            try:
                await self.fire_due()
            except StoreFailure:
                self._next_due = None  # the outage log has said it; look again in a while
            except Exception:
                log.exception("firing due schedules failed; trying again")
                self._next_due = None
            await self._sleep()

    async def _sleep(self) -> None:
        delay = LONGEST_SLEEP
        if self._next_due is not None:
            delay = min(max(self._next_due - self._clock(), 0.0) + WAKE_SLACK, LONGEST_SLEEP)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)
        self._wake.clear()

    def _report(self, outcome: Fired) -> None:
        when = format_time(outcome.fire_time)
        if outcome.error is not None:
            log.warning(
                "schedule '%s': the occurrence of %s was skipped: %s",
                outcome.schedule,
                when,
                outcome.error,
            )
            return
        self.fired += 1
        self._on_fired(outcome.schedule)
        log.info("schedule '%s' enqueued task %s for %s", outcome.schedule, outcome.task_id, when)
