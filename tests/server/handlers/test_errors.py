"""Every bad request gets problem JSON, never HTML or a traceback, and changes nothing."""

from __future__ import annotations

import gzip
import logging

import orjson
import pytest

from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    at,
    check_problem_document,
    enqueue,
    get_task,
    parse_timestamp,
    raw_exchange,
    request,
    stats,
)
from tornado_queue.models import NewTask

LIMIT = 64 * 1024  # the `settings` fixture's max_body_bytes


@pytest.fixture
def seeded(store):
    """A queue with one task in each of pending, processing and completed."""
    tasks = [store.enqueue(NewTask(payload=b'{"seed":%d}' % i)) for i in range(3)]
    first = store.dequeue()
    store.dequeue()
    store.complete(first.id)
    assert [store.stats()[status] for status in ("pending", "processing", "completed")] == [1, 1, 1]
    return tasks


def nested(depth: int) -> bytes:
    """A JSON object `depth` levels deep."""
    return b'{"a":' * (depth - 1) + b"{}" + b"}" * (depth - 1)


def body_of_size(size: int) -> bytes:
    """A valid `POST /tasks` body of exactly `size` bytes."""
    frame = b'{"payload":{"pad":""}}'
    padding = b"x" * (size - len(frame))
    body = b'{"payload":{"pad":"' + padding + b'"}}'
    assert len(body) == size
    return body


async def assert_rejected_without_change(
    http_client, base_url, *, status, method, path, body, content_type="application/json"
):
    """Send a bad request; check its problem response and that the queue did not change."""
    before = await stats(http_client, base_url)
    view_before = await request(http_client, base_url, "GET", "/queue/view")

    response = await request(http_client, base_url, method, path, body, content_type=content_type)

    problem = assert_problem(response, status)
    assert await stats(http_client, base_url) == before
    view_after = await request(http_client, base_url, "GET", "/queue/view")
    assert view_after.body == view_before.body
    return problem


# --- bad JSON bodies -----------------------------------------------------------------------

