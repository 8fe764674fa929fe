"""Access lines by route with method, status, duration and request id; text or JSON."""

from __future__ import annotations

import io
import json
import logging

import pytest

from tornado_queue import logs
from tornado_queue.config import Settings
from tornado_queue.logs import JsonFormatter


@pytest.mark.gen_test
async def test_each_request_logs_one_access_line_by_route_with_its_request_id(
    http_client, base_url, caplog
):
    caplog.set_level(logging.INFO, logger="tornado.access")

    await http_client.fetch(
        base_url + "/tasks/some-id", headers={"X-Request-ID": "trace-7"}, raise_error=False
    )

    [record] = [r for r in caplog.records if r.name == "tornado.access"]
    assert (record.method, record.route, record.status) == ("GET", "/tasks/{id}", 404)
    assert record.request_id == "trace-7"
    assert record.duration_ms >= 0
    assert "some-id" not in record.getMessage()


def test_the_json_format_writes_one_object_per_line_with_the_access_fields():
    record = logging.LogRecord("tornado.access", logging.INFO, __file__, 1, "200 GET", (), None)
    record.method, record.route, record.status = "GET", "/queue/stats", 200
    record.duration_ms, record.request_id = 0.5, "abc"

    line = JsonFormatter().format(record)

    document = json.loads(line)
    assert "\n" not in line
    assert document["logger"] == "tornado.access"
    assert document["message"] == "200 GET"
    assert {key: document[key] for key in ("method", "route", "status", "request_id")} == {
        "method": "GET",
        "route": "/queue/stats",
        "status": 200,
        "request_id": "abc",
    }


def test_log_format_is_text_or_json_from_the_flag_or_the_environment(capsys):
    assert Settings.from_args([]).log_format == "text"
    assert Settings.from_args(["--log-format", "json"]).log_format == "json"
    assert Settings.from_args([], environ={"TQ_LOG_FORMAT": "json"}).log_format == "json"
    with pytest.raises(SystemExit) as exit_info:
        Settings.from_args(["--log-format", "xml"])
    assert exit_info.value.code == 2
    assert "--log-format" in capsys.readouterr().err


@pytest.mark.parametrize("formatter", [logs.TextFormatter(), logs.JsonFormatter()])
def test_an_access_line_written_directly_is_the_line_logging_would_write(formatter, monkeypatch):
    stream = io.StringIO()
    handler = logs.ServerLogHandler(formatter)
    handler.setStream(stream)
    fields = {"method": "POST", "route": "/tasks", "status": 201}
    fields |= {"duration_ms": 0.52, "request_id": "abc"}
    message = "201 POST /tasks 0.52ms id=abc"
    monkeypatch.setattr(logs.time, "time", lambda: 1_790_000_000.25)

    handler.write_access(logging.INFO, message, fields)
    record = logging.LogRecord("tornado.access", logging.INFO, __file__, 1, message, (), None)
    record.created, record.msecs = 1_790_000_000.25, 250.0
    record.__dict__.update(fields)
    handler.handle(record)

    direct, through_logging = stream.getvalue().splitlines()
    assert direct == through_logging


def test_access_lines_go_through_logging_while_anyone_else_listens():
    # pytest's own log capture is attached to the root logger during this test.
    assert logs.ServerLogHandler.sole() is None


def test_a_failing_log_stream_never_stops_a_request_from_finishing(capsys):
    class Broken(io.StringIO):
        def write(self, _text: str) -> int:
            raise BrokenPipeError("stderr is gone")

    handler = logs.ServerLogHandler(logs.TextFormatter())
    handler.setStream(Broken())

    handler.write_access(logging.INFO, "201 POST /tasks 0.52ms id=abc", {})  # does not raise

    assert "BrokenPipeError" in capsys.readouterr().err
