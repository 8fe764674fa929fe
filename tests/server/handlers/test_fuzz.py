"""Fuzzing the HTTP API : Hypothesis-made request bodies, query strings, headers,
methods and paths against the app in-process, over real loopback HTTP.

Properties checked on every answer:

1. never a 5xx;
2. every error (4xx) is `application/problem+json` with a non-empty `detail` string (the body
   of an answer to HEAD is empty by HTTP's rules, so only its type is checked), never HTML.
   One exception, kept narrow: a header value with a control character is refused by
   Tornado's HTTP/1 parser with a bare `400 Bad Request` before any handler runs (see
   `unparseable`); that answer is accepted only for such requests, and must change nothing;
3. a 4xx leaves the store exactly as it was: counts by state and queue, event totals, every
   listed queue page and every task this module knows of, compared before and after;
4. a 2xx is JSON (a 204 is empty), except `/` and `/docs` (HTML pages), `/metrics` (Prometheus
   text) and the static asset routes (whatever file type they serve).

How it runs. Hypothesis's `@given` does not mix well with pytest-tornado's `gen_test` (each
example would need its own IOLoop turn inside one coroutine test), so the tests here are plain
synchronous functions: a module-scoped fixture serves `make_app(store, settings)` with an
`HTTPServer` configured as `server.serve` does, on a free loopback port, on an asyncio loop of
its own in a background thread; each example writes one request on a fresh loopback socket
from the test thread (raw bytes: any header value, chunked or sized bodies, a write cut short
by an early answer is fine) and reads the whole answer with `http.client.HTTPResponse`, so the
server is idle whenever the test reads or seeds the store directly. The store's clock never
moves, so nothing changes by itself between two snapshots (no lease runs out, no delay ends,
nothing is forgotten).

Only the memory store (calls inline on the IOLoop) is fuzzed: every backend sits behind the same
handler layer, which is what these properties are about, and the HTTP contract suites
(test_errors, test_limits, ...) already run every bad-input case against all four store modes.

Bounded for CI: `derandomize=True` makes every run send the same requests, and the example
counts keep the whole module to a few seconds.

Task ids, lease ids and queue names in the generated requests are often real: the strategies
write placeholders (`@@ID:<status>@@`, `@@LEASE@@`) that are replaced just before sending by
the id of a seeded task in that state, or the processing task's lease, topped up before each
example.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import math
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

from tests.server.handlers.helpers import assert_not_html, check_problem_document
from tornado_queue import codec
from tornado_queue.config import Settings
from tornado_queue.models import LISTED, NewTask
from tornado_queue.server.app import ROUTES, make_app
from tornado_queue.server.handlers.base import ApiHandler, route_template
from tornado_queue.storage import MemoryStore, Policy
from tornado_queue.validation import (
    BATCH_FIELDS,
    BATCH_ITEM_FIELDS,
    COMPLETE_FIELDS,
    COMPLETE_ITEM_FIELDS,
    FAIL_FIELDS,
    HEARTBEAT_FIELDS,
    NEW_TASK_FIELDS,
)

OWN_STORE = True
"""This module serves its own memory store (see the docstring): no store parametrization."""

LIMIT = 64 * 1024
SEED_STATUSES = ("pending", "scheduled", "processing", "completed", "failed")
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
PLACEHOLDER = re.compile(rb"@@(ID:[a-z]+|LEASE)@@")

FUZZ = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)


# --- the server -------------------------------------------------------------------------------


class FrozenClock:
    """A clock that never moves: the store changes only when a request (or a seed) changes it."""

    def time(self) -> float:
        return 1_790_000_000.0

    def monotonic(self) -> float:
        return 1_000.0


@dataclass
class Reply:
    status: int
    content_type: str
    headers: http.client.HTTPMessage
    body: bytes


@dataclass(repr=False)
class LoopbackServer:
    """`make_app(store, settings)` behind an `HTTPServer` on 127.0.0.1, on an asyncio loop in a
    background thread; requests go to it with `http.client` from the test thread."""

    store: MemoryStore
    config: Settings
    port: int = 0
    seeds: dict[str, str] = field(default_factory=dict)
    lease: str = ""
    known: set[str] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None
    _stop: asyncio.Event | None = None
    _ready: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"LoopbackServer(port={self.port})"

    def start(self) -> None:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the fuzz server did not start"

    async def _serve(self) -> None:
        app = make_app(self.store, self.config)
        sockets = bind_sockets(0, "127.0.0.1")
        server = HTTPServer(
            app,
            max_body_size=self.config.max_body_bytes + (8 << 20),
            idle_connection_timeout=self.config.idle_timeout,
            body_timeout=self.config.body_timeout,
        )
        server.add_sockets(sockets)
        self.port = sockets[0].getsockname()[1]
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        server.stop()
        await server.close_all_connections()

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    # --- seeding and snapshots (only while the server is idle) ---

    def top_up(self) -> None:
        """Make sure a task of every state exists, and remember its id."""
        for status in SEED_STATUSES:
            task = self.store.get(self.seeds.get(status, ""))
            if task is None or task.status != status:
                self.seeds[status] = self._seed(status)
        processing = self.store.get(self.seeds["processing"])
        assert processing is not None and processing.lease_id is not None
        self.lease = processing.lease_id
        self.known.update(self.seeds.values())

    def _seed(self, status: str) -> str:
        payload = b'{"seed":"%s"}' % status.encode()
        queue = f"seed-{status}"
        if status in ("pending", "scheduled"):
            delay = 3600.0 if status == "scheduled" else 0.0
            return self.store.enqueue(NewTask(payload=payload, queue=queue, delay=delay)).id
        self.store.enqueue(NewTask(payload=payload, queue=queue, max_attempts=1))
        task = self.store.dequeue(queue=queue)
        assert task is not None
        if status == "completed":
            self.store.complete(task.id, b'{"ok":true}')
        elif status == "failed":
            self.store.fail(task.id, "seeded failure", retry=False)
        return task.id

    def snapshot(self, watched: list[str]) -> tuple[Any, ...]:
        """Everything a request could change that the public store API shows: counts, totals,
        every listed page of every queue, and the `watched` tasks."""
        queues = self.store.queues()
        pages = {
            (queue, status.value): [
                dump(task) for task in self.store.view(100_000, 0, queue, status)[0]
            ]
            for queue in sorted(queues)
            for status in LISTED
        }
        tasks = {task_id: dump(self.store.get(task_id)) for task_id in watched}
        return self.store.stats(), queues, self.store.totals(), pages, tasks

    # --- requests ---

    def substitute(self, raw: bytes) -> bytes:
        def real(match: re.Match[bytes]) -> bytes:
            token = match.group(1).decode()
            if token == "LEASE":
                return self.lease.encode()
            return self.seeds[token.removeprefix("ID:")].encode()

        return PLACEHOLDER.sub(real, raw)

    def send(self, request: Request) -> Reply:
        """Write the request on a fresh socket in one go (so a server that answers before
        reading the whole body cannot break the write half-way), then read the answer."""
        target = self.substitute(request.target.encode())
        body = None if request.body is None else self.substitute(request.body)
        head = [
            request.method.encode() + b" " + target + b" HTTP/1.1",
            b"Host: 127.0.0.1:%d" % self.port,
            b"Connection: close",
        ]
        head += [name.encode() + b": " + self.substitute(value) for name, value in request.headers]
        payload = b""
        if body is not None and request.chunked:
            head.append(b"Transfer-Encoding: chunked")
            for start in range(0, len(body), 1000):
                piece = body[start : start + 1000]
                payload += b"%x\r\n%s\r\n" % (len(piece), piece)
            payload += b"0\r\n\r\n"
        elif body is not None:
            head.append(b"Content-Length: %d" % len(body))
            payload = body
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        try:
            # A server that answered early may have closed: its answer is still there to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + payload)
            response = http.client.HTTPResponse(sock, method=request.method)
            response.begin()
            content_type = response.getheader("Content-Type") or ""
            # An event stream never ends: its head is the answer (its events: test_events.py).
            data = b"" if content_type == STREAM_TYPE else response.read()
            return Reply(response.status, content_type, response.msg, data)
        finally:
            sock.close()


def dump(task: Any) -> bytes | None:
    return None if task is None else codec.dumps(codec.task_document(task))


@pytest.fixture(scope="module")
def server() -> Iterator[LoopbackServer]:
    policy = Policy(lease_seconds=30, max_attempts=3, retry_backoff=1.0, retention_seconds=3600)
    store = MemoryStore(policy, FrozenClock())
    store.blocking = False
    running = LoopbackServer(store, Settings(max_body_bytes=LIMIT))
    running.start()
    yield running
    running.stop()


# --- the request and the checks ------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    template: str
    headers: tuple[tuple[str, bytes], ...] = ()
    body: bytes | None = None
    chunked: bool = False

    def __repr__(self) -> str:  # what a failing example prints: enough for a curl command
        return (
            f"Request(method={self.method!r}, target={self.target!r}, "
            f"headers={self.headers!r}, body={shorten(self.body)}, chunked={self.chunked})"
        )


def shorten(body: bytes | None) -> str:
    if body is None or len(body) <= 2000:
        return repr(body)
    return f"{body[:200]!r}... ({len(body)} bytes)"


PAGE_ROUTES = {"/", "/docs"}
STREAM_ROUTES = {"/events"}
STREAM_TYPE = "text/event-stream"
STATIC_PREFIXES = ("/dashboard/", "/docs/assets/", "/docs/static/")


CONTROL_CHARACTER = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def unparseable(request: Request) -> bool:
    """Whether a header value holds a control character, which RFC 9110 forbids in a field value
    and Tornado's HTTP/1 parser (`HTTPHeaders.parse`) refuses with a bare
    `HTTP/1.1 400 Bad Request` and no body, before the application is called."""
    return any(CONTROL_CHARACTER.search(value.strip(b" \t")) for _, value in request.headers)


def exchange(server: LoopbackServer, request: Request) -> Reply:
    """Send `request` and check every property; return the reply."""
    server.top_up()
    watched = sorted(server.known)
    before = server.snapshot(watched)
    reply = server.send(request)
    shown = f"{request!r} -> {reply.status} {reply.content_type!r} {reply.body[:300]!r}"

    assert reply.status < 500, shown
    if unparseable(request) and (reply.status, reply.content_type, reply.body) == (400, "", b""):
        # Tornado's HTTP/1 parser refused the message before any handler saw it (see
        # `unparseable`): its bare 400 is the one error that cannot be problem JSON.
        assert server.snapshot(watched) == before, f"a refused request changed the store: {shown}"
        return reply
    media_type = reply.content_type.split(";")[0].strip().lower()
    if reply.status >= 400:
        assert media_type == "application/problem+json", shown
        if request.method != "HEAD":
            check_problem_document(orjson.loads(reply.body), reply.status)
        assert server.snapshot(watched) == before, f"a rejected request changed the store: {shown}"
        return reply
    # Ids a success answered with (a new task, a dequeued one) are watched from now on.
    server.known.update(match.decode() for match in UUID.findall(reply.body))
    static = request.template.startswith(STATIC_PREFIXES)
    if static:
        assert 200 <= reply.status < 400, shown
        return reply
    assert 200 <= reply.status < 300, shown
    if request.template in PAGE_ROUTES:
        assert media_type == "text/html", shown
    elif request.template in STREAM_ROUTES:
        assert media_type == STREAM_TYPE, shown
    elif request.template == "/metrics":
        assert media_type == "text/plain", shown
        assert_not_html(reply.content_type, reply.body)
    elif reply.status == 204:
        assert reply.body == b"", shown
    else:
        assert media_type == "application/json", shown
        assert_not_html(reply.content_type, reply.body)
        if request.method != "HEAD":
            orjson.loads(reply.body)
    return reply


# --- strategies: JSON text ---------------------------------------------------------------------

ODD_NUMBERS = [
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e400",
    "1e-400",
    "1E+2",
    "-0",
    "-0.0",
    "01",
    ".5",
    "5.",
    "+1",
    "0x10",
    "1_000",
    "1e",
    "18446744073709551616",
    "-9223372036854775809",
    "9" * 400,
    "0." + "0" * 400 + "1",
    "2147483648",
    "-2147483648",
    "31536001",
    "1.7976931348623157e308",
]
ODD_STRINGS = [
    r'"\ud800"',
    r'"\udfff\ud800"',
    r'"\u0000"',
    '"\x00"',
    '"\x1f"',
    '"tab\tinside"',
    r'"\x41"',
    r'"\u12"',
    '"unterminated',
    '"\u2028\u2029"',
    '"\ufeff"',
    "'single'",
]
FIELD_NAMES = [
    "payload",
    "queue",
    "priority",
    "delay",
    "max_attempts",
    "idempotency_key",
    "tasks",
    "id",
    "result",
    "lease_id",
    "error",
    "retry",
]


def json_string(text: str) -> str:
    return orjson.dumps(text).decode()


def float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    return repr(value)


json_scalars = st.one_of(
    st.sampled_from(["null", "true", "false"]),
    st.integers().map(str),
    st.integers(min_value=2**63 - 2, max_value=2**200).map(str),
    st.integers(max_value=-(2**63) + 2, min_value=-(2**200)).map(str),
    st.floats().map(float_text),
    st.sampled_from(ODD_NUMBERS),
    st.text(max_size=30).map(json_string),
    st.sampled_from(ODD_STRINGS),
)


def json_containers(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    keys = st.one_of(st.sampled_from(FIELD_NAMES), st.text(max_size=12)).map(json_string)
    arrays = st.lists(children, max_size=5).map(lambda items: "[" + ",".join(items) + "]")
    objects = st.lists(st.tuples(keys, children), max_size=5).map(
        lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
    )
    return st.one_of(arrays, objects)


json_text = st.recursive(json_scalars, json_containers, max_leaves=20)
"""Random JSON text, mostly valid, with the tokens strict JSON refuses mixed in."""


def deep(depth: int, shape: str) -> str:
    if shape == "array":
        return "[" * depth + "]" * depth
    if shape == "object":
        return '{"a":' * depth + "{}" + "}" * depth
    if shape == "unclosed":
        return "[" * depth
    # A valid payload nested `depth` levels inside the body.
    return '{"payload":' + '{"a":' * depth + "{}" + "}" * depth + "}"


deep_text = st.builds(
    deep,
    st.one_of(st.sampled_from([253, 254, 255, 1023, 1024, 1025, 10_000]), st.integers(1, 12_000)),
    st.sampled_from(["array", "object", "unclosed", "payload"]),
)

# Values that fit each field, a little off, or plainly wrong, with placeholders for real ids.
FIELD_VALUES: dict[str, list[str]] = {
    "payload": ["{}", '{"n":1}', "[]", '"x"', "1", "null", "true"],
    "queue": ['"default"', '"seed-pending"', '""', '"a b"', '"' + "q" * 65 + '"', "1", '"é"'],
    "priority": ["0", "-1", "2147483647", "2147483648", "1.5", '"1"', "true", "null"],
    "delay": ["0", "0.5", "-1", "31536000", "31536001", '"5"', "1e308", "false"],
    "max_attempts": ["1", "0", "1000", "1001", "2.0", '"3"', "null", "-1"],
    "idempotency_key": ['"k"', '""', '"' + "k" * 256 + '"', '"a b"', '"é"', "1"],
    "tasks": ["[]", "[{}]", '[{"payload":{}}]', "{}", "null", '"x"'],
    "id": ['"@@ID:processing@@"', '"@@ID:pending@@"', '""', "1", "null", '"nope"'],
    "result": ["null", "{}", "[1,2]", '"done"', "1e400"],
    "lease_id": ['"@@LEASE@@"', '""', '"' + "l" * 65 + '"', "1", "null", '"wrong"'],
    "error": ['"boom"', '""', "1", "null", '"' + "e" * 10_001 + '"'],
    "retry": ["true", "false", "0", '"true"', "null"],
    "group": ['"customer-1"', '""', '"' + "g" * 129 + '"', '"a\\u0000b"', "1", "null"],
    "expires_in": ["60", "1", "0", "31536001", '"60"', "null", "1e308"],
    "after": ["[]", "null", "[1]", '["#0"]', '["no-such-task"]', '"x"', '["a", "a"]'],
}


@st.composite
def task_shaped(draw: st.DrawFn) -> str:
    """An object with the API's field names, each with a fitting, odd or random value."""
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), max_size=6, unique=True))
    if draw(st.booleans()):
        names = ["payload", *(name for name in names if name != "payload")]
    pairs = []
    for name in names:
        value = draw(st.one_of(st.sampled_from(FIELD_VALUES[name]), json_text))
        pairs.append(f"{json_string(name)}:{value}")
    return "{" + ",".join(pairs) + "}"