BAD_TASK_BODIES = [
    pytest.param(b'{"payload": {', "JSON", id="malformed-json"),
    pytest.param(b"{'payload': {}}", "JSON", id="single-quotes"),
    pytest.param(b'{"payload": {}} trailing', "JSON", id="trailing-garbage"),
    pytest.param(b"", "object", id="empty-body"),
    pytest.param(b" \r\n\t ", "object", id="whitespace-body"),
    pytest.param(b'{"payload": {"x": NaN}}', "JSON", id="nan"),
    pytest.param(b'{"payload": {"x": Infinity}}', "JSON", id="infinity"),
    pytest.param(b'{"payload": {"x": -Infinity}}', "JSON", id="minus-infinity"),
    pytest.param(b'{"payload": {"x": 1e400}}', "JSON", id="1e400"),
    pytest.param(b'{"payload": {"x": -1e400}}', "JSON", id="minus-1e400"),
    pytest.param(b'{"payload": {"x": "caf\xe9"}}', "JSON", id="invalid-utf8-latin1"),
    pytest.param(b'{"payload": {"x": "\xff\xfe"}}', "JSON", id="invalid-utf8-bytes"),
    pytest.param(b'{"payload": {"x": "\\ud800"}}', "JSON", id="lone-surrogate"),
    pytest.param(b'{"payload": ' + nested(1100) + b"}", "JSON", id="nesting-1100-objects"),
    pytest.param(b"[" * 1100 + b"]" * 1100, "JSON", id="nesting-1100-arrays"),
    pytest.param(b"[]", "object", id="body-is-a-list"),
    pytest.param(b'"payload"', "object", id="body-is-a-string"),
    pytest.param(b"null", "object", id="body-is-null"),
    pytest.param(b"42", "object", id="body-is-a-number"),
    pytest.param(b"true", "object", id="body-is-a-boolean"),
    pytest.param(b"{}", "payload", id="missing-payload"),
    pytest.param(b'{"payload": []}', "payload", id="payload-is-a-list"),
    pytest.param(b'{"payload": "text"}', "payload", id="payload-is-a-string"),
    pytest.param(b'{"payload": 3}', "payload", id="payload-is-a-number"),
    pytest.param(b'{"payload": null}', "payload", id="payload-is-null"),
    pytest.param(b'{"payload": false}', "payload", id="payload-is-a-boolean"),
    pytest.param(b'{"payload": {}, "colour": "red"}', "colour", id="unknown-field"),
    pytest.param(b'{"Payload": {}}', "Payload", id="field-names-are-case-sensitive"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("body", "named"), BAD_TASK_BODIES)
async def test_a_bad_task_body_is_a_400_problem_that_changes_nothing(
    http_client, base_url, seeded, body, named
):
    problem = await assert_rejected_without_change(
        http_client, base_url, status=400, method="POST", path="/tasks", body=body
    )

    assert named in problem["detail"]
    assert len(problem["detail"]) < 400


@pytest.mark.gen_test
@pytest.mark.parametrize("depth", [300, 1000])
async def test_a_deeply_nested_payload_is_a_400_not_a_500(http_client, base_url, seeded, depth):
    # Parsing allows 1024 levels but storing the payload must not blow up past that point.
    body = b'{"payload": ' + nested(depth) + b"}"

    await assert_rejected_without_change(
        http_client, base_url, status=400, method="POST", path="/tasks", body=body
    )


@pytest.mark.gen_test
async def test_a_moderately_nested_payload_is_accepted_and_returned_intact(http_client, base_url):
    payload = orjson.loads(nested(100))

    task = await enqueue(http_client, base_url, payload)

    assert task["payload"] == payload
    assert (await get_task(http_client, base_url, task["id"]))["payload"] == payload


BIG_INTEGER = 123456789012345678901234  # beyond 64 bits


@pytest.mark.gen_test
async def test_an_integer_beyond_64_bits_is_accepted_as_the_nearest_double(http_client, base_url):
    response = await request(
        http_client, base_url, "POST", "/tasks", b'{"payload": {"n": %d}}' % BIG_INTEGER
    )

    # orjson's rule (and JavaScript's): an integer too big for 64 bits is read as a double.
    task = assert_json(response, 201)
    assert type(task["payload"]["n"]) is float
    assert task["payload"]["n"] == float(BIG_INTEGER)
    assert (await get_task(http_client, base_url, task["id"]))["payload"] == {
        "n": float(BIG_INTEGER)
    }


@pytest.mark.gen_test
async def test_an_empty_body_on_enqueue_is_a_400_saying_the_body_is_empty(
    http_client, base_url, seeded
):
    problem = await assert_rejected_without_change(
        http_client, base_url, status=400, method="POST", path="/tasks", body=b""
    )

    assert "request body is empty" in problem["detail"]


# --- Content-Type --------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/jsonx",
    ],
)
async def test_a_body_that_is_not_json_by_content_type_is_a_415_that_changes_nothing(
    http_client, base_url, seeded, content_type
):
    problem = await assert_rejected_without_change(
        http_client,
        base_url,
        status=415,
        method="POST",
        path="/tasks",
        body=b'{"payload": {}}',
        content_type=content_type,
    )

    assert content_type in problem["detail"]
    assert "Content-Type" in problem["detail"]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
        "application/vnd.api+json; charset=utf-8",
    ],
)
async def test_json_media_types_are_accepted(http_client, base_url, content_type):
    response = await request(
        http_client,
        base_url,
        "POST",
        "/tasks",
        {"payload": {"ct": content_type}},
        content_type=content_type,
    )

    assert assert_json(response, 201)["payload"] == {"ct": content_type}
    assert (await stats(http_client, base_url))["pending"] == 1


