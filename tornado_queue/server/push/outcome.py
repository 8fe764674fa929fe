"""What a push's answer means for its task: completed (with a result), a failed attempt that
is retried (honouring Retry-After), or a failed attempt that is not (the task is dead)."""

from __future__ import annotations

import email.utils
import enum
import time
from dataclasses import dataclass

import orjson
from tornado.httpclient import HTTPResponse
from tornado.simple_httpclient import HTTPTimeoutError

from tornado_queue.errors import printable
from tornado_queue.push_allow import DisallowedAddress

PUSH_MAX_RESULT_BYTES = 1 << 20
"""The most of a receiver's answer that is read; a 2xx body up to this size that is JSON is
kept as the task's result."""
ERROR_BODY_CHARS = 200
"""How much of a refusing answer's body its task's error quotes."""


class Reason(enum.StrEnum):
    """Why a push failed (the `reason` label of `taskqueue_push_failed_total`)."""

    RETRY_STATUS = "retry_status"
    """429 or 5xx: the receiver asks to be tried again."""
    REJECTED = "rejected"
    """3xx or another 4xx: the receiver refused the task; it is not retried."""
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DISALLOWED = "disallowed"
    """The host resolved to an address --push-allow does not allow."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with a pushed task: complete it (`reason` None, with `result`), or fail it
    with `error`, retried when `retry` (after `retry_after` seconds when the receiver said)."""

    reason: Reason | None
    result: bytes | None = None
    error: str | None = None
    retry: bool = False
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.reason is None


def judge(
    response: HTTPResponse, body: bytes, timeout_seconds: float, now: float | None = None
) -> Outcome:
    """The outcome of one push from the client's `response` (fetched with raise_error=False)
    and the `body` read from it (at most `PUSH_MAX_RESULT_BYTES` + 1 bytes)."""
    code = response.code
    error = response.error
    if code == 599 or (error is not None and not 100 <= code < 600):
        return not_answered(error, timeout_seconds)
    if 200 <= code < 300:
        return Outcome(None, result=_result(body))
    quoted = printable(body[: ERROR_BODY_CHARS * 4].decode("utf-8", "replace")[:ERROR_BODY_CHARS])
    if code == 429 or code >= 500:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), now)
        return Outcome(
            Reason.RETRY_STATUS,
            error=f"push answered {code}: {quoted}",
            retry=True,
            retry_after=retry_after,
        )
    if 300 <= code < 400:
        text = f"push answered {code} (redirects are not followed): {quoted}"
    else:
        text = f"push answered {code}: {quoted}"
    return Outcome(Reason.REJECTED, error=text, retry=False)


def not_answered(error: BaseException | None, timeout_seconds: float) -> Outcome:
    """The outcome of a push that got no answer: it timed out, could not connect (or was
    refused an address by --push-allow), or lost its connection: retried in every case."""
    if isinstance(error, HTTPTimeoutError):
        seconds = f"{timeout_seconds:g}"
        return Outcome(Reason.TIMEOUT, error=f"push timed out after {seconds} s", retry=True)
    if isinstance(error, DisallowedAddress):
        return Outcome(Reason.DISALLOWED, error=f"push failed: {error}", retry=True)
    reason = _connection_reason(error)
    return Outcome(Reason.CONNECTION, error=f"push failed: {reason}", retry=True)


def _connection_reason(error: BaseException | None) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if error is None:
        return "no answer"
    text = str(error) or type(error).__name__
    return printable(text[:ERROR_BODY_CHARS])


def _result(body: bytes) -> bytes | None:
    """The answer's body as the task's result: JSON within the bound, compacted; else none."""
    if not body or len(body) > PUSH_MAX_RESULT_BYTES:
        return None
    try:
        return orjson.dumps(orjson.loads(body))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header (a number of seconds or an HTTP date); None when
    absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)
