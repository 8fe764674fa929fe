"""A raw Server-Sent Events reader for the HTTP tests: `GET /events` over HTTP/1.0 (so the
answer is the stream itself, with no chunked framing), its head, then one block at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson
from tornado import gen
from tornado.httputil import HTTPHeaders, parse_response_start_line
from tornado.iostream import IOStream
from tornado.tcpclient import TCPClient

READ_SECONDS = 10.0
"""Longest a read waits for the server before the test fails."""


@dataclass
class Block:
    """One block of the stream (lines up to a blank line): its fields and comments."""

    fields: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    @property
    def is_event(self) -> bool:
        return "data" in self.fields

    @property
    def data(self) -> Any:
        return orjson.loads(self.fields["data"])


class EventStream:
    """One `GET /events` as sent by hand; `open` returns once the head has arrived."""

    def __init__(self, stream: IOStream, status: int, headers: HTTPHeaders) -> None:
        self.stream = stream
        self.status = status
        self.headers = headers

    @classmethod
    async def open(
        cls, port: int, path: str = "/events", headers: dict[str, str] | None = None
    ) -> EventStream:
        stream = await TCPClient().connect("127.0.0.1", port)
        lines = [f"GET {path} HTTP/1.0", "Host: 127.0.0.1"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        await stream.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = await within(stream.read_until(b"\r\n\r\n"))
        start_line, _, header_block = head.decode("latin-1").partition("\r\n")
        status = parse_response_start_line(start_line).code
        return cls(stream, status, HTTPHeaders.parse(header_block))

    async def body(self) -> bytes:
        """The rest of the answer (a refusal's problem JSON: the server then closes)."""
        return await within(self.stream.read_until_close())

    async def block(self) -> Block:
        raw = await within(self.stream.read_until(b"\n\n"))
        parsed = Block()
        for line in raw.decode().split("\n"):
            if not line:
                continue
            if line.startswith(":"):
                parsed.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            assert name not in parsed.fields, f"field {name!r} twice in {raw!r}"
            parsed.fields[name] = value.removeprefix(" ")
        return parsed

    async def event(self) -> Block:
        """The next event, past comments (the opening, keep-alives)."""
        while True:
            block = await self.block()
            if block.is_event:
                return block

    async def events(self, count: int) -> list[Block]:
        return [await self.event() for _ in range(count)]

    def close(self) -> None:
        self.stream.close()


async def within(future: Any, seconds: float = READ_SECONDS) -> Any:
    return await gen.with_timeout(timedelta(seconds=seconds), future)