@pytest.mark.gen_test
async def test_a_body_without_content_type_is_read_as_json(http_client, base_url, http_port):
    body = b'{"payload": {"raw": true}}'
    data = (
        b"POST /tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body

    status, headers, reply = await raw_exchange(http_port, data)

    assert status == 201
    assert headers["Content-Type"] == "application/json"
    assert orjson.loads(reply)["payload"] == {"raw": True}
    assert (await stats(http_client, base_url))["pending"] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
async def test_a_compressed_body_is_a_415_naming_content_encoding_that_changes_nothing(
    http_client, base_url, seeded, encoding
):
    body = gzip.compress(b'{"payload": {"zipped": true}}')
    before = await stats(http_client, base_url)

    response = await request(
        http_client,
        base_url,
        "POST",
        "/tasks",
        body,
        headers={"Content-Encoding": encoding},
    )

    problem = assert_problem(response, 415)
    assert "Content-Encoding" in problem["detail"]
    assert encoding in problem["detail"]
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
async def test_an_identity_content_encoding_is_accepted(http_client, base_url):
    response = await request(
        http_client,
        base_url,
        "POST",
        "/tasks",
        {"payload": {"plain": True}},
        headers={"Content-Encoding": "identity"},
    )

    assert assert_json(response, 201)["payload"] == {"plain": True}


@pytest.mark.gen_test
async def test_a_415_echoing_a_huge_content_type_is_clipped(http_client, base_url, seeded):
    content_type = "application/" + "x" * 20_000

    problem = await assert_rejected_without_change(
        http_client,
        base_url,
        status=415,
        method="POST",
        path="/tasks",
        body=b'{"payload": {}}',
        content_type=content_type,
    )

    assert "Content-Type" in problem["detail"]
    assert "application/xxx" in problem["detail"]
    assert len(problem["detail"]) < 300


@pytest.mark.gen_test
async def test_a_415_on_complete_leaves_the_task_processing(http_client, base_url, store):
    task = store.enqueue(NewTask(payload=b"{}"))
    store.dequeue()

    response = await request(
        http_client, base_url, "PUT", f"/tasks/{task.id}/complete", b"{}", content_type="text/plain"
    )

    assert_problem(response, 415)
    assert (await get_task(http_client, base_url, task.id))["status"] == "processing"


# --- body size -----------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_body_exactly_at_the_limit_is_accepted(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/tasks", body_of_size(LIMIT))

    assert assert_json(response, 201)["status"] == "pending"


@pytest.mark.gen_test
@pytest.mark.parametrize("size", [LIMIT + 1, 4 * LIMIT])
async def test_a_body_over_the_limit_is_a_413_that_changes_nothing(
    http_client, base_url, seeded, size
):
    problem = await assert_rejected_without_change(
        http_client, base_url, status=413, method="POST", path="/tasks", body=body_of_size(size)
    )

    assert str(LIMIT) in problem["detail"]


def chunked_producer(body: bytes, chunk_size: int = 8192):
    async def produce(write) -> None:
        for start in range(0, len(body), chunk_size):
            await write(body[start : start + chunk_size])

    return produce


@pytest.mark.gen_test
async def test_a_chunked_body_over_the_limit_is_a_413_that_changes_nothing(
    http_client, base_url, seeded
):
    before = await stats(http_client, base_url)
    body = body_of_size(LIMIT + 10_000)

    response = await http_client.fetch(
        base_url + "/tasks",
        method="POST",
        headers={"Content-Type": "application/json"},
        body_producer=chunked_producer(body),
        raise_error=False,
    )

    problem = assert_problem(response, 413)
    assert str(LIMIT) in problem["detail"]
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
async def test_a_chunked_body_under_the_limit_is_accepted(http_client, base_url):
    body = b'{"payload": {"chunks": "' + b"c" * 20_000 + b'"}}'

    response = await http_client.fetch(
        base_url + "/tasks",
        method="POST",
        headers={"Content-Type": "application/json"},
        body_producer=chunked_producer(body, chunk_size=1000),
        raise_error=False,
    )

    task = assert_json(response, 201)
    assert task["payload"] == {"chunks": "c" * 20_000}


@pytest.mark.gen_test
async def test_an_oversized_dequeue_body_is_a_413_and_dequeues_nothing(
    http_client, base_url, seeded
):
    await assert_rejected_without_change(
        http_client,
        base_url,
        status=413,
        method="POST",
        path="/tasks/dequeue",
        body=b"{}" + b" " * LIMIT,
    )


@pytest.mark.gen_test
async def test_a_huge_declared_content_length_is_a_413_before_any_body(
    http_client, base_url, http_port, seeded
):
    before = await stats(http_client, base_url)
    data = (
        b"POST /tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n"
    )

    status, headers, reply = await raw_exchange(http_port, data)

    assert status == 413
    assert headers["Content-Type"] == "application/problem+json"
    check_problem_document(orjson.loads(reply), 413)
    assert await stats(http_client, base_url) == before


INVALID_CONTENT_LENGTHS = [
    b"abc",
    b"",
    b"0x10",
    b"1e3",
    b"5, 6",
    b"-5",
    b"+14",
    b"1_4",
]


def post_with_content_length(value: bytes) -> bytes:
    body = b'{"payload":{}}'
    return (
        b"POST /tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: " + value + b"\r\n\r\n" + body
    )


@pytest.mark.gen_test
@pytest.mark.parametrize("value", INVALID_CONTENT_LENGTHS)
async def test_an_invalid_content_length_is_never_a_500_and_changes_nothing(
    http_client, base_url, http_port, seeded, value
):
    before = await stats(http_client, base_url)

    status, _, _ = await raw_exchange(http_port, post_with_content_length(value))

    assert status == 400
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
@pytest.mark.parametrize("value", INVALID_CONTENT_LENGTHS)
async def test_an_invalid_content_length_is_answered_with_problem_json(
    http_client, http_port, value
):
    status, headers, reply = await raw_exchange(http_port, post_with_content_length(value))

    assert status == 400
    assert headers.get("Content-Type") == "application/problem+json", (dict(headers), reply)
    problem = check_problem_document(orjson.loads(reply), 400)
    assert "Content-Length" in problem["detail"]


@pytest.mark.gen_test
async def test_two_conflicting_content_length_headers_are_a_400_problem(
    http_client, base_url, http_port
):
    data = (
        b"POST /tasks HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 14\r\nContent-Length: 2\r\n\r\n"
        b'{"payload":{}}'
    )

    status, headers, reply = await raw_exchange(http_port, data)

    # Tornado joins the two headers into "14,2" and hands them to the handler before it reads
    # the body itself, so the handler answers (problem JSON), not Tornado's bare 400.
    assert status == 400
    assert headers["Content-Type"] == "application/problem+json"
    problem = check_problem_document(orjson.loads(reply), 400)
    assert "Content-Length" in problem["detail"]
    assert "14,2" in problem["detail"]
    assert (await stats(http_client, base_url))["pending"] == 0


# --- query parameters ----------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "parameter"),
    [
        ("GET", "/queue/view?limit=1&limit=2", "limit"),
        ("GET", "/queue/view?offset=0&limit=5&offset=0", "offset"),
        ("POST", "/tasks/dequeue?lease=10&lease=20", "lease"),
        ("PUT", "/tasks/some-id/heartbeat?lease_id=a&lease_id=b", "lease_id"),
        ("PUT", "/tasks/some-id/complete?lease_id=a&lease_id=a", "lease_id"),
    ],
)
async def test_a_repeated_query_parameter_is_a_400_naming_it(
    http_client, base_url, *, seeded, method, path, parameter
):
    problem = await assert_rejected_without_change(
        http_client, base_url, status=400, method=method, path=path, body=None
    )

    assert f"'{parameter}'" in problem["detail"]
    assert "2 times" in problem["detail"]


