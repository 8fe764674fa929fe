"""ApiHandler: body limits, JSON in and out, and the one place errors become HTTP responses."""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from types import MappingProxyType
from typing import Any, ClassVar, TypeVar

from tornado.httputil import HTTPServerRequest
from tornado.util import re_unescape
from tornado.web import HTTPError, RequestHandler, stream_request_body

from tornado_queue import codec, ids
from tornado_queue.config import Settings
from tornado_queue.errors import (
    IdempotencyConflict,
    InvalidTransition,
    OutcomeUnknown,
    QueueError,
    QueueFull,
    ScheduleNotFound,
    StoreFailure,
    StoreUnavailable,
    TaskNotFound,
    TooManySchedules,
    ValidationError,
    printable,
)
from tornado_queue.limits import MAX_WORKER_ID_CHARS
from tornado_queue.models import Task
from tornado_queue.server.auth import ADMIN, REALM, Principal, Role, bearer_token, describe
from tornado_queue.server.services import Services
from tornado_queue.server.store_calls import call_store
from tornado_queue.storage import Store
from tornado_queue.validation import EMPTY_BODY

log = logging.getLogger("tornado_queue.http")

REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
WORKER_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_WORKER_ID_CHARS}}}")

T = TypeVar("T")

ERROR_STATUS: dict[type[QueueError], int] = {
    ValidationError: 400,
    TaskNotFound: 404,
    ScheduleNotFound: 404,
    InvalidTransition: 409,
    TooManySchedules: 409,
    IdempotencyConflict: 422,
    QueueFull: 503,
}

JSON_MEDIA_TYPES = ("application/json",)


def status_for(error: QueueError) -> int:
    """The status of a domain error: the entry of its nearest class in `ERROR_STATUS`."""
    for cls in type(error).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400


PROBLEM_TYPES = {
    "store-unavailable": "urn:tornado-queue:problem:store-unavailable",
    "outcome-unknown": "urn:tornado-queue:problem:outcome-unknown",
}
"""The problem types a client may act on; every other problem is `about:blank` (its status
says it all). A 503 of type store-unavailable changed nothing; one of type outcome-unknown
may have been applied (see docs/reliability.md)."""


class Problem(HTTPError):
    """An HTTP error answered as RFC 9457 problem details with `detail` as its sentence."""

    def __init__(
        self,
        status: int,
        detail: str,
        headers: dict[str, str] | None = None,
        kind: str = "about:blank",
    ) -> None:
        # "%s" keeps a '%' in client text from breaking Tornado's log formatting.
        super().__init__(status, "%s", detail)
        self.detail = detail
        self.headers = headers or {}
        self.kind = kind


STORE_RETRY_AFTER_SECONDS = 1
REAPPLY_SECONDS = 5.0
"""How long a request whose store failed mid-operation keeps re-applying it (when that is
safe) before it answers "outcome unknown"."""
REAPPLY_PAUSES = (0.05, 0.1, 0.2, 0.4, 0.5)
CORS_EXPOSED = "X-Request-ID, X-Total-Count, Location, Retry-After"
CORS_ALLOWED_HEADERS = (
    "Authorization, Content-Type, Idempotency-Key, X-Request-ID, X-Worker-Id, Last-Event-ID"
)
FULL_RETRY_AFTER_SECONDS = 1
"""A full queue drains as fast as its consumers work: ask producers to come back soon."""
SERVER_NAME = "tornado_queue"
"""The `Server` header: no version, so the answers tell a scanner nothing to look up."""
HSTS = "max-age=31536000"
"""Over HTTPS: browsers keep to HTTPS for this server for a year."""


def is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")


@dataclass(frozen=True)
class NumberFormat:
    """How a numeric query argument must be written, named in errors, and read."""

    pattern: re.Pattern[str]
    noun: str
    kind: type[int] | type[float]


# Plain ASCII digits only: int() and float() would also take "1_0", "+5", " 5" or Arabic digits.
WHOLE_NUMBER = NumberFormat(re.compile(r"[0-9]{1,18}"), "a whole number", int)
# Decimals and exponents as Python's repr() and JavaScript's String() write floats ("2.5",
# "522.5732521619273", "1e-05"); the range check after parsing refuses what is out of bounds.
DECIMAL = NumberFormat(
    re.compile(r"[0-9]{1,18}(\.[0-9]{1,17})?([eE][-+]?[0-9]{1,3})?"),
    "a number like 30 or 2.5",
    float,
)