@st.composite
def fitting(
    draw: st.DrawFn, fields: frozenset[str], item_fields: frozenset[str] = frozenset()
) -> str:
    """An object with some of one route's own fields, mostly with fitting values: most such
    requests succeed, and the rest are rejected for one odd field at a time."""
    names = draw(st.lists(st.sampled_from(sorted(fields)), max_size=len(fields), unique=True))
    if "payload" in fields and "payload" not in names and draw(st.integers(0, 4)) > 0:
        names.append("payload")
    pairs = []
    for name in names:
        if name == "tasks" and item_fields:
            items = draw(st.lists(fitting(item_fields), min_size=1, max_size=4))
            value = "[" + ",".join(items) + "]"
        else:
            choice = draw(st.integers(0, 9))
            if choice < 6:
                value = FIELD_VALUES[name][0]
            elif choice < 9:
                value = draw(st.sampled_from(FIELD_VALUES[name]))
            else:
                value = draw(json_text)
        pairs.append(f"{json_string(name)}:{value}")
    return "{" + ",".join(pairs) + "}"


ROUTE_BODIES: dict[str, st.SearchStrategy[str]] = {
    "/tasks": fitting(NEW_TASK_FIELDS),
    "/tasks/batch": fitting(BATCH_FIELDS, BATCH_ITEM_FIELDS),
    "/tasks/complete/batch": fitting(BATCH_FIELDS, COMPLETE_ITEM_FIELDS),
    "/tasks/{id}/complete": fitting(COMPLETE_FIELDS),
    "/tasks/{id}/fail": fitting(FAIL_FIELDS),
    "/tasks/{id}/heartbeat": fitting(HEARTBEAT_FIELDS),
}
"""Each route's own body shape, for the requests that should get past the JSON checks."""


