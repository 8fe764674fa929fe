"""codec (strict JSON in, the wire form of a task out) and validation.new_task."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import TASK_FIELDS, TIMESTAMP_FIELDS
from tornado_queue import codec, validation
from tornado_queue.errors import ValidationError
from tornado_queue.models import Happened, HistoryEntry, NewTask, Task, TaskStatus, add_history


def wire(task: Task) -> dict:
    """The task as a client receives it: serialized, then parsed back."""
    return orjson.loads(codec.dumps(codec.task_document(task)))


def finished_task() -> Task:
    task = Task("0b6f1c8e-2d4a-4c1e-9a57-1f0e8a3b9c21", b'{"job":"resize","size":[1,2]}', 1.5e9)
    task.status = TaskStatus.COMPLETED
    task.attempts = 1
    task.lease_id = "lease-1"
    task.lease_expires_at = 1.5e9 + 30
    task.started_at = 1.5e9 + 1.25
    task.finished_at = 1.5e9 + 2.5
    task.result = b'{"ok":true}'
    task.expires_at = 1.5e9 + 3600
    task.schedule = "nightly"
    task.fire_time = 1.5e9 - 0.5
    return task


# --- task_document ---------------------------------------------------------------------------


def test_task_document_has_exactly_the_api_task_keys():
    assert set(codec.task_document(Task("id", b"{}", 0.0))) == TASK_FIELDS
    assert set(wire(finished_task())) == TASK_FIELDS


def test_a_new_tasks_document_has_the_api_defaults():
    document = wire(Task("id-1", b'{"a":1}', 1_790_000_000.0))

    assert document["id"] == "id-1"
    assert document["queue"] == "default"
    assert document["payload"] == {"a": 1}
    assert document["status"] == "pending"
    assert (document["priority"], document["attempts"], document["max_attempts"]) == (0, 0, 3)
    for key in (
        *("lease_id", "lease_expires_at", "started_at", "finished_at", "result", "error"),
        *("group", "expires_at", "dead_lettered_from"),
    ):
        assert document[key] is None, key


def test_the_payload_is_spliced_into_the_document_byte_for_byte():
    payload = b'{"z":1,"a":[1.5,"\\u00e9",null],"nested":{"k":true}}'
    task = Task("id-1", payload, 0.0)

    encoded = codec.dumps(codec.task_document(task))

    assert b'"payload":' + payload in encoded
    assert orjson.loads(encoded)["payload"] == orjson.loads(payload)


def test_a_stored_result_is_spliced_in_and_status_is_its_wire_string():
    document = wire(finished_task())

    assert document["result"] == {"ok": True}
    assert document["status"] == "completed"
    assert document["lease_id"] == "lease-1"


def test_every_timestamp_is_iso_8601_utc_ending_in_z_and_round_trips_to_the_same_instant():
    task = finished_task()
    document = wire(task)

    for key in TIMESTAMP_FIELDS:
        text = document[key]
        assert isinstance(text, str), key
        assert text.endswith("Z"), text
        parsed = datetime.fromisoformat(text)
        assert parsed.utcoffset().total_seconds() == 0
        assert parsed == datetime.fromtimestamp(getattr(task, key), UTC), key
        assert parsed.timestamp() == getattr(task, key), key


def test_a_task_only_enqueued_shows_one_entry_its_schedule_included():
    document = wire(finished_task())  # extras (a schedule) but no history recorded

    assert document["history"] == [{"at": "2017-07-14T02:40:00Z", "event": "enqueued"}]
    assert (document["schedule"], document["fire_time"]) == (
        "nightly",
        "2017-07-14T02:39:59.500000Z",
    )


def test_history_entries_show_their_times_and_only_the_keys_that_apply():
    task = finished_task()
    add_history(task, HistoryEntry(task.started_at, Happened.DELIVERED, "lease-1", "w/1/0"))
    add_history(task, HistoryEntry(1.5e9 + 2, Happened.FAILED, "lease-1", "w/1/0", "boom"))
    add_history(task, HistoryEntry(task.finished_at, Happened.COMPLETED, "lease-2"))

    assert wire(task)["history"] == [
        {"at": "2017-07-14T02:40:00Z", "event": "enqueued"},
        {
            "at": "2017-07-14T02:40:01.250000Z",
            "event": "delivered",
            "lease_id": "lease-1",
            "worker": "w/1/0",
        },
        {
            "at": "2017-07-14T02:40:02Z",
            "event": "failed",
            "lease_id": "lease-1",
            "worker": "w/1/0",
            "error": "boom",
        },
        {"at": "2017-07-14T02:40:02.500000Z", "event": "completed", "lease_id": "lease-2"},
    ]
    assert wire(task)["schedule"] == "nightly"


def test_format_time_of_none_is_none():
    assert codec.format_time(None) is None


def test_format_time_writes_utc_with_a_z_and_microseconds_when_there_are_any():
    assert codec.format_time(0.0) == "1970-01-01T00:00:00Z"
    assert codec.format_time(1_790_000_000.25) == "2026-09-21T14:13:20.250000Z"


@given(st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False))
def test_format_time_round_trips_any_timestamp_to_the_microsecond(timestamp):
    text = codec.format_time(timestamp)

    parsed = datetime.fromisoformat(text)
    assert text.endswith("Z")
    assert parsed.tzinfo is not None
    assert parsed == datetime.fromtimestamp(timestamp, UTC)
    assert abs(parsed.timestamp() - timestamp) <= 1e-6


# --- parse_json ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b'{"payload": {"x": 1}}',
        b'{"a": [1, 2.5, -3e10, "\\u00e9", true, null]}',
        '{"s": "caf\u00e9 \u2603"}'.encode(),
        b"[" * 500 + b"]" * 500,
    ],
    ids=["object", "types", "utf-8", "500 deep"],
)
def test_parse_json_accepts_valid_json(body):
    assert codec.parse_json(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        b'{"x": NaN}',
        b'{"x": Infinity}',
        b'{"x": -Infinity}',
        b'{"x": 1e400}',
        b'{"x": -1e400}',
        b'{"x": 1' + b"0" * 400 + b"}",
        b'{"x": "\xff\xfe"}',
        b'{"x": "\xc3"}',
        b'{"x": "\\ud800"}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a":' * 2000 + b"1" + b"}" * 2000,
        b'{"x": 1,}',
        b"{'x': 1}",
        b"",
    ],
    ids=[
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "-1e400",
        "400-digit integer",
        "invalid UTF-8",
        "truncated UTF-8",
        "lone surrogate",
        "5000 nested arrays",
        "2000 nested objects",
        "trailing comma",
        "single quotes",
        "empty",
    ],
)
def test_parse_json_rejects_what_strict_json_forbids_with_a_validation_error(body):
    with pytest.raises(ValidationError, match="not valid JSON"):
        codec.parse_json(body)


def test_encode_json_is_compact_json():
    assert codec.encode_json({"a": 1, "b": [1, 2], "c": {"d": None}}, "payload") == (
        b'{"a":1,"b":[1,2],"c":{"d":null}}'
    )


# --- validation.new_task ---------------------------------------------------------------------


def test_new_task_returns_the_payload_as_compact_json_bytes():
    document = codec.parse_json(b'{ "payload" : { "job" : "resize", "sizes" : [ 1 , 2 ] } }')

    new = validation.new_task(document)

    assert isinstance(new, NewTask)
    assert new.payload == b'{"job":"resize","sizes":[1,2]}'


def test_new_task_accepts_an_empty_payload_object():
    assert validation.new_task({"payload": {}}).payload == b"{}"


def test_new_task_requires_the_payload_field():
    with pytest.raises(ValidationError, match="'payload' is required"):
        validation.new_task({})


@pytest.mark.parametrize(
    ("payload", "described"),
    [
        ([1, 2], "an array"),
        ("text", "a string"),
        (3, "a number"),
        (2.5, "a number"),
        (True, "a boolean"),
        (None, "null"),
    ],
)
def test_new_task_requires_the_payload_to_be_an_object(payload, described):
    with pytest.raises(ValidationError, match=f"'payload' must be a JSON object, got {described}"):
        validation.new_task({"payload": payload})


def test_new_task_rejects_an_unknown_field_naming_it():
    with pytest.raises(ValidationError, match="unknown field 'colour'"):
        validation.new_task({"payload": {}, "colour": "red"})


@pytest.mark.parametrize("body", [[], "payload", 1, None, True])
def test_new_task_rejects_a_body_that_is_not_an_object(body):
    with pytest.raises(ValidationError, match="request body must be a JSON object"):
        validation.new_task(body)


def test_a_deeply_nested_payload_that_parses_is_refused_as_a_validation_error():
    # parse_json accepts nesting up to orjson's limit of 1024, but encode_json (orjson.dumps)
    # refuses more than about 254 levels with a TypeError. A body between the two limits must be
    # refused as bad input (400), not crash the handler (500).
    depth = 300
    body = b'{"payload":{"a":' + b"[" * depth + b"]" * depth + b"}}"
    document = codec.parse_json(body)

    with pytest.raises(ValidationError, match=r"(?i)nest|deep|depth"):
        validation.new_task(document)
