"""Kept-alive HTTP/1.1 connections from the pusher to push receivers.

Tornado's `SimpleAsyncHTTPClient` opens a connection for every request (it sends
`Connection: close`), which cost a push about a fifth of its server time, and over HTTPS a TLS
handshake each. `Connections` keeps each receiver's connections open between pushes instead,
speaking HTTP/1.1 through Tornado's own `HTTP1Connection` over `TCPClient` streams.

- A connection is opened through the given resolver (the pusher's `AllowingResolver`), so its
  address is checked by --push-allow whenever one is opened; a kept one goes only to the
  scheme, host and port it was opened for.
- An idle connection is closed after `KEEP_IDLE_SECONDS`, and is not used again if the
  receiver closed it (or sent anything) meanwhile. A push on a kept connection that the
  receiver had closed, and that got no byte of an answer, is sent once more on a new one.
- A connection is kept only after a whole answer that HTTP/1.1 lets it outlive: delimited by
  its length or chunks, with no `Connection: close`.
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado import httputil
from tornado.http1connection import (
    HTTP1Connection,
    HTTP1ConnectionParameters,
    is_transfer_encoding_chunked,
)
from tornado.iostream import IOStream, StreamClosedError
from tornado.netutil import Resolver
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.tcpclient import TCPClient

KEEP_IDLE_SECONDS = 4.0
"""An idle connection is closed after this long: under the 5 s that Node.js servers, common
receivers, keep one open by default, so the pusher rarely finds one closed under it."""
MOST_IDLE_PER_RECEIVER = 1000
"""Idle connections kept per receiver at most (a lane has at most this many pushes in flight)."""

_PARAMETERS = HTTP1ConnectionParameters(decompress=False)

Key = tuple[str, str, int]
"""A receiver: scheme, host and port."""


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    reason: str
    headers: httputil.HTTPHeaders
    body: bytes
    """At most the bound the connections were given, plus one byte: the rest is dropped."""


class NoAnswer(StreamClosedError):
    """The connection ended before a whole answer was read."""

    def __init__(self, started: bool, real_error: BaseException | None = None) -> None:
        super().__init__(real_error)
        self.started = started
        """Some of the answer had arrived."""

    def __str__(self) -> str:
        if self.started:
            return "the connection closed before the whole answer was read"
        return "the connection closed before any answer"


class _Reader(httputil.HTTPMessageDelegate):
    """One answer: its start line, headers and up to `bound` + 1 bytes of its body."""

    def __init__(self, bound: int) -> None:
        self.bound = bound
        self.start_line: httputil.ResponseStartLine | None = None
        self.headers = httputil.HTTPHeaders()
        self.body = bytearray()
        self.finished = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.ResponseStartLine)
        self.start_line, self.headers = start_line, headers

    def data_received(self, chunk: bytes) -> None:
        room = self.bound + 1 - len(self.body)
        if room > 0:
            self.body += chunk[:room]

    def finish(self) -> None:
        self.finished = True

    def on_connection_close(self) -> None:
        pass

    def keeps_alive(self) -> bool:
        """Whether HTTP/1.1 lets the connection carry another request after this answer."""
        assert self.start_line is not None
        connection = self.headers.get("Connection", "").lower()
        if self.start_line.version == "HTTP/1.1":
            delimited = "Content-Length" in self.headers or is_transfer_encoding_chunked(
                self.headers
            )
            return connection != "close" and (delimited or self.start_line.code in (204, 304))
        return False


class Connections:
    """`await connections.post(url, headers, body, timeout)` → `Answer`. Raises what the
    connection raised (`DisallowedAddress` from the resolver, `StreamClosedError`, `OSError`,
    `ssl.SSLError`, `NoAnswer`), or `HTTPTimeoutError` when `timeout` ran out first."""

    def __init__(
        self,
        resolver: Resolver,
        body_bound: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tcp = TCPClient(resolver=resolver)
        self._body_bound = body_bound
        self._ssl_context = ssl_context
        self._clock = clock
        self._idle: dict[Key, deque[tuple[IOStream, float]]] = {}
        self.opened = 0
        """Connections opened so far."""

    async def post(self, url: str, headers: dict[str, str], body: bytes, timeout: float) -> Answer:
        parts = urlsplit(url)
        https = parts.scheme == "https"
        host = parts.hostname or ""
        key = (parts.scheme, host, parts.port or (443 if https else 80))
        sent = httputil.HTTPHeaders(headers)
        sent["Host"] = parts.netloc  # push URLs carry no user:password
        sent["Content-Length"] = str(len(body))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        start = httputil.RequestStartLine("POST", path, "HTTP/1.1")
        try:
            return await asyncio.wait_for(self._exchange(key, start, sent, body), timeout)
        except TimeoutError:
            raise HTTPTimeoutError("Timeout") from None

    def prune(self) -> None:
        """Close the connections idle for `KEEP_IDLE_SECONDS` or more."""
        oldest = self._clock() - KEEP_IDLE_SECONDS
        for key, idle in list(self._idle.items()):
            while idle and idle[0][1] <= oldest:
                idle.popleft()[0].close()
            if not idle:
                del self._idle[key]

    def close(self) -> None:
        for idle in self._idle.values():
            for stream, _since in idle:
                stream.close()
        self._idle.clear()

    @property
    def idle(self) -> int:
        return sum(len(idle) for idle in self._idle.values())

    async def _exchange(
        self,
        key: Key,
        start: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        body: bytes,
    ) -> Answer:
        kept = self._take(key)
        if kept is not None:
            try:
                return await self._send(kept, key, start, headers, body)
            except NoAnswer as error:
                if error.started:
                    raise
            # The receiver had closed the kept connection before answering: send it anew.
        stream = await self._open(key)
        return await self._send(stream, key, start, headers, body)

    async def _open(self, key: Key) -> IOStream:
        scheme, host, port = key
        if scheme != "https":
            stream = await self._tcp.connect(host, port)
        else:
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            # The certificate is checked against `host` (TCPClient gives it as the TLS name).
            stream = await self._tcp.connect(host, port, ssl_options=self._ssl_context)
        self.opened += 1
        return stream

    async def _send(
        self,
        stream: IOStream,
        key: Key,
        start: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        body: bytes,
    ) -> Answer:
        reader = _Reader(self._body_bound)
        connection = HTTP1Connection(stream, True, _PARAMETERS)
        try:
            connection.write_headers(start, headers)
            connection.write(body)
            connection.finish()
            await connection.read_response(reader)
        except StreamClosedError as error:
            stream.close()
            raise NoAnswer(reader.start_line is not None, error.real_error) from error
        except BaseException:
            stream.close()  # a push cut off (by its timeout too) leaves nothing half-read
            raise
        if not reader.finished or reader.start_line is None:
            stream.close()
            raise NoAnswer(started=reader.start_line is not None)
        if stream.closed() or not reader.keeps_alive():
            stream.close()
        else:
            self._give_back(key, connection.detach())
        line = reader.start_line
        return Answer(line.code, line.reason, reader.headers, bytes(reader.body))

    def _take(self, key: Key) -> IOStream | None:
        """The most recently used idle connection to `key` that is still good to use."""
        idle = self._idle.get(key)
        oldest = self._clock() - KEEP_IDLE_SECONDS
        while idle:
            stream, since = idle.pop()
            if since > oldest and not stream.closed() and not _readable(stream):
                return stream
            stream.close()
        return None

    def _give_back(self, key: Key, stream: IOStream) -> None:
        idle = self._idle.setdefault(key, deque())
        if len(idle) >= MOST_IDLE_PER_RECEIVER:
            stream.close()
            return
        idle.append((stream, self._clock()))


def _readable(stream: IOStream) -> bool:
    """Whether an idle connection has something to read: the receiver closed it (or sent
    what no request asked for), so it cannot carry a push."""
    try:
        readable, _, _ = select.select([stream.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
