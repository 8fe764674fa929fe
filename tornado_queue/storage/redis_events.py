"""The event feed of a Redis store: one Redis Stream that every server sharing the Redis writes
(from inside the store's script, in the order of the changes) and reads.

The script adds an entry per change only while `<prefix>:feed_on` exists; `start` sets it
(through the script, which takes note at once) with a time to live, and the feed refreshes it
for as long as its server runs, so a Redis whose servers all went away stops recording a few
minutes later. The key holds how many events the stream keeps (`MAXLEN ~`: at least that
many). Event ids are the stream's entry ids (`ms-seq`), the same on every server.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from tornado_queue.models import Happened
from tornado_queue.storage.events import EventFeed, EventListener, StreamEvent

log = logging.getLogger("tornado_queue.redis")

ON_SECONDS = 300
"""How long recording stays on after the last refresh (a server that went away stops it)."""
REFRESH_SECONDS = 60.0
"""How often a started feed refreshes it."""
BLOCK_MS = 250
"""How long one read of the reader thread waits for new entries: `close` takes at most this."""

HAPPENED = {happened.value.encode(): happened for happened in Happened}
OPTIONAL = (b"lease_id", b"worker", b"error")
STREAM_ID = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")


class RedisFeed(EventFeed):
    """Reads and switches on the stream `<prefix>:feed`. One daemon thread, started by the
    first `start` or `subscribe`, refreshes the switch while the feed is started and reads new
    entries (XREAD, blocking a moment at a time, so `close` stops it soon) and hands each batch
    to the listeners in order."""

    def __init__(self, client: redis.Redis, prefix: str, switch_on: Callable[[], None]) -> None:
        self._redis = client
        self._stream = f"{prefix}:feed"
        self._switch_on_now = switch_on  # the store's call that sets `<prefix>:feed_on`
        self._started = False
        self._refresh_at = 0.0
        self._listeners: list[EventListener] = []
        self._last: bytes | None = None  # the last entry the reader handed on
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._reader: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        with self._lock:
            self._started = True
            if time.monotonic() >= self._refresh_at:
                self._switch_on()
            self._run_reader()

    def since(self, last_id: str) -> list[StreamEvent] | None:
        try:
            self.position(last_id)
        except ValueError:
            return None
        # From the id itself: it is still there only if nothing after it was trimmed (entries
        # go from the front, and no other way); an id the stream never had is not found either.
        try:
            entries = self._redis.xrange(self._stream, min=last_id)
        except redis.ResponseError:
            return None  # digits, but no id Redis could have made (past 64 bits)
        if not entries or entries[0][0].decode() != last_id:
            return None
        return [_event(entry_id, fields) for entry_id, fields in entries[1:]]

    def subscribe(self, listener: EventListener) -> None:
        with self._lock:
            if self._last is None:
                # Where the stream is now, read before this returns: the listener hears every
                # change made after it subscribed.
                newest = self._redis.xrevrange(self._stream, count=1)
                self._last = newest[0][0] if newest else b"0-0"
            self._listeners = [*self._listeners, listener]
            self._run_reader()

    @staticmethod
    def position(event_id: str) -> tuple[int, int]:
        if STREAM_ID.fullmatch(event_id) is None:
            raise ValueError(f"not a stream id: {event_id!r}")
        ms, _, seq = event_id.partition("-")
        return int(ms), int(seq)

    def close(self) -> None:
        self._stop.set()
        reader = self._reader
        if reader is not None:
            reader.join(timeout=5)

    # -- internals ----------------------------------------------------------------------------

    def _switch_on(self) -> None:
        self._switch_on_now()
        self._refresh_at = time.monotonic() + REFRESH_SECONDS

    def _run_reader(self) -> None:
        """With the lock held: the reader thread, started once."""
        if self._reader is None and not self._stop.is_set():
            self._reader = threading.Thread(
                target=self._read, name="tornado_queue-redis-feed", daemon=True
            )
            self._reader.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as error:  # Redis away (or worse): the thread must live on
                if not self._failing:
                    log.warning("lost the event feed (%r); trying again every second", error)
                    self._failing = True
                self._stop.wait(1.0)

    def _step(self) -> None:
        """Refresh the switch when due, then hand on what was added (or wait a moment)."""
        if self._started and time.monotonic() >= self._refresh_at:
            with self._lock:
                self._switch_on()
        listeners, last = self._listeners, self._last
        if not listeners or last is None:
            self._stop.wait(BLOCK_MS / 1000)
            return
        # All that came since (the stream keeps no more than that): a reader more than the
        # stream's length behind would miss what was trimmed meanwhile.
        replies = self._redis.xread({self._stream: last}, block=BLOCK_MS)
        if self._failing:
            log.info("event feed back")
            self._failing = False
        if not replies:
            return
        entries = replies[0][1]
        self._last = entries[-1][0]
        events = [_event(entry_id, fields) for entry_id, fields in entries]
        for listener in self._listeners:
            try:
                listener(events)
            except Exception:
                log.exception("an event feed listener failed")


def _event(entry_id: bytes, fields: dict[bytes, bytes]) -> StreamEvent:
    """An event from its stream entry, with the data `events.event_data` gives in memory."""
    data: dict[str, Any] = {
        "id": fields[b"id"].decode(),
        "queue": fields[b"queue"].decode(),
        "status": fields[b"status"].decode(),
        "at": float(fields[b"at"]),
        "attempts": int(fields[b"attempts"]),
    }
    for name in OPTIONAL:
        value = fields.get(name)
        if value is not None:
            data[name.decode()] = value.decode()
    return StreamEvent(entry_id.decode(), HAPPENED[fields[b"event"]], data)