def route_template(pattern: str) -> str:
    """`/tasks/{id}` for `/tasks/([^/]+)`, `/queues/{name}/retry` for
    `/queues/(?P<name>[^/]+)/retry`: the route as the docs and the metrics name it."""
    template = re.sub(r"\(\?P<(\w+)>\[\^/\]\+\)", r"{\1}", pattern)
    return re_unescape(template.replace("([^/]+)", "{id}").replace("(.*)", "{path}"))


def set_transport_headers(handler: RequestHandler) -> None:
    """Headers every answer carries, API, error, page or file alike (Tornado's `clear()`,
    which every error runs, would otherwise put back `Server: TornadoServer/<version>`)."""
    handler.set_header("Server", SERVER_NAME)
    if handler.request.protocol == "https":
        handler.set_header("Strict-Transport-Security", HSTS)


def request_id_of(request: HTTPServerRequest) -> str:
    """The request's `X-Request-ID` when it is sensible (1-128 visible ASCII characters), else
    a fresh one."""
    given = request.headers.get_list("X-Request-ID")
    # Two headers are as unusable as a malformed one (joined they would read "one,two").
    if len(given) == 1 and REQUEST_ID.fullmatch(given[0]):
        return given[0]
    return ids.request_id()


@stream_request_body
class ApiHandler(RequestHandler):
    """Base of every API handler.

    The body is streamed so that an oversized request is refused with a JSON 413 as soon as its
    headers arrive (or as soon as a chunked body passes the limit), instead of being buffered or
    having its connection dropped by Tornado's own `max_body_size`.
    """

    store: Store
    config: Settings
    _allowed: ClassVar[tuple[str, ...]]

    roles: ClassVar[frozenset[Role] | None] = ADMIN
    """The roles whose tokens may call this route when auth is on; None: open to anyone.
    Admin only unless a handler says otherwise, so a new route is never open by mistake."""
    method_roles: ClassVar[Mapping[str, frozenset[Role]]] = MappingProxyType({})
    """Overrides of `roles` for single methods (DELETE /tasks/{id} is admin only)."""
    principal: Principal | None = None
    """Who made this request (None when auth is off or the route is open)."""

    def initialize(self, services: Services) -> None:
        self.services = services
        # The parts used on every request, one attribute away.
        self.store = services.store
        self.config = services.config
        self.waiters = services.waiters
        self._tracker = services.tracker
        self.client_gone = False
        self._tracked = False
        self._chunks: list[bytes] = []
        self._received = 0
        if self.config.cors_origin:
            self.set_default_headers()  # now with the config: the CORS headers

    route = "unknown"
    """The route template this handler serves (set by `app.route`)."""

    def set_default_headers(self) -> None:
        # Runs again when an error clears the headers, so the id is on every answer.
        set_transport_headers(self)
        self.set_header("Content-Type", "application/json")
        self.set_header("X-Request-ID", self.request_id)
        # The first call comes from Tornado's __init__, before `initialize` gives the config;
        # `initialize` calls this again.
        config: Settings | None = getattr(self, "config", None)
        if config is not None and config.cors_origin:
            self.set_header("Vary", "Origin")
            if self.request.headers.get("Origin") == config.cors_origin:
                self.set_header("Access-Control-Allow-Origin", config.cors_origin)
                self.set_header("Access-Control-Expose-Headers", CORS_EXPOSED)

    def _answer_preflight(self) -> bool:
        """A CORS preflight (OPTIONS) from the allowed origin for a method this route answers:
        204 with what the browser may send; False for anything else (then a plain 405)."""
        origin = self.config.cors_origin
        wanted = self.request.headers.get("Access-Control-Request-Method")
        if not origin or self.request.headers.get("Origin") != origin or wanted is None:
            return False
        if wanted not in self.allowed_methods():
            return False
        self.set_status(204)
        self.clear_header("Content-Type")
        self.set_header("Access-Control-Allow-Methods", ", ".join(self.allowed_methods()))
        self.set_header("Access-Control-Allow-Headers", CORS_ALLOWED_HEADERS)
        self.set_header("Access-Control-Max-Age", "600")
        self.finish()
        return True

    def _limit_rate(self) -> None:
        """429 with Retry-After past --rate-limit: per token, or per address with auth off.
        Open routes (health, docs) are never limited."""
        limiter = self.services.rate_limiter
        if limiter is None or self.roles_for(self.request.method or "GET") is None:
            return
        key = self.principal.token_id if self.principal else f"ip:{self.request.remote_ip}"
        wait = limiter.take(key)
        if wait:
            seconds = max(1, math.ceil(wait))
            raise Problem(
                429,
                f"over the rate limit of {limiter.rate:g} requests per second; "
                f"try again in {seconds} s",
                {"Retry-After": str(seconds)},
            )

    @property
    def request_id(self) -> str:
        """The client's `X-Request-ID` when it is sensible (1-128 visible ASCII characters),
        else a fresh one: echoed in the answer and written in the access line."""
        if not hasattr(self, "_request_id"):
            self._request_id = request_id_of(self.request)
        return self._request_id

    def prepare(self) -> None:
        self._tracker.active += 1
        self._tracked = True
        if not self._stream_request_body:  # buffered: Tornado has read the whole body
            self._body_arrived()
        if self.request.method == "OPTIONS" and self._answer_preflight():
            return
        if self.request.method not in self.allowed_methods():
            # Before any body check: a wrong method is a 405 whatever the body looks like.
            raise HTTPError(405)
        # Before the body is looked at or the store touched: a request without the right
        # token learns nothing but that it needs one.
        self.authorize()
        self._limit_rate()
        limit = self.config.max_body_bytes
        length = self._content_length()
        if length > limit:
            raise Problem(413, f"request body is {length} bytes; the limit is {limit} bytes")
        has_body = length > 0 or "Transfer-Encoding" in self.request.headers
        if has_body:
            self._check_body_headers()

    @classmethod
    def roles_for(cls, method: str) -> frozenset[Role] | None:
        """The roles that may call this route with `method` (HEAD as GET); None: open."""
        method = "GET" if method == "HEAD" else method
        return cls.method_roles.get(method, cls.roles)

    def authorize(self) -> None:
        """The one access check: 401 without a known bearer token, 403 when its role may not
        call this route. Nothing here ever echoes the token."""
        tokens = self.services.tokens
        allowed = self.roles_for(self.request.method or "GET")
        if allowed is None or not tokens.enabled:
            return
        token = bearer_token(self.request.headers.get("Authorization"))
        if token is None:
            raise Problem(
                401,
                "this route needs a bearer token: send 'Authorization: Bearer TOKEN'",
                {"WWW-Authenticate": REALM},
            )
        principal = tokens.identify(token)
        if principal is None:
            raise Problem(
                401,
                "the bearer token is not one this server knows",
                {"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if principal.role not in allowed:
            raise Problem(
                403,
                f"a {principal.role} token may not {self.request.method} {self.route}; "
                f"allowed roles: {describe(allowed)}",
                {"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'},
            )
        self.principal = principal

    def _check_body_headers(self) -> None:
        content_type = self.request.headers.get("Content-Type")
        if content_type and not is_json(content_type):
            raise Problem(415, f"Content-Type must be application/json, got '{content_type[:100]}'")
        encoding = self.request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding != "identity":
            raise Problem(
                415, f"Content-Encoding '{encoding[:40]}' is not supported; send plain JSON"
            )

    def _content_length(self) -> int:
        raw = self.request.headers.get("Content-Length", "0")
        # Plain digits only, as HTTP says: int() would also take "-5", "+14" and "1_4".
        if not (raw.isascii() and raw.isdigit()):
            raise Problem(400, f"Content-Length must be a whole number, got '{raw[:40]}'")
        return int(raw)

    def data_received(self, chunk: bytes) -> None:
        if self._finished:  # already answered (413/415); the rest of the body is discarded
            return
        self._received += len(chunk)
        if self._received <= self.config.max_body_bytes:
            self._chunks.append(chunk)
            return
        # A chunked body just passed the limit: answer now, before Tornado's own hard limit
        # would drop the connection without a word.
        self._chunks.clear()
        problem = self._too_large()
        self.send_error(413, exc_info=(Problem, problem, None))

    def _too_large(self) -> Problem:
        limit = self.config.max_body_bytes
        return Problem(413, f"request body is over the limit of {limit} bytes")

    def on_finish(self) -> None:
        self._untrack()
        self._body_arrived()
        self.waiters.rearm()

    def _body_arrived(self) -> None:
        """The body is in: its connection is no longer watched for a stalled body."""
        self.services.body_deadlines.body_done(self.request)

    def on_connection_close(self) -> None:
        super().on_connection_close()
        self.client_gone = True
        self.waiters.leave(self)
        self._untrack()
        self._body_arrived()

    def connection_lost(self) -> bool:
        """Whether the client has gone. Tornado calls `on_connection_close` only for a close
        that comes after the request was read: a client that sent its request and closed at
        once (a consumer interrupting its own long-poll) leaves a stream that is already
        closed, and no callback, so that is checked too."""
        if self.client_gone:
            return True
        stream = getattr(self.request.connection, "stream", None)
        self.client_gone = stream is not None and stream.closed()
        return self.client_gone

    def _untrack(self) -> None:
        if self._tracked:
            self._tracked = False
            self._tracker.active -= 1

    def body_bytes(self) -> bytes:
        """The whole request body; 413 if it went over the limit."""
        if self._received > self.config.max_body_bytes:
            raise self._too_large()
        self._body_arrived()  # a streamed body is whole once the method reads it
        # Streamed, the body came in chunks; buffered (see app.QueueApplication), Tornado
        # kept it whole.
        return b"".join(self._chunks) if self._chunks else self.request.body

    def json_body(self) -> Any:
        """The body parsed as strict JSON, or `EMPTY_BODY` when there is no body."""
        body = self.body_bytes()
        if not body.strip():
            return EMPTY_BODY
        return codec.parse_json(body)

    def query_argument(self, name: str) -> str | None:
        """A query argument given at most once; 400 if it is repeated. Read as sent: Tornado's
        own accessors turn control characters into spaces, which errors would then misquote."""
        values = self.request.query_arguments.get(name, [])
        if len(values) > 1:
            raise Problem(400, f"query parameter '{name}' is given {len(values)} times")
        return self.decode_argument(values[0], name) if values else None

    def single_header(self, name: str) -> str | None:
        """A request header given at most once (None when absent); 400 if it is repeated."""
        given = self.request.headers.get_list(name)
        if len(given) > 1:
            raise Problem(400, f"the {name} header is given {len(given)} times")
        return given[0] if given else None

    def idempotency_key(self) -> str | None:
        """The `Idempotency-Key` header, given at most once; 400 if it is repeated."""
        return self.single_header("Idempotency-Key")

    def worker_id(self) -> str | None:
        """The `X-Worker-Id` header, how a consumer names itself: 1-128 visible ASCII
        characters, given at most once; 400 otherwise (before the store is touched)."""
        worker = self.single_header("X-Worker-Id")
        if worker is not None and not WORKER_ID.fullmatch(worker):
            raise Problem(
                400,
                f"the X-Worker-Id header must be 1 to {MAX_WORKER_ID_CHARS} visible ASCII "
                f"characters (no spaces), got '{printable(worker[:40])}'",
            )
        return worker

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        """A query argument as a whole number within [low, high]; 400 otherwise."""
        value = self._numeric_argument(name, WHOLE_NUMBER, low, high)
        return default if value is None else int(value)

    def number_argument(
        self, name: str, default: float | None, low: float, high: float
    ) -> float | None:
        """A query argument as a decimal number within [low, high]; 400 otherwise."""
        value = self._numeric_argument(name, DECIMAL, low, high)
        return default if value is None else float(value)

    def _numeric_argument(
        self, name: str, number: NumberFormat, low: float, high: float
    ) -> float | None:
        raw = self.query_argument(name)
        if raw is None:
            return None
        if not number.pattern.fullmatch(raw):
            shown = printable(raw[:40])
            raise Problem(400, f"query parameter '{name}' must be {number.noun}, got '{shown}'")
        value = number.kind(raw)
        if not low <= value <= high:
            raise Problem(
                400, f"query parameter '{name}' must be from {low:g} to {high:g}, got {raw}"
            )
        return value

    async def call_store(
        self, method: Callable[..., T], *args: Any, reapply: str | None = None
    ) -> T:
        """Run a store method inline, or in an executor for a blocking store (see storage.base).

        Every route reaches the store through here, so this is also where a request whose body
        was refused mid-stream (already answered 413) stops before it can change anything.

        When the store fails, the answer is honest: 503 store-unavailable when nothing was
        applied; when the failure came mid-operation, a call that is safe to apply twice
        (`reapply` says why, e.g. "fenced by its lease id") is applied again until the store
        answers (at most `REAPPLY_SECONDS`), so its answer is the true one; any other call,
        or one still failing then, is 503 outcome-unknown. The outage log says it once.
        """
        if self._received > self.config.max_body_bytes:
            raise self._too_large()
        try:
            return await call_store(self.store, method, *args)
        except StoreUnavailable as failure:
            raise store_unavailable(failure) from None
        except OutcomeUnknown as failure:
            if reapply is None:
                raise outcome_unknown(failure, method) from None
            last: StoreFailure = failure
        return await self._reapply(method, args, last)

    async def _reapply(
        self, method: Callable[..., T], args: tuple[Any, ...], last: StoreFailure
    ) -> T:
        """Apply again a call whose first application may or may not have happened."""
        deadline = asyncio.get_running_loop().time() + REAPPLY_SECONDS
        for attempt in range(10_000):
            pause = REAPPLY_PAUSES[min(attempt, len(REAPPLY_PAUSES) - 1)]
            if asyncio.get_running_loop().time() + pause > deadline or self.connection_lost():
                break
            await asyncio.sleep(pause)
            try:
                return await call_store(self.store, method, *args)
            except StoreFailure as failure:
                last = failure
        raise outcome_unknown(last, method) from None

    def write_json(self, document: Any, status: int = 200) -> None:
        """Finish with a JSON document (lists included: `RequestHandler.write` refuses them)."""
        self.set_status(status)
        self.finish(codec.dumps(document))

    def write_task(self, task: Task, status: int = 200) -> None:
        self.write_json(codec.task_document(task), status)

    def compute_etag(self) -> None:
        # Queue state changes constantly; hashing every body for an ETag is wasted work.
        return None

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # Expected client errors are already in the access log with their status.
        if isinstance(value, QueueError | Problem):
            log.debug("%s %s: %s", self.request.method, self.request.path, value)
            return
        super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """Every error leaves here as `application/problem+json`; never HTML or a traceback."""
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        kind = "about:blank"
        if isinstance(error, QueueError):
            status_code = status_for(error)
            self.set_status(status_code)
            detail = str(error)
            if isinstance(error, QueueFull):
                self.set_header("Retry-After", str(FULL_RETRY_AFTER_SECONDS))
        elif isinstance(error, Problem):
            detail = error.detail
            kind = error.kind
            for name, value in error.headers.items():
                self.set_header(name, value)
        elif status_code == 405 and not self.allowed_methods():
            # Tornado checks non-standard methods (PROPFIND…) before routing reaches a 404.
            status_code = 404
            self.set_status(status_code)
            detail = f"no route for {self.request.method[:20]} {self.request.path[:200]}"
        elif status_code == 405:
            allowed = ", ".join(self.allowed_methods())
            self.set_header("Allow", allowed)
            detail = f"{self.request.method} is not allowed here; allowed: {allowed}"
        elif status_code >= 500:
            detail = "the server failed to handle this request; it has been logged"
        elif isinstance(error, HTTPError) and error.log_message:
            detail = error.log_message % error.args
        else:
            detail = HTTPStatus(status_code).phrase
        self.set_header("Content-Type", "application/problem+json")
        phrase = HTTPStatus(status_code).phrase
        problem = {"type": kind, "title": phrase, "status": status_code, "detail": detail}
        self.finish(codec.dumps(problem))

    @classmethod
    def allowed_methods(cls) -> tuple[str, ...]:
        """The methods this handler implements, for the `Allow` header of a 405."""
        if "_allowed" not in cls.__dict__:
            cls._allowed = tuple(
                method
                for method in cls.SUPPORTED_METHODS
                if getattr(cls, method.lower()) is not getattr(RequestHandler, method.lower())
            )
        return cls._allowed


def store_unavailable(failure: StoreFailure) -> Problem:
    """503 for a store that failed before applying anything: a retry is always safe."""
    return Problem(
        503,
        f"the store is not answering ({failure}); nothing was changed: try again shortly",
        {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        PROBLEM_TYPES["store-unavailable"],
    )


def outcome_unknown(failure: StoreFailure, method: Callable[..., Any]) -> Problem:
    """503 for a store that failed while applying the call: it may have been applied."""
    name = getattr(getattr(method, "func", method), "__name__", "")  # a partial's too
    advice = OUTCOME_ADVICE.get(name, "check the state (GET) before trying again")
    return Problem(
        503,
        f"the store stopped answering during the operation ({failure}); it may have been "
        f"applied or not: {advice}",
        {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        PROBLEM_TYPES["outcome-unknown"],
    )


OUTCOME_ADVICE = {
    "enqueue_many": "send it again with an Idempotency-Key (per item in a batch) so that a "
    "repeat cannot create a second task",
    "dequeue_many": "a task leased by it returns to the queue when its lease expires; dequeue "
    "again",
    "complete": "send it again with the lease_id: a repeat answers as the first did",
    "complete_many": "send it again with each item's lease_id: a repeat answers as the first did",
    "fail": "send it again with the lease_id: a repeat answers as the first did",
    "heartbeat": "send it again with the lease_id",
    "progress": "send it again with the lease_id",
    "retry_failed": "send it again: a repeat retries only what is still failed",
    "delete_schedule": "GET the schedule: 404 means it is gone",
}
"""What a client should do when a call's outcome is unknown, by store method."""


class NotFoundHandler(ApiHandler):
    """Answers every request for an unknown route with a JSON 404."""

    route = "(no route)"

    def prepare(self) -> None:
        self._tracker.active += 1
        self._tracked = True
        raise Problem(404, f"no route for {self.request.method[:20]} {self.request.path[:200]}")
