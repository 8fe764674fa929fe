"""The event stream's fan-out: one hub per application reads the store's event feed and hands
each event to the stream clients (`GET /events`) that want it.

The feed calls the hub from whatever thread made the change (a reader thread, on Redis); the
hub hops to the IOLoop with `add_callback`, in the order the batches came, and there appends
each event, encoded once, to the buffer of every client of its queue. Each client's handler
writes its buffer out at the pace of its connection. A client whose connection stops taking
what is written, while more than `buffer` events wait for it, is dropped (its connection
closed): it reconnects and resumes from the last id it saw, so a slow client costs the server
a bounded buffer and never a wait.

A client that resumes is joined *before* its missed events are read from the feed, so nothing
falls between the two; what it hears meanwhile is held, and what the replay already covered
(by `EventFeed.position`) is never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Sequence

from tornado.ioloop import IOLoop, PeriodicCallback

from tornado_queue import codec, limits
from tornado_queue.errors import StoreFailure
from tornado_queue.server.store_calls import call_store
from tornado_queue.storage import Store
from tornado_queue.storage.events import EventFeed, StreamEvent

KEEPALIVE_SECONDS = 15.0
"""A comment line goes to every idle stream this often, so proxies and clients see it alive
(and the feed is told again that someone listens)."""
RETRY_MS = 2000
"""The `retry:` a stream opens with: how long an EventSource waits before reconnecting."""
KEEPALIVE = b": keep-alive\n\n"

Position = tuple[int, int]


def event_frame(event: StreamEvent) -> bytes:
    """One event as Server-Sent Events put it: its id, its name and its data as one line of
    JSON (`at` a timestamp like every other the API writes), then the blank line ending it."""
    data = dict(event.data)
    data["at"] = codec.format_time(data.get("at"))
    return b"id: %s\nevent: %s\ndata: %s\n\n" % (
        event.id.encode(),
        event.event.encode(),
        codec.dumps(data),
    )


class StreamClient:
    """One open stream: its queue (None: every queue) and what is yet to be written."""

    __slots__ = (
        *("_close", "_limit", "after", "ended", "held", "live", "queue", "ready", "unsent"),
        "writing",
    )

    def __init__(self, queue: str | None, limit: int, close: Callable[[], None]) -> None:
        self.queue = queue
        self.live = False
        """False while its missed events are being read: what it hears is held meanwhile."""
        self.after: Position | None = None
        """Events at or before this position were replayed to it: skipped when heard."""
        self.held: list[tuple[Position, bytes]] = []
        self.unsent: list[bytes] = []
        self.ended = False
        self.writing = False
        """Its handler waits for the connection to take what was written."""
        self.ready = asyncio.Event()
        self._limit = limit
        self._close = close

    def offer(self, position: Position, frame: bytes) -> bool:
        """Take one event; False when that shows it is not keeping up (it must be dropped):
        its connection has not taken the last write and `limit` events wait behind it. (A
        burst that arrives while its connection is keeping up is written out whole: the
        frames are shared by every client, so that costs the list of them.) Held events,
        while its replay is read, are bounded by `limit` alone."""
        if not self.live:
            self.held.append((position, frame))
            return len(self.held) <= self._limit
        if self.after is None or position > self.after:
            self.unsent.append(frame)
            self.ready.set()
        return not self.writing or len(self.unsent) <= self._limit

    def go_live(self, after: Position | None) -> None:
        """Its replay is written: from now on it gets what it hears, after `after`."""
        self.after = after
        self.unsent.extend(
            frame for position, frame in self.held if after is None or position > after
        )
        self.held = []
        self.live = True
        self.ready.set()

    def take(self) -> bytes:
        """Everything yet to be written, at once."""
        chunk = b"".join(self.unsent)
        self.unsent = []
        return chunk

    def keep_alive(self) -> None:
        if self.live and not self.unsent:
            self.unsent.append(KEEPALIVE)
            self.ready.set()

    def end(self, *, close: bool = False) -> None:
        """No more events: its handler finishes the response (or, `close`, the connection is
        cut at once, for a client that is not reading)."""
        self.ended = True
        self.ready.set()
        if close:
            self._close()


class EventHub:
    """The stream clients of one application, fed from its store's event feed."""

    def __init__(
        self,
        store: Store,
        buffer: int = limits.EVENT_CLIENT_BUFFER,
        max_clients: int = limits.MAX_EVENT_CLIENTS,
    ) -> None:
        self.store = store
        self.feed: EventFeed = store.event_feed
        self.buffer = buffer
        """Events a client may have unsent before it is dropped."""
        self.max_clients = max_clients
        self.closing = False
        self.dropped = 0
        """Clients dropped for falling behind, since the start."""
        self._clients: set[StreamClient] = set()
        self._io_loop: IOLoop | None = None
        self._subscribed = False
        self._lock = threading.Lock()
        self._timer: PeriodicCallback | None = None
        self._refreshing: asyncio.Task[None] | None = None

    def count(self) -> int:
        """How many streams are open."""
        return len(self._clients)

    def join(self, queue: str | None, close: Callable[[], None]) -> StreamClient | None:
        """A new stream (on the IOLoop), holding what it hears until `go_live`; None when
        `max_clients` are already open."""
        if len(self._clients) >= self.max_clients:
            return None
        self._io_loop = IOLoop.current()
        client = StreamClient(queue, self.buffer, close)
        self._clients.add(client)
        if self._timer is None:
            self._timer = PeriodicCallback(self._keep_alive, KEEPALIVE_SECONDS * 1000)
            self._timer.start()
        return client

    def leave(self, client: StreamClient) -> None:
        self._clients.discard(client)
        if not self._clients and self._timer is not None:
            self._timer.stop()
            self._timer = None

    def start(self) -> None:
        """Have the feed record (or keep recording) and, the first time, listen to it. Called
        through `call_store`, so on any thread."""
        self.feed.start()
        with self._lock:
            if not self._subscribed:
                self._subscribed = True
                self.feed.subscribe(self._heard)

    def close(self) -> None:
        """Shutting down: every stream ends now (a client that is not taking what was
        written is cut off), and no new one starts."""
        self.closing = True
        for client in list(self._clients):
            client.end(close=client.writing)
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _heard(self, events: Sequence[StreamEvent]) -> None:
        """The feed's listener, on any thread: hand the batch to the IOLoop, in order."""
        io_loop = self._io_loop
        if io_loop is None or not self._clients:
            return  # nobody listens here: what happened before a client joins is its replay
        with contextlib.suppress(RuntimeError):  # the loop is gone: the server has stopped
            io_loop.add_callback(self._fan_out, events)

    def _fan_out(self, events: Sequence[StreamEvent]) -> None:
        clients = list(self._clients)
        position = self.feed.position
        for event in events:
            queue = event.data.get("queue")
            frame: bytes | None = None
            where: Position = (0, 0)
            for client in clients:
                if client.ended or (client.queue is not None and client.queue != queue):
                    continue
                if frame is None:
                    frame, where = event_frame(event), position(event.id)
                if not client.offer(where, frame):
                    self._drop(client)

    def _drop(self, client: StreamClient) -> None:
        """A client that fell `buffer` events behind: cut off, to reconnect and resume."""
        self.dropped += 1
        self.leave(client)
        client.end(close=True)

    def _keep_alive(self) -> None:
        for client in self._clients:
            client.keep_alive()
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.ensure_future(self._refresh())

    async def _refresh(self) -> None:
        """Tell the feed again that this server has stream clients (a shared feed may stop
        recording for a server that stopped saying so). A store that is down is retried at
        the next keep-alive."""
        with contextlib.suppress(StoreFailure):
            await call_store(self.store, self.start)
