"""Helpers for the client, runner and CLI tests: a real server per test module and a stub HTTP
server that answers from a script, for the answers a real server will not give on demand
(401, 429, a dropped connection)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tornado_queue.client import Client
from tornado_queue.testing import ServerProcess


@contextmanager
def real_server(log_dir: Path, *flags: str) -> Iterator[ServerProcess]:
    """`python main.py --port 0 FLAGS` for the duration of the block, logging warnings only."""
    server = ServerProcess(log_dir / "server.log", "--log-level", "warning", *flags)
    try:
        yield server
    finally:
        server.kill()


def tasks_in_every_state(client: Client, queue: str) -> dict[str, str]:
    """One task of `queue` in each state, its id by state (the processing one leased for ten
    minutes, the scheduled one due in an hour)."""
    completed = client.enqueue({"made": "completed"}, queue=queue)
    client.complete(client.dequeue(queue=queue))
    failed = client.enqueue({"made": "failed"}, queue=queue)
    client.fail(client.dequeue(queue=queue), "boom", retry=False)
    processing = client.enqueue({"made": "processing"}, queue=queue)
    client.dequeue(queue=queue, lease=600)
    return {
        "pending": client.enqueue({"made": "pending"}, queue=queue),
        "scheduled": client.enqueue({"made": "scheduled"}, queue=queue, delay=3600),
        "processing": processing,
        "completed": completed,
        "failed": failed,
    }


DROP = "drop"
"""A scripted answer: close the connection without answering."""


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Seen:
    """One request the stub received, and the client port it came from (one per connection)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    port: int


class StubServer:
    """An HTTP/1.1 server on a free loopback port that gives `script`'s answers in order (the
    last one again once the script runs out) and records every request."""

    def __init__(self, *script: Answer | str) -> None:
        self.script = list(script) or [Answer()]
        self.seen: list[Seen] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {name.lower(): value for name, value in self.headers.items()}
                port = self.client_address[1]
                stub.seen.append(Seen(self.command, self.path, headers, body, port))
                step = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                if step == DROP:
                    self.close_connection = True
                    return
                assert isinstance(step, Answer)
                self.send_response(step.status)
                self.send_header("Content-Length", str(len(step.body)))
                for name, value in step.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(step.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> StubServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