batch_shaped = st.lists(task_shaped(), min_size=0, max_size=4).map(
    lambda items: '{"tasks":[' + ",".join(items) + "]}"
)

ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "latin-1"]


def encode(text: str, encoding: str) -> bytes:
    if encoding == "utf-8":
        # Lone surrogates become invalid UTF-8 on the wire.
        return text.encode("utf-8", "surrogatepass")
    return text.encode(encoding, "replace")


text_bodies = st.builds(
    encode,
    st.one_of(json_text, task_shaped(), batch_shaped),
    st.sampled_from(ENCODINGS),
)

raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b" \r\n\t",
            b"\x00",
            b'{"payload":{}}\x00',
            b'\xef\xbb\xbf{"payload":{}}',
            b'{"payload":{"s":"\xff\xfe"}}',
            b'{"payload":{"s":"\xed\xa0\x80"}}',
            b'{"payload":{"s":"\xc0\xaf"}}',
            b'{"payload":{}}{"payload":{}}',
            b'{"payload":{}} trailing',
            b"[" * 70_000,
        ]
    ),
    st.tuples(task_shaped(), st.binary(min_size=1, max_size=20)).map(
        lambda parts: parts[0].encode() + parts[1]
    ),
)

bodies = st.one_of(
    text_bodies,
    raw_bodies,
    deep_text.map(str.encode),
)


