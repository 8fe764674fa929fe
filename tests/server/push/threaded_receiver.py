"""A push receiver for tests against real server processes: a threaded HTTP server on a
loopback port, recording each push and answering as the test says."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Push:
    webhook_id: str
    body: dict
    arrived: float


Responder = Callable[[Push], int]
"""Decides a push's status (and may block, to hold the push)."""


class ThreadedReceiver:
    """`with ThreadedReceiver() as receiver`: pushes to `receiver.url` are kept in
    `receiver.pushes`; `respond` gives each answer's status (200 by default)."""

    def __init__(self, respond: Responder | None = None) -> None:
        self.respond: Responder = respond or (lambda _push: 200)
        self.pushes: list[Push] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        receiver = self

        class Hook(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                push = Push(
                    self.headers["webhook-id"],
                    json.loads(self.rfile.read(length)),
                    time.monotonic(),
                )
                with receiver.lock:
                    receiver.pushes.append(push)
                    receiver.in_flight += 1
                    receiver.most_in_flight = max(receiver.most_in_flight, receiver.in_flight)
                try:
                    status = receiver.respond(push)
                finally:
                    with receiver.lock:
                        receiver.in_flight -= 1
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the pushing server is gone
                    pass

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> ThreadedReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self) -> int:
        with self.lock:
            return len(self.pushes)
