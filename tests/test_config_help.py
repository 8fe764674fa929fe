"""The server's --help (flags grouped by what they are about, each with its range, default and
variable) and its refusals of bad arguments: one line pointing at --help, status 2."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tornado_queue.config import GROUPS, OPTIONS, Settings
from tornado_queue.testing import ROOT

from .test_config import help_entries

EXPECTED_GROUPS = {
    "server": ["--host", "--port"],
    "store": ["--backend", "--db", "--sqlite-sync", "--redis-url", "--redis-prefix"],
    "leases and retries": [
        "--lease-seconds",
        "--max-attempts",
        "--retry-backoff",
        "--retention-seconds",
    ],
    "limits": [
        "--max-body-bytes",
        "--max-pending",
        "--max-tasks",
        "--max-queues",
        "--max-waiters",
        "--max-header-bytes",
        "--rate-limit",
        "--idle-timeout",
        "--body-timeout",
    ],
    "security": ["--auth-token", "--tokens-file", "--certfile", "--keyfile", "--cors-origin"],
    "push": ["--push-allow"],
    "logging": ["--log-level", "--log-format"],
    "simulation": ["--workers", "--work-seconds", "--worker-queues", "--fail-rate"],
}


def help_text(capsys) -> str:
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(["--help"], environ={})
    assert caught.value.code == 0
    return capsys.readouterr().out


def run_main(*args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("TQ_")}
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env={**env, **(environ or {})},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_help_lists_every_flag_once_in_its_group(capsys):
    entries = help_entries(help_text(capsys))

    listed: dict[str, list[str]] = {}
    for flag, (group, _) in entries.items():
        listed.setdefault(group, []).append(flag)
    assert listed == EXPECTED_GROUPS
    assert list(listed) == list(GROUPS)  # the sections come in GROUPS order
    assert sorted(entries) == sorted(option.flag for option in OPTIONS)


def test_each_flag_shows_its_range_default_and_variable(capsys):
    entries = help_entries(help_text(capsys))

    for option in OPTIONS:
        entry = entries[option.flag][1]
        assert f"env {option.env})" in entry, entry
        assert "default " in entry, entry
        bounds = getattr(option.parse, "bounds", None)
        if bounds is not None:
            assert f"({bounds}; default" in entry, entry
    assert "(0 to 65535; default 8000; env TQ_PORT)" in entries["--port"][1]
    assert "(0.1 to 3600; default 60.0; env TQ_IDLE_TIMEOUT)" in entries["--idle-timeout"][1]


def test_options_stay_an_iterable_of_every_setting_with_its_group():
    names = [option.name for option in OPTIONS]

    assert sorted(names) == sorted(Settings.__dataclass_fields__)
    for option in OPTIONS:
        assert option.group in GROUPS
        assert option.flag == "--" + option.name.replace("_", "-")
        assert option.env == "TQ_" + option.name.upper()
        assert option.default == getattr(Settings(), option.name)
        assert option.help and callable(option.parse)


@pytest.mark.parametrize(
    ("args", "environ", "expected"),
    [
        (
            ["--port", "70000"],
            {},
            "python main.py: error: argument --port: must be from 0 to 65535, got 70000 "
            "(see --help)",
        ),
        (
            [],
            {"TQ_PORT": "abc"},
            "python main.py: error: environment variable TQ_PORT: expected an integer, got "
            "'abc' (see --help)",
        ),
        (
            ["--frobnicate"],
            {},
            "python main.py: error: unrecognized arguments: --frobnicate (see --help)",
        ),
        (
            ["--certfile", "cert.pem"],
            {},
            "python main.py: error: --certfile and --keyfile go together: give both to serve "
            "HTTPS (see --help)",
        ),
        (
            ["--log-level", "loud"],
            {},
            "python main.py: error: argument --log-level: must be one of debug, info, warning, "
            "error, got 'loud' (see --help)",
        ),
        (["--port"], {}, "python main.py: error: argument --port: expected one argument"),
    ],
    ids=["range", "environment", "unknown", "certfile alone", "choice", "missing value"],
)
def test_a_bad_argument_is_one_line_with_status_2(args, environ, expected):
    finished = run_main(*args, environ=environ)

    assert finished.returncode == 2
    assert finished.stdout == ""
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(expected)
    assert lines[0].endswith("(see --help)")
    assert "usage:" not in finished.stderr