# --- strategies: routes, paths and query strings ---------------------------------------------


def route_methods(handler: type) -> tuple[str, ...]:
    if issubclass(handler, ApiHandler):
        return handler.allowed_methods()
    return ("GET", "HEAD")


ROUTE_TABLE: list[tuple[str, tuple[str, ...]]] = [
    (
        route_template(entry[0]),
        route_methods(entry[1]),
    )
    for entry in ROUTES
]
BODY_ROUTES = [
    (template, methods) for template, methods in ROUTE_TABLE if {"POST", "PUT"} & set(methods)
]
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND", "get", "X-FUZZ"]

real_ids = st.sampled_from([f"@@ID:{status}@@" for status in SEED_STATUSES])
ids = st.one_of(
    real_ids,
    real_ids,
    real_ids,
    st.uuids().map(str),
    st.text(min_size=1, max_size=40).map(
        lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="")
    ),
    st.binary(min_size=1, max_size=20).map(lambda raw: quote(raw, safe="")),
    st.sampled_from(
        ["%", "%zz", "%ff%fe", "%00", "..", "%2e%2e", "dequeue", "batch", "a;b", "x" * 300]
    ),
)
ASSET_FILES = {
    "/dashboard/{path}": ["dashboard.js", "dashboard.css", "favicon.svg", "index.html"],
    "/docs/assets/{path}": ["swagger-ui.css", "index.css", "favicon-32x32.png"],
    "/docs/static/{path}": ["swagger-init.js"],
}
asset_paths = st.one_of(
    st.sampled_from(
        ["", "dashboard.js", "dashboard.css", "index.html", "swagger-ui.css", "swagger-init.js"]
    ),
    st.sampled_from(["../app.py", "%2e%2e/app.py", "..%2f..%2fetc/passwd", "a%00b", "%", "%ff"]),
    st.text(max_size=30).map(lambda text: quote(text.encode("utf-8", "surrogatepass"), safe="/")),
)


