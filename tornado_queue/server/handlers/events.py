"""`GET /events`: every change to a task, live, as Server-Sent Events (see `event_hub`)."""

from __future__ import annotations

import contextlib

from tornado.iostream import StreamClosedError

from tornado_queue.errors import printable
from tornado_queue.server.auth import ADMIN
from tornado_queue.server.event_hub import (
    RETRY_MS,
    EventHub,
    Position,
    StreamClient,
    event_frame,
)
from tornado_queue.server.handlers.base import REQUEST_ID, Problem
from tornado_queue.server.handlers.tasks import ConsumerArguments
from tornado_queue.storage.events import StreamEvent

OPENING = b"retry: %d\n: tornado_queue events\n\n" % RETRY_MS
"""What every stream starts with: the reconnection delay, and a comment (so a client sees
bytes at once)."""
RESYNC = (
    b'event: resync\ndata: {"reason":"the events after Last-Event-ID are no longer kept '
    b'(or it is not an id of this stream)"}\n\n'
)
"""Sent, without an id, to a client whose missed events cannot be replayed: it should read
the state afresh (GET the tasks it shows) and go on from the live events that follow."""


def shutting_down() -> Problem:
    return Problem(503, "the server is shutting down", {"Retry-After": "1"})


class EventsHandler(ConsumerArguments):
    """`GET /events?queue=`: the stream; `Last-Event-ID` (or `?last_event_id=`) resumes it."""

    roles = ADMIN
    client: StreamClient | None = None

    async def get(self) -> None:
        queue = self.queue_argument() if self.query_argument("queue") is not None else None
        last_id = self.last_event_id()
        hub: EventHub = self.services.event_hub
        if hub.closing:
            raise shutting_down()
        client = hub.join(queue, self._cut_off)
        if client is None:
            raise Problem(
                503,
                f"{hub.max_clients} event streams are already open on this server; "
                "try again shortly",
                {"Retry-After": "1"},
            )
        self.client = client
        try:
            await self.call_store(hub.start)
            missed = None
            if last_id is not None:
                missed = await self.call_store(hub.feed.since, last_id)
        except BaseException:
            hub.leave(client)
            raise
        if client.ended:  # while the store was asked, the server began to stop, or...
            if hub.closing:
                raise shutting_down()
            return  # ...the client fell behind: its connection is closed already
        self.set_header("Content-Type", "text/event-stream")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")
        self.write(OPENING)
        after: Position | None = None
        if last_id is not None:
            if missed is None:
                self.write(RESYNC)
            else:
                after = hub.feed.position(missed[-1].id if missed else last_id)
                self._write_replay(missed, queue)
        client.go_live(after)
        await self._pump(client)

    def last_event_id(self) -> str | None:
        """Where to resume: the `Last-Event-ID` header (what an EventSource sends when it
        reconnects), else `?last_event_id=`; absent or empty, the stream starts live."""
        name = "the Last-Event-ID header"
        value = self.single_header("Last-Event-ID")
        if not value:
            value = self.query_argument("last_event_id")
            name = "query parameter 'last_event_id'"
        if not value:
            return None
        if not REQUEST_ID.fullmatch(value):
            raise Problem(
                400,
                f"{name} must be an event id (1 to 128 visible ASCII characters), "
                f"got '{printable(value[:40])}'",
            )
        return value

    def _write_replay(self, missed: list[StreamEvent], queue: str | None) -> None:
        for event in missed:
            if queue is None or event.data.get("queue") == queue:
                self.write(event_frame(event))

    async def _pump(self, client: StreamClient) -> None:
        """Write what the client is given, as fast as its connection takes it, until it
        leaves, is dropped or the server stops."""
        while True:
            client.ready.clear()
            chunk = client.take()
            if chunk:
                self.write(chunk)
            client.writing = True
            try:
                await self.flush()
            except StreamClosedError:
                return
            finally:
                client.writing = False
            if client.ended:
                return
            await client.ready.wait()

    def _cut_off(self) -> None:
        """The hub dropped this client: close its connection now, even mid-write."""
        stream = getattr(self.request.connection, "stream", None)
        if stream is not None:
            with contextlib.suppress(Exception):
                stream.close()

    def _leave(self) -> None:
        client = self.client
        if client is not None:
            self.services.event_hub.leave(client)
            client.end()

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self._leave()

    def on_finish(self) -> None:
        super().on_finish()
        self._leave()