NOT_PLAIN_DIGITS = [
    pytest.param("1_0", id="underscore"),
    pytest.param("%2B5", id="plus-sign"),
    pytest.param("%EF%BC%95", id="fullwidth-five"),
    pytest.param("%D9%A1", id="arabic-indic-one"),
    pytest.param("%E0%A5%A8", id="devanagari-two"),
    pytest.param("0x10", id="hex"),
    pytest.param("1e1", id="exponent"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize("parameter", ["limit", "offset"])
@pytest.mark.parametrize("value", NOT_PLAIN_DIGITS)
async def test_a_view_paging_number_must_be_plain_ascii_digits(
    http_client, base_url, seeded, parameter, value
):
    problem = await assert_rejected_without_change(
        http_client,
        base_url,
        status=400,
        method="GET",
        path=f"/queue/view?{parameter}={value}",
        body=None,
    )

    assert f"'{parameter}'" in problem["detail"]
    assert "whole number" in problem["detail"]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "value",
    [
        *[param for param in NOT_PLAIN_DIGITS if param.id != "exponent"],
        pytest.param("1e", id="exponent-without-digits"),
        pytest.param("1e1234", id="exponent-of-four-digits"),
        pytest.param("nan", id="nan"),
        pytest.param("NaN", id="NaN"),
        pytest.param("inf", id="inf"),
        pytest.param("Infinity", id="Infinity"),
        pytest.param("-5", id="negative"),
        pytest.param("1.", id="trailing-dot"),
        pytest.param(".5", id="leading-dot"),
        pytest.param("1.5.5", id="two-dots"),
    ],
)
async def test_a_lease_must_be_a_plain_decimal_number(http_client, base_url, seeded, value):
    problem = await assert_rejected_without_change(
        http_client,
        base_url,
        status=400,
        method="POST",
        path=f"/tasks/dequeue?lease={value}",
        body=None,
    )

    assert "'lease'" in problem["detail"]
    assert "number like 30 or 2.5" in problem["detail"]


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("value", "seconds"),
    [("60", 60), ("2.5", 2.5), ("522.5732521619273", 522.5732521619273), ("1e3", 1000)],
)
async def test_a_lease_is_read_as_python_and_javascript_write_numbers(
    http_client, base_url, seeded, value, seconds
):
    response = await request(http_client, base_url, "POST", f"/tasks/dequeue?lease={value}")

    task = assert_json(response, 200)
    lease = parse_timestamp(task["lease_expires_at"]) - parse_timestamp(task["started_at"])
    assert lease.total_seconds() == pytest.approx(seconds, abs=1e-5)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "parameter"),
    [
        pytest.param("GET", "/queue/view?limit=%205", "limit", id="limit-leading-space"),
        pytest.param("GET", "/queue/view?offset=5%20", "offset", id="offset-trailing-space"),
        pytest.param("POST", "/tasks/dequeue?lease=%0930", "lease", id="lease-leading-tab"),
    ],
)
async def test_a_query_number_padded_with_whitespace_is_a_400(
    http_client, base_url, *, seeded, method, path, parameter
):
    # Plain digits only, like the other bad numbers above. Tornado strips whitespace from query
    # arguments by default (`get_query_arguments(name, strip=True)`), so the handler has to ask
    # for the raw value to see the padding.
    problem = await assert_rejected_without_change(
        http_client, base_url, status=400, method=method, path=path, body=None
    )

    assert f"'{parameter}'" in problem["detail"]