@st.composite
def paths(draw: st.DrawFn, template: str) -> str:
    path = template
    if "{id}" in path:
        path = path.replace("{id}", draw(ids))
    if "{name}" in path:
        path = path.replace("{name}", draw(st.one_of(st.sampled_from(["default", "emails"]), ids)))
    if "{path}" in path:
        files = st.sampled_from(ASSET_FILES[template])
        path = path.replace("{path}", draw(st.one_of(files, files, asset_paths)))
    return path


QUERY_NAMES = ["queue", "wait", "lease", "lease_id", "count", "limit", "offset", "status"]
number_forms = st.one_of(
    st.integers().map(str),
    st.integers(min_value=2**60).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        ["", "0", "-0", "1e3", "1E-5", "1e999", "-1e999", "2.5", "1_0", "+5", " 5", "5 ", "0x10"]
    ),
    st.sampled_from(
        ["nan", "inf", "-inf", "Infinity", "١٢", "５", "1.", ".5", "1e", "e5", "10000"]
    ),
    st.sampled_from(["43200", "43201", "0.999", "1000", "1001", "100000", "100001", "9" * 19]),
)
query_values: dict[str, st.SearchStrategy[str]] = {
    "queue": st.one_of(
        st.sampled_from(["default", "seed-pending", "seed-processing", "", "a b", "q" * 65]),
        st.text(max_size=20),
    ),
    # A `wait` that is valid and long would park the request: the valid ones are kept short.
    "wait": st.one_of(
        st.sampled_from(["0", "0.0", "0.001", "0.01", "30.0001", "31", "-1", "1e9", "nan"]),
        st.text(max_size=8).filter(lambda text: not re.fullmatch(r"[\d.eE+-]+", text)),
    ),
    "lease_id": st.one_of(st.just("@@LEASE@@"), st.text(max_size=70)),
    "status": st.one_of(
        st.sampled_from(["pending", "processing", "failed", "completed", "scheduled", "PENDING"]),
        st.text(max_size=12),
    ),
}


