"""The event stream's source: every change to a task, in order, with an id to resume from.

A store records nothing until a server asks it to (`EventFeed.start`, when its first event
stream client connects): queues nobody watches pay one attribute read per change. From then on
it keeps the last `limits.EVENT_BUFFER` events, so a client that reconnects with the id of the
last event it saw gets what it missed, or learns that it must resync (`since` answers None).
"""

from __future__ import annotations

import secrets
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tornado_queue import limits
from tornado_queue.models import HistoryEntry, Task


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One change: its id (opaque, increasing), its name (as in a task's history) and its data:
    the task's `id`, `queue` and `status` after the change, `at`, and what changed
    (`lease_id`, `worker`, `error`, `attempts`) where it applies."""

    id: str
    event: str
    data: dict[str, Any]


EventListener = Callable[[Sequence[StreamEvent]], None]


def event_data(task: Task, entry: HistoryEntry) -> dict[str, Any]:
    """The data of the event a history entry stands for."""
    data: dict[str, Any] = {
        "id": task.id,
        "queue": task.queue,
        "status": task.status.value,
        "at": entry.at,
        "attempts": task.attempts,
    }
    if entry.lease_id is not None:
        data["lease_id"] = entry.lease_id
    if entry.worker is not None:
        data["worker"] = entry.worker
    if entry.error is not None:
        data["error"] = entry.error
    return data


class EventFeed(ABC):
    """What a server reads the event stream from; every server sharing a store (Redis) reads
    the same events with the same ids."""

    @abstractmethod
    def start(self) -> None:
        """Begin (or keep) recording changes; a server calls it while it has stream clients."""

    @abstractmethod
    def since(self, last_id: str) -> list[StreamEvent] | None:
        """The events after `last_id`, oldest first; None when some of them are no longer
        kept or `last_id` is not one of this feed's (the client must resync)."""

    @abstractmethod
    def subscribe(self, listener: EventListener) -> None:
        """Call `listener(events)` with each new batch of events, in order, from any thread."""

    @staticmethod
    @abstractmethod
    def position(event_id: str) -> tuple[int, int]:
        """Where an event id of this feed stands: a later event has a greater position."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop whatever the feed runs (a reader thread)."""


class LocalFeed(EventFeed):
    """The feed of a store in this process (memory, SQLite): a ring of the last events, with
    ids `<run>-<n>` so that ids of an earlier run of the server ask for a resync.

    The store calls `record` with its lock held (so events are in the order of its changes)
    and `flush` after releasing it, which hands what was recorded to the subscribers."""

    def __init__(self, capacity: int = limits.EVENT_BUFFER) -> None:
        self.on = False
        self._run = secrets.token_hex(4)
        self._next = 1
        self._kept: deque[StreamEvent] = deque(maxlen=capacity)
        self._unsent: list[StreamEvent] = []
        self._listeners: list[EventListener] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        self.on = True

    def record(self, task: Task, entry: HistoryEntry) -> None:
        """Note one change (with the store's lock held, so ids follow the store's order)."""
        data = event_data(task, entry)
        with self._lock:  # not while a flush hands the unsent ones over
            event = StreamEvent(f"{self._run}-{self._next}", entry.event, data)
            self._next += 1
            self._kept.append(event)
            self._unsent.append(event)

    def flush(self) -> None:
        """Hand the events recorded so far to the subscribers (without the store's lock)."""
        with self._lock:
            unsent, self._unsent = self._unsent, []
            if unsent:
                for listener in self._listeners:
                    listener(unsent)

    def since(self, last_id: str) -> list[StreamEvent] | None:
        run, _, number = last_id.partition("-")
        if run != self._run or not number.isdigit():
            return None
        after = int(number)
        with self._lock:
            kept = list(self._kept)
        if not kept:
            return [] if after < self._next else None
        first = self.position(kept[0].id)[1]
        if after + 1 < first:
            return None  # some of what it missed is gone
        return [event for event in kept if self.position(event.id)[1] > after]

    def subscribe(self, listener: EventListener) -> None:
        with self._lock:
            self._listeners = [*self._listeners, listener]

    @staticmethod
    def position(event_id: str) -> tuple[int, int]:
        return 0, int(event_id.partition("-")[2])