@pytest.mark.gen_test
@pytest.mark.parametrize(("value", "seconds"), [("1.5", 1.5), ("30", 30.0), ("43200.0", 43200.0)])
async def test_a_decimal_lease_is_accepted(http_client, base_url, *, clock, store, value, seconds):
    task_id = store.enqueue(NewTask(payload=b"{}")).id

    response = await request(http_client, base_url, "POST", f"/tasks/dequeue?lease={value}")

    task = assert_json(response, 200)
    assert task["id"] == task_id
    assert parse_timestamp(task["lease_expires_at"]) == at(clock.now + seconds)


# --- routing -------------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/tasks/abc/def/ghi"),
        ("GET", "/queue"),
        ("GET", "/queue/view/extra"),
        ("POST", "/tasks/dequeue/"),
        ("DELETE", "/no/such/route"),
        ("PROPFIND", "/nope"),
    ],
)
async def test_an_unknown_route_is_a_404_problem(http_client, base_url, method, path):
    response = await request(
        http_client,
        base_url,
        method,
        path,
        {"payload": {}} if method == "POST" else None,
        allow_nonstandard_methods=True,
    )

    assert_problem(response, 404)
    assert (await stats(http_client, base_url))["pending"] == 0


def allowed(response) -> set[str]:
    return {method.strip() for method in response.headers["Allow"].split(",") if method.strip()}


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/queue/stats", {"GET", "HEAD"}),
        ("POST", "/queue/stats", {"GET", "HEAD"}),
        ("GET", "/tasks/dequeue", {"POST"}),
        ("PUT", "/tasks/dequeue", {"POST"}),
        ("PATCH", "/tasks", {"POST"}),
        ("GET", "/tasks", {"POST"}),
        ("PROPFIND", "/tasks", {"POST"}),
        ("POST", "/queue/view", {"GET", "HEAD"}),
        ("GET", "/tasks/some-id/complete", {"PUT"}),
        ("POST", "/tasks/some-id/complete", {"PUT"}),
    ],
)
async def test_a_wrong_method_is_a_405_with_an_allow_header(
    http_client, base_url, *, seeded, method, path, allow
):
    before = await stats(http_client, base_url)
    body = {"payload": {}} if method in ("POST", "PUT", "PATCH", "PROPFIND") else None

    response = await request(
        http_client, base_url, method, path, body, allow_nonstandard_methods=True
    )

    problem = assert_problem(response, 405)
    assert allowed(response) == allow
    assert method in problem["detail"]
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "allow"),
    [
        pytest.param(
            "DELETE",
            "/queue/stats",
            {"Content-Type": "text/plain"},
            b"not json at all",
            {"GET", "HEAD"},
            id="DELETE-stats-text-plain-body",
        ),
        pytest.param(
            "PATCH",
            "/tasks",
            {"Content-Type": "application/json"},
            body_of_size(LIMIT + 1),
            {"POST"},
            id="PATCH-tasks-body-over-the-limit",
        ),
        pytest.param(
            "PUT",
            "/tasks/dequeue",
            {"Content-Type": "application/xml"},
            body_of_size(4 * LIMIT),
            {"POST"},
            id="PUT-dequeue-oversized-xml-body",
        ),
        pytest.param(
            "POST",
            "/queue/view",
            {"Content-Type": "application/json", "Content-Encoding": "gzip"},
            b"\x1f\x8b",
            {"GET", "HEAD"},
            id="POST-view-gzip-body",
        ),
    ],
)
async def test_a_wrong_method_is_a_405_whatever_the_body_looks_like(
    http_client, base_url, *, seeded, method, path, headers, body, allow
):
    # The method is checked before the body: size, Content-Type and Content-Encoding come after.
    before = await stats(http_client, base_url)

    response = await request(
        http_client,
        base_url,
        method,
        path,
        body,
        content_type=None,
        headers=headers,
        allow_nonstandard_methods=True,
    )

    problem = assert_problem(response, 405)
    assert allowed(response) == allow
    assert method in problem["detail"]
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
async def test_a_wrong_method_with_a_huge_declared_body_is_a_405_before_any_body(
    http_client, base_url, http_port, seeded
):
    before = await stats(http_client, base_url)
    data = (
        b"DELETE /queue/stats HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 99999999999\r\n\r\n"
    )

    status, headers, reply = await raw_exchange(http_port, data)

    assert status == 405
    assert headers["Content-Type"] == "application/problem+json"
    assert {method.strip() for method in headers["Allow"].split(",")} == {"GET", "HEAD"}
    check_problem_document(orjson.loads(reply), 405)
    assert await stats(http_client, base_url) == before