def query_value(name: str) -> st.SearchStrategy[str]:
    return query_values.get(name, st.one_of(number_forms, st.text(max_size=20)))


def encode_query(text: str, how: str) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if how == "plus":
        return quote(raw, safe="").replace("%20", "+")
    if how == "latin-1":
        return quote(text.encode("latin-1", "replace"), safe="")
    return quote(raw, safe="")


@st.composite
def query_strings(draw: st.DrawFn) -> str:
    pieces = []
    for _ in range(draw(st.integers(0, 5))):
        name = draw(
            st.one_of(
                st.sampled_from(QUERY_NAMES),
                st.text(min_size=0, max_size=12).filter(lambda text: text != "wait"),
            )
        )
        values = draw(st.lists(query_value(name), min_size=1, max_size=3))  # repeats too
        how = draw(st.sampled_from(["utf-8", "plus", "latin-1"]))
        for value in values:
            if draw(st.integers(0, 9)) == 0:
                pieces.append(encode_query(name, how))  # a name without '='
            else:
                pieces.append(f"{encode_query(name, how)}={encode_query(value, how)}")
    pieces.extend(
        draw(st.lists(st.sampled_from(["", "=", "==", "&", "%", "%zz", "%ff=1", ";"]), max_size=2))
    )
    if not pieces:
        return ""
    return "?" + "&".join(pieces)


