"""A minimal push receiver for bench/push_bench.py: answers every POST with 200 and an empty
body, as fast as plain asyncio can, so that the benchmark measures the pusher, not its target.

    python bench/push_receiver.py [--port 0]

It prints `listening on http://127.0.0.1:PORT` once it listens. `GET /stats` answers
`{"requests": N, "connections": M}`: the POSTs answered and the connections accepted so far
(the benchmark reads them to check every task arrived, and how many connections it took).
Only the standard library: HTTP/1.1 with Content-Length bodies, keep-alive unless the client
sends `Connection: close`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys

CONTENT_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")
CLOSE = re.compile(rb"(?im)^connection:\s*close\s*$")
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
OK_CLOSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
MOST_HEADER_BYTES = 65536


class Counts:
    requests = 0
    connections = 0


class Receiver(asyncio.Protocol):
    """One connection: parses requests as they arrive (pipelined ones too) and answers each."""

    def __init__(self) -> None:
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        Counts.connections += 1

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.transport is not None:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                if len(self.buffer) > MOST_HEADER_BYTES:
                    self.transport.close()
                return
            head = self.buffer[:head_end]
            length = CONTENT_LENGTH.search(head)
            end = head_end + 4 + (int(length.group(1)) if length else 0)
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            self.answer(head)

    def answer(self, head: bytes) -> None:
        assert self.transport is not None
        if head.startswith(b"GET /stats "):
            body = json.dumps(
                {"requests": Counts.requests, "connections": Counts.connections}
            ).encode()
            self.transport.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            return
        Counts.requests += 1
        if CLOSE.search(head):
            self.transport.write(OK_CLOSE)
            self.transport.close()
            self.transport = None
        else:
            self.transport.write(OK)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Receiver, "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
