"""The floor: the cheapest Tornado app that answers the benchmark's routes the way the server does.

    python bench/floor.py [--host 127.0.0.1] [--port 0]

It parses each JSON body with orjson and answers a document of the same shape and about the same
size as the real server's (a task with a fresh uuid4 id, `{"ids": [...]}`, `{"tasks": [...]}`,
`{"results": [...]}`), with the same status codes and a `Location` header on 201. There is no
queue, no validation, no state, no request id, no metrics and no access log beyond Tornado's
default (a `tornado.access` record that nothing is configured to print). Same Tornado, one process,
the default asyncio loop, default `Application` and `HTTPServer` settings: whatever the real server
costs above this is the price of being a task queue, which is what `bench/http_bench.py` reports.

Like `main.py` it writes "listening on http://HOST:PORT" to stderr, so `--port 0` can be used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

PAYLOAD = orjson.Fragment(b'{"job":"send_email","to":"user@example.com"}')
"""What a dequeued task carries: the payload the benchmark enqueues (the server keeps payloads as
JSON bytes and splices them in the same way)."""

MAX_BATCH = 1000


def now() -> str:
    """The current time as the server writes it (ISO-8601, UTC, `Z`): one call per document, as
    the server formats its timestamps too."""
    return datetime.now(UTC).isoformat()[:-6] + "Z"


def task(task_id: str, status: str, payload: Any = PAYLOAD) -> dict[str, Any]:
    """A document shaped like the server's task (see API.md, "Task")."""
    stamp = now()
    leased = status == "processing"
    return {
        "id": task_id,
        "queue": "default",
        "payload": payload,
        "status": status,
        "priority": 0,
        "attempts": 0 if status == "pending" else 1,
        "max_attempts": 3,
        "created_at": stamp,
        "available_at": stamp,
        "lease_id": uuid.uuid4().hex[:24] if leased else None,
        "lease_expires_at": stamp if leased else None,
        "started_at": None if status == "pending" else stamp,
        "finished_at": stamp if status == "completed" else None,
        "result": None,
        "error": None,
    }


class FloorHandler(RequestHandler):
    """JSON in and out, nothing else."""

    def body(self) -> Any:
        return orjson.loads(self.request.body) if self.request.body else {}

    def answer(self, document: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(document))


class Tasks(FloorHandler):
    def post(self) -> None:
        body = self.body()
        task_id = str(uuid.uuid4())
        self.set_header("Location", f"/tasks/{task_id}")
        self.answer(task(task_id, "pending", body.get("payload")), 201)


class TaskBatch(FloorHandler):
    def post(self) -> None:
        items = self.body()["tasks"]
        self.answer({"ids": [str(uuid.uuid4()) for _ in items]}, 201)


class Dequeue(FloorHandler):
    def post(self) -> None:
        self.answer(task(str(uuid.uuid4()), "processing"))


class DequeueBatch(FloorHandler):
    def post(self) -> None:
        count = min(int(self.get_query_argument("count", "1")), MAX_BATCH)
        self.answer({"tasks": [task(str(uuid.uuid4()), "processing") for _ in range(count)]})


class CompleteBatch(FloorHandler):
    def post(self) -> None:
        items = self.body()["tasks"]
        self.answer({"results": [{"id": item["id"], "status": 200} for item in items]})


class Complete(FloorHandler):
    def put(self, task_id: str) -> None:
        self.body()  # the server parses an optional {"result", "lease_id"} body
        self.answer(task(task_id, "completed"))


def make_app() -> Application:
    # Literal routes before `/tasks/{id}`, in the server's order.
    return Application(
        [
            (r"/tasks", Tasks),
            (r"/tasks/batch", TaskBatch),
            (r"/tasks/dequeue", Dequeue),
            (r"/tasks/dequeue/batch", DequeueBatch),
            (r"/tasks/complete/batch", CompleteBatch),
            (r"/tasks/([^/]+)/complete", Complete),
        ]
    )


async def serve(host: str, port: int) -> None:
    sockets = bind_sockets(port, host)
    HTTPServer(make_app()).add_sockets(sockets)
    bound = sockets[0].getsockname()[1]
    print(f"floor listening on http://{host}:{bound}", file=sys.stderr, flush=True)
    await asyncio.Event().wait()  # until killed


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C when run by hand
        asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
