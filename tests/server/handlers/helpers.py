"""Shared helpers for the HTTP tests: requests, problem checks and small API shortcuts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from tornado.httpclient import AsyncHTTPClient, HTTPResponse
from tornado.httputil import HTTPHeaders, parse_response_start_line
from tornado.tcpclient import TCPClient

from tests.support import TASK_FIELDS, TIMESTAMP_FIELDS

STATS_KEYS = frozenset({"pending", "processing", "completed", "failed", "scheduled", "waiting"})
PROBLEM_KEYS = frozenset({"type", "title", "status", "detail"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


async def request(
    client: AsyncHTTPClient,
    base_url: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    content_type: str | None = "application/json",
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> HTTPResponse:
    """Send one request and return the response whatever its status.

    `body` may be bytes (sent as is), a str (UTF-8) or any other value (sent as JSON). POST, PUT
    and PATCH without a body send an empty one. Every response is checked to never be HTML.
    """
    if isinstance(body, bytes):
        raw = body
    elif isinstance(body, str):
        raw = body.encode()
    elif body is not None:
        raw = orjson.dumps(body)
    else:
        raw = b"" if method in BODY_METHODS else None
    all_headers = dict(headers or {})
    if content_type is not None and method in BODY_METHODS:
        all_headers.setdefault("Content-Type", content_type)
    response = await client.fetch(
        base_url + path,
        method=method,
        body=raw,
        headers=all_headers,
        raise_error=False,
        **kwargs,
    )
    assert_not_html(response.headers.get("Content-Type", ""), response.body)
    return response


def assert_not_html(content_type: str, body: bytes | None) -> None:
    assert "html" not in content_type.lower(), f"HTML response: {content_type}"
    text = (body or b"").lstrip().lower()
    assert not text.startswith(b"<"), f"HTML-looking body: {text[:80]!r}"
    assert b"<html" not in text


def json_of(response: HTTPResponse) -> Any:
    return orjson.loads(response.body)


def assert_json(response: HTTPResponse, status: int) -> Any:
    """Check a successful JSON response and return its document."""
    assert response.code == status, (response.code, response.body[:300])
    media_type = response.headers["Content-Type"].split(";")[0].strip()
    assert media_type == "application/json"
    return json_of(response)


def assert_problem(response: HTTPResponse, status: int) -> dict[str, Any]:
    """Check an RFC 9457 problem response with this status and return the problem document."""
    assert response.code == status, (response.code, response.body[:300])
    media_type = response.headers["Content-Type"].split(";")[0].strip()
    assert media_type == "application/problem+json"
    return check_problem_document(json_of(response), status)


def check_problem_document(problem: Any, status: int) -> dict[str, Any]:
    assert isinstance(problem, dict)
    assert set(problem) == PROBLEM_KEYS
    assert problem["status"] == status
    assert isinstance(problem["type"], str)
    assert problem["type"]
    assert isinstance(problem["title"], str)
    assert problem["title"]
    assert isinstance(problem["detail"], str)
    assert problem["detail"].strip()
    assert "Traceback" not in problem["detail"]
    return problem


def parse_timestamp(text: str) -> datetime:
    """An API timestamp as an aware datetime; it must be UTC and end with 'Z'."""
    assert isinstance(text, str)
    assert text.endswith("Z"), text
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    assert parsed.utcoffset() is not None
    assert parsed.utcoffset().total_seconds() == 0
    return parsed


def at(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, UTC)


def assert_task_document(task: Any) -> dict[str, Any]:
    """Check the shape of a task document: every field, UTC timestamps with a 'Z'."""
    assert isinstance(task, dict)
    assert set(task) == TASK_FIELDS
    for field in TIMESTAMP_FIELDS:
        if task[field] is not None:
            parse_timestamp(task[field])
    return task


async def enqueue(client: AsyncHTTPClient, base_url: str, payload: Any = None) -> dict[str, Any]:
    payload = {"n": 1} if payload is None else payload
    response = await request(client, base_url, "POST", "/tasks", {"payload": payload})
    return assert_task_document(assert_json(response, 201))


async def dequeue(client: AsyncHTTPClient, base_url: str) -> dict[str, Any]:
    response = await request(client, base_url, "POST", "/tasks/dequeue")
    return assert_task_document(assert_json(response, 200))


async def complete(client: AsyncHTTPClient, base_url: str, task_id: str) -> dict[str, Any]:
    response = await request(client, base_url, "PUT", f"/tasks/{task_id}/complete")
    return assert_task_document(assert_json(response, 200))


async def get_task(client: AsyncHTTPClient, base_url: str, task_id: str) -> dict[str, Any]:
    response = await request(client, base_url, "GET", f"/tasks/{task_id}")
    return assert_task_document(assert_json(response, 200))


async def stats(client: AsyncHTTPClient, base_url: str) -> dict[str, int]:
    response = await request(client, base_url, "GET", "/queue/stats")
    document = assert_json(response, 200)
    assert set(document) == STATS_KEYS
    return document


async def raw_exchange(port: int, data: bytes) -> tuple[int, HTTPHeaders, bytes]:
    """Send raw bytes to the server and read until it closes: (status, headers, body).

    For requests a well-behaved client cannot send (broken headers). `data` should ask for
    `Connection: close` so that the server ends the exchange.
    """
    stream = await TCPClient().connect("127.0.0.1", port)
    try:
        await stream.write(data)
        reply = await stream.read_until_close()
    finally:
        stream.close()
    head, _, body = reply.partition(b"\r\n\r\n")
    start_line, _, header_block = head.decode("latin-1").partition("\r\n")
    status = parse_response_start_line(start_line).code
    headers = HTTPHeaders.parse(header_block)
    assert_not_html(headers.get("Content-Type", ""), body)
    return status, headers, body