@pytest.mark.gen_test
async def test_a_wrong_method_on_a_task_url_is_a_405_allowing_get(http_client, base_url, store):
    task = store.enqueue(NewTask(payload=b"{}"))

    response = await request(http_client, base_url, "POST", f"/tasks/{task.id}", b"{}")

    assert_problem(response, 405)
    assert "GET" in allowed(response)
    assert "POST" not in allowed(response)
    assert (await get_task(http_client, base_url, task.id))["status"] == "pending"


# --- unexpected failures -------------------------------------------------------------------

SECRET = "secret-internal-detail /srv/app/db.py line 42"


def explode(*args, **kwargs):
    raise RuntimeError(SECRET)


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("store_method", "method", "path", "body"),
    [
        ("enqueue_many", "POST", "/tasks", {"payload": {"x": 1}}),
        ("dequeue_many", "POST", "/tasks/dequeue", None),
        ("get", "GET", "/tasks/some-id", None),
        ("complete", "PUT", "/tasks/some-id/complete", None),
        ("view", "GET", "/queue/view", None),
        ("stats", "GET", "/queue/stats", None),
    ],
)
async def test_an_unexpected_store_failure_is_a_500_problem_without_internals(
    http_client, base_url, *, store, monkeypatch, caplog, store_method, method, path, body
):
    monkeypatch.setattr(store, store_method, explode)

    with caplog.at_level(logging.ERROR):
        response = await request(http_client, base_url, method, path, body)

    problem = assert_problem(response, 500)
    text = response.body.decode()
    for leak in (SECRET, "secret", "Traceback", "RuntimeError", 'File "', ".py"):
        assert leak not in text
    assert problem["title"] == "Internal Server Error"
    logged = [record for record in caplog.records if record.exc_info]
    assert logged, "the failure must be logged with its traceback"
    assert any(SECRET in str(record.exc_info[1]) for record in logged)


@pytest.mark.gen_test
async def test_the_server_keeps_serving_after_an_unexpected_failure(
    http_client, base_url, store, monkeypatch
):
    original = store.enqueue_many
    monkeypatch.setattr(store, "enqueue_many", explode)
    assert_problem(await request(http_client, base_url, "POST", "/tasks", {"payload": {}}), 500)
    monkeypatch.setattr(store, "enqueue_many", original)

    task = await enqueue(http_client, base_url, {"after": "failure"})

    assert (await get_task(http_client, base_url, task["id"]))["payload"] == {"after": "failure"}


# --- never HTML ----------------------------------------------------------------------------


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/tasks/%FF", 400),
        ("GET", "/queue/view?limit=%FF", 400),
        ("GET", "/does/not/exist", 404),
        ("DELETE", "/queue/stats", 405),
        ("POST", "/tasks/dequeue", 404),
    ],
)
async def test_error_responses_are_problem_json_never_html(
    http_client, base_url, method, path, status
):
    response = await request(http_client, base_url, method, path)

    assert_problem(response, status)
    assert b"<" not in response.body
