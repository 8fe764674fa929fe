"""ApiHandler: body limits, JSON in and out, and the one place errors become HTTP responses."""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

from tornado.ioloop import IOLoop
from tornado.web import HTTPError, RequestHandler, stream_request_body

from .. import codec
from ..config import Settings
from ..errors import InvalidTransition, QueueError, TaskNotFound, ValidationError
from ..models import Task
from ..storage import Store

log = logging.getLogger("tornado_queue.http")

T = TypeVar("T")

ERROR_STATUS: dict[type[QueueError], int] = {
    ValidationError: 400,
    TaskNotFound: 404,
    InvalidTransition: 409,
}

JSON_MEDIA_TYPES = ("application/json",)


def status_for(error: QueueError) -> int:
    """The status of a domain error: the entry of its nearest class in `ERROR_STATUS`."""
    for cls in type(error).__mro__:
        if cls in ERROR_STATUS:
            return ERROR_STATUS[cls]
    return 400


class Problem(HTTPError):
    """An HTTP error answered as RFC 9457 problem details with `detail` as its sentence."""

    def __init__(self, status: int, detail: str) -> None:
        # "%s" keeps a '%' in client text from breaking Tornado's log formatting.
        super().__init__(status, "%s", detail)
        self.detail = detail


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_MEDIA_TYPES or media_type.endswith("+json")


@stream_request_body
class ApiHandler(RequestHandler):
    """Base of every API handler.

    The body is streamed so that an oversized request is refused with a JSON 413 as soon as its
    headers arrive (or as soon as a chunked body passes the limit), instead of being buffered or
    having its connection dropped by Tornado's own `max_body_size`.
    """

    store: Store
    config: Settings

    def initialize(self, store: Store, config: Settings) -> None:
        self.store = store
        self.config = config
        self._chunks: list[bytes] = []
        self._received = 0

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json")

    def prepare(self) -> None:
        limit = self.config.max_body_bytes
        length = self._content_length()
        if length > limit:
            raise Problem(413, f"request body is {length} bytes; the limit is {limit} bytes")
        has_body = length > 0 or "Transfer-Encoding" in self.request.headers
        content_type = self.request.headers.get("Content-Type")
        if has_body and content_type and not _is_json(content_type):
            raise Problem(415, f"Content-Type must be application/json, got '{content_type}'")

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
        else:
            self._chunks.clear()

    def body_bytes(self) -> bytes:
        """The whole request body; 413 if a chunked body went over the limit."""
        limit = self.config.max_body_bytes
        if self._received > limit:
            raise Problem(413, f"request body is over the limit of {limit} bytes")
        return b"".join(self._chunks)

    def json_body(self) -> Any:
        """The body parsed as strict JSON, or None when there is no body."""
        body = self.body_bytes()
        if not body.strip():
            return None
        return codec.parse_json(body)

    def int_argument(self, name: str, default: int, low: int, high: int) -> int:
        """A query argument as an integer within [low, high]; 400 otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            detail = f"query parameter '{name}' must be an integer, got '{raw[:40]}'"
            raise Problem(400, detail) from None
        if not low <= value <= high:
            raise Problem(
                400, f"query parameter '{name}' must be from {low} to {high}, got {value}"
            )
        return value

    def number_argument(
        self, name: str, default: float | None, low: float, high: float
    ) -> float | None:
        """A query argument as a finite number within [low, high]; 400 otherwise."""
        raw = self.get_query_argument(name, None)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            detail = f"query parameter '{name}' must be a number, got '{raw[:40]}'"
            raise Problem(400, detail) from None
        if not low <= value <= high:  # also refuses NaN and infinities
            raise Problem(
                400, f"query parameter '{name}' must be from {low:g} to {high:g}, got {raw[:40]}"
            )
        return value

    async def call_store(self, method: Callable[..., T], *args: Any) -> T:
        """Run a store method inline, or in an executor for a blocking store (see storage.base)."""
        if self.store.blocking:
            return await IOLoop.current().run_in_executor(None, method, *args)
        return method(*args)

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
        if isinstance(error, QueueError):
            status_code = status_for(error)
            self.set_status(status_code)
            detail = str(error)
        elif isinstance(error, Problem):
            detail = error.detail
        elif status_code == 405 and not self.allowed_methods():
            # Tornado checks non-standard methods (PROPFIND…) before routing reaches a 404.
            status_code = 404
            self.set_status(status_code)
            detail = f"no route for {self.request.method} {self.request.path[:200]}"
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
        problem = {"type": "about:blank", "title": phrase, "status": status_code, "detail": detail}
        self.finish(codec.dumps(problem))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this handler implements, for the `Allow` header of a 405."""
        return [
            method
            for method in cls.SUPPORTED_METHODS
            if getattr(cls, method.lower()) is not getattr(RequestHandler, method.lower())
        ]


class NotFoundHandler(ApiHandler):
    """Answers every request for an unknown route with a JSON 404."""

    def prepare(self) -> None:
        raise Problem(404, f"no route for {self.request.method} {self.request.path[:200]}")
