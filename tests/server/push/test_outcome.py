"""How a push's answer decides its task (docs/push.md, Outcomes): 2xx completes with a JSON
result, 429 and 5xx retry (after Retry-After when given), 3xx and other 4xx kill, and a push
that got no answer is retried."""

from __future__ import annotations

from email.utils import formatdate

import pytest
from tornado.httpclient import HTTPRequest, HTTPResponse
from tornado.httputil import HTTPHeaders
from tornado.simple_httpclient import HTTPTimeoutError

from tornado_queue.push_allow import DisallowedAddress
from tornado_queue.server.push.outcome import (
    PUSH_MAX_RESULT_BYTES,
    Reason,
    judge,
    not_answered,
    parse_retry_after,
)

NOW = 1_790_000_000.0


def answer(code: int, headers: dict[str, str] | None = None) -> HTTPResponse:
    return HTTPResponse(HTTPRequest("http://127.0.0.1/"), code, headers=HTTPHeaders(headers or {}))


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_a_2xx_succeeds(code):
    outcome = judge(answer(code), b'{"a": [1, 2]}', 30, NOW)
    assert outcome.succeeded
    assert outcome.result == b'{"a":[1,2]}'


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"{", b'"x' + b"y" * PUSH_MAX_RESULT_BYTES + b'"']
)
def test_a_2xx_body_that_is_not_json_or_too_big_is_no_result(body):
    outcome = judge(answer(200), body, 30, NOW)
    assert outcome.succeeded
    assert outcome.result is None


@pytest.mark.parametrize("code", [429, 500, 502, 503, 504, 599 - 1])
def test_429_and_5xx_are_retried(code):
    outcome = judge(answer(code), b"later", 30, NOW)
    assert (outcome.reason, outcome.retry, outcome.retry_after) == (Reason.RETRY_STATUS, True, None)
    assert outcome.error == f"push answered {code}: later"


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 410, 422])
def test_other_4xx_are_not_retried(code):
    outcome = judge(answer(code), b"no", 30, NOW)
    assert (outcome.reason, outcome.retry) == (Reason.REJECTED, False)
    assert outcome.error == f"push answered {code}: no"


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_retried(code):
    outcome = judge(answer(code, {"Location": "http://elsewhere/"}), b"", 30, NOW)
    assert (outcome.reason, outcome.retry) == (Reason.REJECTED, False)
    assert outcome.error == f"push answered {code} (redirects are not followed): "


def test_an_error_quotes_at_most_200_characters_made_visible():
    outcome = judge(answer(500), b"\x00" + b"x" * 1000, 30, NOW)
    assert outcome.error == "push answered 500: \\x00" + "x" * 199


def test_retry_after_in_seconds_and_as_a_date():
    assert judge(answer(503, {"Retry-After": "120"}), b"", 30, NOW).retry_after == 120
    later = formatdate(NOW + 90, usegmt=True)
    assert judge(answer(429, {"Retry-After": later}), b"", 30, NOW).retry_after == 90
    assert parse_retry_after(formatdate(NOW - 90, usegmt=True), NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None


def test_no_answer_is_retried_and_says_why():
    timeout = not_answered(HTTPTimeoutError("Timeout during request"), 2.5)
    assert (timeout.reason, timeout.retry, timeout.error) == (
        Reason.TIMEOUT,
        True,
        "push timed out after 2.5 s",
    )
    refused = not_answered(ConnectionRefusedError(111, "Connection refused"), 30)
    assert (refused.reason, refused.error) == (Reason.CONNECTION, "push failed: connection refused")
    disallowed = not_answered(DisallowedAddress("localhost", ["127.0.0.1"]), 30)
    assert disallowed.reason is Reason.DISALLOWED
    assert disallowed.retry
    assert disallowed.error == (
        "push failed: host 'localhost' resolves to 127.0.0.1, which --push-allow does not allow"
    )
