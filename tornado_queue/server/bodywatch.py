"""Closing connections whose request body stalls: one sweep a second over the bodies still
arriving, instead of Tornado's per-request body timeout (a timer and a chain of futures for
every request with a body, about 1.5 more IOLoop turns each)."""

from __future__ import annotations

import time

from tornado.httputil import HTTPServerRequest
from tornado.ioloop import IOLoop, PeriodicCallback

SWEEP_MS = 1000


class BodyDeadlines:
    """Requests whose body has not fully arrived, by deadline. IOLoop thread only."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._pending: dict[HTTPServerRequest, float] = {}
        self._sweeper: PeriodicCallback | None = None
        self._loop: IOLoop | None = None

    def expect_body(self, request: HTTPServerRequest) -> None:
        """A request whose headers announced a body: it must arrive within `seconds`."""
        if not self.seconds:
            return
        self._pending[request] = time.monotonic() + self.seconds
        loop = IOLoop.current()
        if self._loop is not loop:  # a new loop (tests make one per test): a sweeper on it
            if self._sweeper is not None:
                self._sweeper.stop()
            self._loop, self._sweeper = loop, PeriodicCallback(self._sweep, SWEEP_MS)
            self._sweeper.start()

    def body_done(self, request: HTTPServerRequest) -> None:
        self._pending.pop(request, None)

    def arriving(self) -> int:
        """How many requests are still receiving their body (their handler does not exist
        yet, so a graceful shutdown must wait for them too); closed connections are dropped."""
        for request in [request for request in self._pending if _closed(request)]:
            del self._pending[request]
        return len(self._pending)

    def _sweep(self) -> None:
        now = time.monotonic()
        late = [request for request, deadline in self._pending.items() if deadline <= now]
        for request in late:
            del self._pending[request]
            connection = request.connection
            if connection is not None:
                connection.close()  # type: ignore[attr-defined]

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
        self._pending.clear()


def _closed(request: HTTPServerRequest) -> bool:
    stream = getattr(request.connection, "stream", None)
    return stream is None or stream.closed()
