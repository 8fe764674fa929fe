"""The entry point's usage names every command there is, and every command line refuses a bad
argument in one line that points at --help."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tornado_queue.cli import USAGE, commands, main
from tornado_queue.testing import ROOT, free_port


def usage_commands() -> list[str]:
    return re.findall(r"^  ([a-z]+)\b", USAGE, flags=re.MULTILINE)


def test_usage_lists_every_command_once():
    listed = usage_commands()

    assert sorted(listed) == sorted(["serve", "worker", *commands.COMMANDS])
    assert len(listed) == len(set(listed))


def test_every_command_in_the_usage_is_dispatched(capsys):
    for command in usage_commands():
        with pytest.raises(SystemExit) as exited:
            main([command, "--help"])
        assert exited.value.code == 0, command
        assert "usage:" in capsys.readouterr().out, command


def test_an_unknown_command_is_one_line_naming_the_commands(capsys):
    assert main(["frobnicate"]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("tornado-queue: error: unknown command 'frobnicate'; commands: serve, ")
    assert err.rstrip().endswith("(see --help)")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["worker", "app:run", "--concurrency", "0"],
            "tornado-queue worker: error: argument --concurrency: must be from 1 to 256",
        ),
        (
            ["worker"],
            "tornado-queue worker: error: the following arguments are required: function",
        ),
        (
            ["enqueue", "{}", "--delay", "-1"],
            "tornado-queue enqueue: error: argument --delay:",
        ),
        (["stats", "--frobnicate"], "tornado-queue: error: unrecognized arguments"),
        (["enqueue", "[1]"], "tornado-queue: error: payload must be a JSON object"),
        (["serve", "--port", "70000"], "tornado-queue serve: error: argument --port: must be from"),
        (
            ["queue", "set", "emails", "--rate-limit", "10"],
            "tornado-queue queue set: error: argument --rate-limit: expected TASKS/SECONDS",
        ),
        (
            ["queue", "set", "emails", "--max-processing", "0"],
            "tornado-queue queue set: error: argument --max-processing: must be from 1 to 100000",
        ),
        (["queue", "set", "emails"], "tornado-queue: error: nothing to change"),
        (
            ["queue", "set", "emails", "--ttl-seconds", "60", "--clear", "ttl_seconds"],
            "tornado-queue: error: --ttl-seconds and --clear ttl_seconds contradict each other",
        ),
        (
            ["queue", "set", "emails", "--dead-letter-queue", "emails"],
            "tornado-queue: error: --dead-letter-queue must name another queue",
        ),
        (
            ["queue", "set", "emails", "--clear", "burst"],
            "tornado-queue queue set: error: argument --clear: must be one of max_processing,",
        ),
        (
            ["queue", "purge", "emails", "--status", "processing"],
            "tornado-queue queue purge: error: argument --status: processing tasks are never",
        ),
        (
            ["queue", "purge", "emails"],
            "tornado-queue queue purge: error: the following arguments are required: --status",
        ),
        (
            ["enqueue", "{}", "--expires-in", "0"],
            "tornado-queue enqueue: error: argument --expires-in: must be from 1 to 31536000",
        ),
        (
            ["enqueue", "{}", "--group", "a\tb"],
            "tornado-queue enqueue: error: argument --group: must be 1 to 128 characters",
        ),
        (
            ["enqueue", "{}", "--after", "#0"],
            "tornado-queue enqueue: error: argument --after: must be a task id, got '#0'",
        ),
        (
            ["schedule", "set", "nightly", "{}", "--queue", "q"],
            "tornado-queue schedule set: error: one of the arguments --cron --every is required",
        ),
        (
            ["schedule", "set", "nightly", "{}", "--queue", "q", "--every", "0"],
            "tornado-queue schedule set: error: argument --every: must be from 1 to 31536000",
        ),
        (
            ["schedule", "set", "nightly", "[]", "--queue", "q", "--every", "5"],
            "tornado-queue schedule set: error: argument payload: must be a JSON object",
        ),
    ],
    ids=[
        "worker range",
        "worker missing",
        "enqueue range",
        "unknown flag",
        "payload",
        "serve",
        "rate limit",
        "max processing",
        "nothing to set",
        "set and clear",
        "dead letter itself",
        "clear unknown",
        "purge processing",
        "purge no status",
        "expires in",
        "group",
        "after",
        "schedule without a time",
        "schedule every",
        "schedule payload",
    ],
)
def test_a_bad_argument_is_one_line_with_status_2(args, expected):
    finished = subprocess.run(
        [sys.executable, "-m", "tornado_queue", *args, "--url", f"http://127.0.0.1:{free_port()}"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert finished.returncode == 2
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(expected)
    assert lines[0].endswith("(see --help)")
    assert "Traceback" not in finished.stderr