# --- strategies: headers ------------------------------------------------------------------------

header_bytes = st.binary(max_size=300).map(lambda raw: raw.replace(b"\r", b"").replace(b"\n", b""))
visible_text = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=300
)
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "application/json; charset=latin-1",
    "application/json;charset=utf-16",
    "application/json; charset=",
    "APPLICATION/JSON",
    " application/json ",
    "application/problem+json",
    "application/vnd.api+json",
    "+json",
    "application/json-seq",
    "application/jsonx",
    "text/json",
    "text/plain",
    "text/html",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=x",
    "multipart/form-data; boundary=",
    "application/octet-stream",
    "",
    ";",
    "*/*",
]
CONTENT_ENCODINGS = [
    "identity",
    "IDENTITY",
    " identity ",
    "",
    "gzip",
    "deflate",
    "br",
    "gzip, identity",
    "x",
]


@st.composite
def header_sets(draw: st.DrawFn) -> tuple[tuple[str, bytes], ...]:
    headers: list[tuple[str, bytes]] = []
    content_type = draw(
        st.one_of(
            st.none(),
            st.sampled_from(CONTENT_TYPES).map(str.encode),
            header_bytes,
        )
    )
    if content_type is not None:
        headers.append(("Content-Type", content_type))
    if draw(st.booleans()):
        encoding = draw(st.one_of(st.sampled_from(CONTENT_ENCODINGS).map(str.encode), header_bytes))
        headers.append(("Content-Encoding", encoding))
    for name in ("Idempotency-Key", "X-Request-ID"):
        values = draw(
            st.lists(
                st.one_of(visible_text.map(str.encode), header_bytes, st.just(b"k" * 256)),
                max_size=2,
            )
        )
        headers.extend((name, value) for value in values)
    if draw(st.integers(0, 4)) == 0:
        headers.append(
            ("Accept", draw(st.sampled_from([b"text/html", b"*/*", b"application/xml"])))
        )
    return tuple(headers)


# --- the tests --------------------------------------------------------------------------------

JSON_TYPE = (("Content-Type", b"application/json"),)


@st.composite
def body_requests(draw: st.DrawFn) -> Request:
    template, methods = draw(st.sampled_from(BODY_ROUTES))
    method = draw(st.sampled_from(methods))
    if template in ROUTE_BODIES and draw(st.booleans()):
        body = draw(ROUTE_BODIES[template]).encode()
    else:
        body = draw(bodies)
    headers = draw(st.sampled_from([JSON_TYPE, (), (("Content-Type", b"application/vnd.x+json"),)]))
    chunked = draw(st.integers(0, 3)) == 0
    return Request(method, draw(paths(template)), template, headers, body, chunked)


def deterministic(template: str, method: str, body: bytes) -> Request:
    return Request(method, template, template, JSON_TYPE, body, False)


