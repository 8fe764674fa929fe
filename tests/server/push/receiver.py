"""A push receiver for the tests: a real HTTP server on a loopback port that records each push
(headers and body) and answers as the test scripts it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from tornado.httpserver import HTTPServer
from tornado.httputil import HTTPHeaders
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler


@dataclass(frozen=True)
class Answer:
    """What the receiver answers one push with."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    headers: HTTPHeaders
    body: bytes
    path: str

    @property
    def document(self) -> dict:
        return orjson.loads(self.body)


Script = Callable[[Received], Awaitable[Answer] | Answer]


class Receiver:
    """Start with `async with Receiver() as receiver`; `receiver.url` takes pushes, recorded in
    `receiver.pushes`; `receiver.script` decides each answer (200 with no body by default)."""

    def __init__(self, script: Script | None = None) -> None:
        self.pushes: list[Received] = []
        self.script: Script = script or (lambda _push: Answer())
        self.in_flight = 0
        self.most_in_flight = 0
        self._server: HTTPServer | None = None
        self.port = 0
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        receiver = self

        class Hook(RequestHandler):
            async def post(self, path: str) -> None:
                push = Received(self.request.headers, self.request.body, path)
                receiver.in_flight += 1
                receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    async with receiver._arrived:
                        receiver.pushes.append(push)
                        receiver._arrived.notify_all()
                    answer = receiver.script(push)
                    if asyncio.iscoroutine(answer):
                        answer = await answer
                finally:
                    receiver.in_flight -= 1
                self.set_status(answer.status)
                for name, value in answer.headers.items():
                    self.set_header(name, value)
                if answer.body:
                    self.write(answer.body)

        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(Application([(r"(/.*)", Hook)]))
        self._server.add_sockets(sockets)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.stop()
        await self._server.close_all_connections()

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The pushes received, once there are at least `count`."""

        async def enough() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.pushes) >= count)

        await asyncio.wait_for(enough(), timeout)
        return list(self.pushes)
