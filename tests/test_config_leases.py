"""The delivery flags: --fail-rate, --lease-seconds, --max-attempts, --retry-backoff and
--retention-seconds, their TQ_* variables, their limits, and the Policy they give a store."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tornado_queue.config import Settings
from tornado_queue.storage import Policy

ROOT = Path(__file__).resolve().parent.parent

# flag, environment variable, a valid non-default value as text, the parsed value, the field
CASES = [
    ("--fail-rate", "TQ_FAIL_RATE", "0.25", 0.25, "fail_rate"),
    ("--lease-seconds", "TQ_LEASE_SECONDS", "90.5", 90.5, "lease_seconds"),
    ("--max-attempts", "TQ_MAX_ATTEMPTS", "7", 7, "max_attempts"),
    ("--retry-backoff", "TQ_RETRY_BACKOFF", "2.5", 2.5, "retry_backoff"),
    ("--retention-seconds", "TQ_RETENTION_SECONDS", "60", 60.0, "retention_seconds"),
]
CASE_IDS = [case[0] for case in CASES]


def exit_message(capsys, argv: list[str], environ: dict[str, str]) -> str:
    """Parse and expect a usage error: exit status 2; return what went to stderr."""
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(argv, environ=environ)
    assert caught.value.code == 2
    return capsys.readouterr().err


def test_the_delivery_defaults_are_those_of_the_api_contract():
    settings = Settings.from_args([], environ={})

    assert settings.fail_rate == 0.0
    assert settings.lease_seconds == 30.0
    assert settings.max_attempts == 3
    assert settings.retry_backoff == 1.0
    assert settings.retention_seconds == 3600.0


@pytest.mark.parametrize(("flag", "env", "text", "value", "name"), CASES, ids=CASE_IDS)
def test_each_delivery_flag_is_parsed(flag, env, text, value, name):
    settings = Settings.from_args([flag, text], environ={})

    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is type(value)


@pytest.mark.parametrize(("flag", "env", "text", "value", "name"), CASES, ids=CASE_IDS)
def test_each_delivery_variable_is_used_when_its_flag_is_absent(flag, env, text, value, name):
    settings = Settings.from_args([], environ={env: text})

    assert getattr(settings, name) == value


@pytest.mark.parametrize(("flag", "env", "text", "value", "name"), CASES, ids=CASE_IDS)
def test_each_delivery_flag_wins_over_its_variable(flag, env, text, value, name):
    settings = Settings.from_args([f"{flag}={text}"], environ={env: "not even a number"})

    assert getattr(settings, name) == value


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["--fail-rate", "0"], "fail_rate", 0.0),
        (["--fail-rate", "1"], "fail_rate", 1.0),
        (["--lease-seconds", "1"], "lease_seconds", 1.0),
        (["--lease-seconds", "43200"], "lease_seconds", 43200.0),
        (["--max-attempts", "1"], "max_attempts", 1),
        (["--max-attempts", "1000"], "max_attempts", 1000),
        (["--retry-backoff", "0"], "retry_backoff", 0.0),
        (["--retry-backoff", "3600"], "retry_backoff", 3600.0),
        (["--retention-seconds", "0"], "retention_seconds", 0.0),
        (["--retention-seconds", "864000"], "retention_seconds", 864000.0),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_the_limits_of_each_delivery_flag_are_accepted(argv, field, value):
    assert getattr(Settings.from_args(argv, environ={}), field) == value


INVALID = [
    ("--fail-rate", "1.01"),
    ("--fail-rate", "-0.1"),
    ("--fail-rate", "nan"),
    ("--fail-rate", "half"),
    ("--lease-seconds", "0"),
    ("--lease-seconds", "0.5"),
    ("--lease-seconds", "43201"),
    ("--lease-seconds", "inf"),
    ("--lease-seconds", "nan"),
    ("--max-attempts", "0"),
    ("--max-attempts", "1001"),
    ("--max-attempts", "2.5"),
    ("--max-attempts", "-3"),
    ("--retry-backoff", "-1"),
    ("--retry-backoff", "3601"),
    ("--retry-backoff", "nan"),
    ("--retention-seconds", "-1"),
    ("--retention-seconds", "inf"),
    ("--retention-seconds", "nan"),
    ("--retention-seconds", "forever"),
]


@pytest.mark.parametrize(("flag", "text"), INVALID, ids=[" ".join(case) for case in INVALID])
def test_an_invalid_delivery_flag_exits_with_status_2_naming_the_flag(capsys, flag, text):
    err = exit_message(capsys, [flag, text], environ={})

    assert f"argument {flag}:" in err
    assert text in err


@pytest.mark.parametrize(("flag", "text"), INVALID, ids=[" ".join(case) for case in INVALID])
def test_an_invalid_delivery_variable_exits_with_status_2_naming_the_variable(capsys, flag, text):
    env = "TQ_" + flag.removeprefix("--").replace("-", "_").upper()

    err = exit_message(capsys, [], environ={env: text})

    assert f"environment variable {env}" in err
    assert text in err


def test_settings_policy_maps_the_delivery_settings_onto_the_store_policy():
    settings = Settings.from_args(
        [
            "--lease-seconds=45",
            "--max-attempts=9",
            "--retry-backoff=0.5",
            "--retention-seconds=120",
            "--fail-rate=0.3",
        ],
        environ={},
    )

    assert Policy.of(settings) == Policy(
        lease_seconds=45.0, max_attempts=9, retry_backoff=0.5, retention_seconds=120.0
    )


def test_settings_policy_of_the_defaults_is_the_default_policy():
    assert Policy.of(Settings.from_args([], environ={})) == Policy()


def test_settings_policy_takes_values_from_the_environment_too():
    environ = {"TQ_LEASE_SECONDS": "5", "TQ_MAX_ATTEMPTS": "1", "TQ_RETRY_BACKOFF": "0"}

    policy = Policy.of(Settings.from_args([], environ=environ))

    assert (policy.lease_seconds, policy.max_attempts, policy.retry_backoff) == (5.0, 1, 0.0)
    assert policy.backoff(1) == 0.0


def test_the_policy_backoff_doubles_from_the_configured_base_and_is_capped_at_an_hour():
    policy = Policy.of(Settings.from_args(["--retry-backoff", "3"], environ={}))

    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == [3.0, 6.0, 12.0, 24.0]
    assert policy.backoff(20) == 3600.0
    assert Policy.of(Settings.from_args(["--retry-backoff", "3600"], environ={})).backoff(5) == 3600


def test_main_help_lists_every_delivery_flag_with_its_variable():
    completed = subprocess.run(
        [sys.executable, "main.py", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    help_text = " ".join(completed.stdout.split())
    for flag, env, *_ in CASES:
        entry = re.search(rf" {flag} \S+ (.*?)(?= --|$)", help_text)
        assert entry, f"{flag} missing from --help"
        assert f"env {env}" in entry.group(1), f"{flag} help does not name {env}"
        assert "default" in entry.group(1)


def test_main_refuses_a_bad_delivery_flag_with_exit_status_2():
    completed = subprocess.run(
        [sys.executable, "main.py", "--lease-seconds", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert completed.returncode == 2
    assert "--lease-seconds" in completed.stderr