@settings(FUZZ, max_examples=350)
@given(request=body_requests())
@example(request=deterministic("/tasks", "POST", b"[" * 10_000 + b"]" * 10_000))
@example(request=deterministic("/tasks", "POST", b'{"payload":{"x":NaN}}'))
@example(request=deterministic("/tasks", "POST", b'{"payload":{"x":1e400}}'))
@example(request=deterministic("/tasks", "POST", b'{"payload":{},"priority":' + b"9" * 30 + b"}"))
@example(request=deterministic("/tasks", "POST", '{"payload":{}}'.encode("utf-16")))
@example(request=deterministic("/tasks/batch", "POST", b'{"tasks":[{"payload":{}},{"payload":1}]}'))
@example(request=deterministic("/tasks/complete/batch", "POST", b'{"tasks":[{"id":1}]}'))
def test_random_bodies_never_fail_the_server_and_a_rejected_one_changes_nothing(
    server: LoopbackServer, request: Request
) -> None:
    exchange(server, request)


@st.composite
def query_requests(draw: st.DrawFn) -> Request:
    template, methods = draw(st.sampled_from(ROUTE_TABLE))
    method = draw(
        st.one_of(st.sampled_from(methods), st.sampled_from(methods), st.sampled_from(METHODS))
    )
    body = None
    if method in ("POST", "PUT", "PATCH"):
        body = draw(st.sampled_from([b"", b"{}", b'{"payload":{}}', b'{"lease_id":"@@LEASE@@"}']))
    target = draw(paths(template)) + draw(query_strings())
    return Request(method, target, template, JSON_TYPE if body else (), body)


@settings(FUZZ, max_examples=300)
@given(request=query_requests())
def test_random_query_strings_never_fail_the_server_and_a_rejected_one_changes_nothing(
    server: LoopbackServer, request: Request
) -> None:
    exchange(server, request)


@st.composite
def header_requests(draw: st.DrawFn) -> Request:
    template, methods = draw(st.sampled_from(ROUTE_TABLE))
    method = draw(
        st.one_of(st.sampled_from(methods), st.sampled_from(methods), st.sampled_from(METHODS))
    )
    body = draw(
        st.one_of(
            st.none(),
            st.sampled_from([b"", b'{"payload":{}}', b"{}", b"\x00\xff"]),
            text_bodies,
        )
    )
    return Request(
        method, draw(paths(template)), template, draw(header_sets()), body, draw(st.booleans())
    )


@settings(FUZZ, max_examples=300)
@given(request=header_requests())
def test_random_headers_never_fail_the_server_and_a_rejected_request_changes_nothing(
    server: LoopbackServer, request: Request
) -> None:
    exchange(server, request)


def template_of(path: str) -> str:
    """The route template Tornado would pick for `path`, or "(unknown)"."""
    for entry, (template, _) in zip(ROUTES, ROUTE_TABLE, strict=True):
        if re.fullmatch(entry[0], path):
            return template
    return "(unknown)"


UNKNOWN_PATHS = [
    "/tasks/",
    "//tasks",
    "/tasks/a/b/c",
    "/queue",
    "/queues/",
    "/%2e%2e/",
    "/tasks%2Fdequeue",
    "/x" * 200,
]


@st.composite
def anything(draw: st.DrawFn) -> Request:
    """Every part random at once, including unknown paths and methods no route has."""
    if draw(st.integers(0, 5)) == 0:
        template = draw(
            st.one_of(
                st.sampled_from(UNKNOWN_PATHS),
                st.text(max_size=30).map(
                    lambda text: "/" + quote(text.encode("utf-8", "surrogatepass"), safe="/")
                ),
            )
        )
        path = template
        template = template_of(path)
    else:
        template, _ = draw(st.sampled_from(ROUTE_TABLE))
        path = draw(paths(template))
    method = draw(st.sampled_from(METHODS))
    body = draw(st.one_of(st.none(), bodies))
    target = path + draw(query_strings())
    return Request(method, target, template, draw(header_sets()), body, draw(st.booleans()))


@settings(FUZZ, max_examples=250)
@given(request=anything())
def test_random_requests_never_fail_the_server_and_a_rejected_one_changes_nothing(
    server: LoopbackServer, request: Request
) -> None:
    exchange(server, request)
