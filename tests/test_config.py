"""Settings.from_args: flags, TQ_* environment variables, precedence and refusals."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tornado_queue.config import Settings

# flag, environment variable, a valid non-default value as text, the parsed value, the field
CASES = [
    ("--host", "TQ_HOST", "0.0.0.0", "0.0.0.0", "host"),
    ("--port", "TQ_PORT", "9123", 9123, "port"),
    ("--backend", "TQ_BACKEND", "memory", "memory", "backend"),
    ("--workers", "TQ_WORKERS", "4", 4, "workers"),
    ("--work-seconds", "TQ_WORK_SECONDS", "0.25", 0.25, "work_seconds"),
    ("--max-body-bytes", "TQ_MAX_BODY_BYTES", "2048", 2048, "max_body_bytes"),
    ("--log-level", "TQ_LOG_LEVEL", "debug", "debug", "log_level"),
]
CASE_IDS = [case[0] for case in CASES]


def test_defaults_apply_without_flags_or_environment():
    settings = Settings.from_args([], environ={})

    assert settings == Settings(
        host="127.0.0.1",
        port=8000,
        backend="memory",
        workers=0,
        work_seconds=0.5,
        max_body_bytes=1 << 20,
        log_level="info",
    )
    assert settings == Settings()


def test_unrelated_environment_variables_are_ignored():
    settings = Settings.from_args([], environ={"PORT": "1", "TQ_UNKNOWN": "x", "HOST": "h"})

    assert settings == Settings()


@pytest.mark.parametrize(("flag", "env", "text", "value", "name"), CASES, ids=CASE_IDS)
def test_each_flag_is_parsed(flag, env, text, value, name):
    settings = Settings.from_args([flag, text], environ={})

    assert getattr(settings, name) == value
    assert type(getattr(settings, name)) is type(value)


def test_flags_are_accepted_in_the_equals_form_and_together():
    settings = Settings.from_args(
        ["--port=0", "--workers=256", "--work-seconds=0", "--max-body-bytes=1", "--host=::1"],
        environ={},
    )

    assert (settings.port, settings.workers, settings.work_seconds) == (0, 256, 0.0)
    assert (settings.max_body_bytes, settings.host) == (1, "::1")


@pytest.mark.parametrize(("flag", "env", "text", "value", "name"), CASES, ids=CASE_IDS)
def test_each_environment_variable_is_used_when_its_flag_is_absent(flag, env, text, value, name):
    settings = Settings.from_args([], environ={env: text})

    assert getattr(settings, name) == value


def test_a_flag_wins_over_its_environment_variable():
    environ = {"TQ_PORT": "9000", "TQ_WORKERS": "8", "TQ_HOST": "10.0.0.1"}

    settings = Settings.from_args(["--port", "9001", "--workers", "2"], environ=environ)

    assert settings.port == 9001
    assert settings.workers == 2
    assert settings.host == "10.0.0.1"  # no flag given: the environment still applies


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--port", "70000"], "--port"),
        (["--port", "abc"], "--port"),
        (["--port", "-1"], "--port"),
        (["--workers", "-1"], "--workers"),
        (["--workers", "257"], "--workers"),
        (["--work-seconds", "nan"], "--work-seconds"),
        (["--work-seconds", "inf"], "--work-seconds"),
        (["--work-seconds", "-0.5"], "--work-seconds"),
        (["--backend", "nope"], "--backend"),
        (["--max-body-bytes", "0"], "--max-body-bytes"),
        (["--max-body-bytes", "1.5"], "--max-body-bytes"),
        (["--log-level", "loud"], "--log-level"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_an_invalid_flag_value_exits_with_status_2_naming_the_flag(capsys, argv, named):
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(argv, environ={})

    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {named}:" in err
    assert argv[1] in err  # the offending value is echoed


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"TQ_PORT": "70000"}, "TQ_PORT"),
        ({"TQ_PORT": "abc"}, "TQ_PORT"),
        ({"TQ_WORKERS": "-1"}, "TQ_WORKERS"),
        ({"TQ_WORK_SECONDS": "nan"}, "TQ_WORK_SECONDS"),
        ({"TQ_BACKEND": "nope"}, "TQ_BACKEND"),
        ({"TQ_MAX_BODY_BYTES": "0"}, "TQ_MAX_BODY_BYTES"),
        ({"TQ_LOG_LEVEL": "loud"}, "TQ_LOG_LEVEL"),
    ],
    ids=lambda value: next(iter(value.items())) if isinstance(value, dict) else None,
)
def test_an_invalid_environment_value_exits_with_status_2_naming_the_variable(
    capsys, environ, named
):
    with pytest.raises(SystemExit) as caught:
        Settings.from_args([], environ=environ)

    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"environment variable {named}" in err
    assert environ[named] in err


def test_an_unknown_flag_exits_with_status_2(capsys):
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(["--frobnicate"], environ={})

    assert caught.value.code == 2
    assert "--frobnicate" in capsys.readouterr().err


def test_help_mentions_every_flag_with_its_environment_variable(capsys):
    with pytest.raises(SystemExit) as caught:
        Settings.from_args(["--help"], environ={})

    assert caught.value.code == 0
    out = capsys.readouterr().out
    entries = {flag: entry for flag, (_, entry) in help_entries(out).items()}
    # Each flag's own help entry names its variable.
    for flag, env, *_ in CASES:
        assert re.search(rf"\benv {env}\b", entries[flag]), f"{flag} help does not name {env}"
    assert "TQ_<NAME>" in " ".join(out.split())


def help_entries(out: str) -> dict[str, tuple[str, str]]:
    """Each flag of a --help text: the section it is listed in, and its entry's text (the
    flag's line and the indented lines under it, whitespace collapsed)."""
    entries: dict[str, tuple[str, list[str]]] = {}
    section, current = "", None
    for line in out.splitlines():
        started = re.match(r"  (--[a-z-]+)", line)
        if started:
            current = [line]
            entries[started[1]] = (section, current)
        elif current is not None and line.startswith(" " * 3):
            current.append(line)
        else:
            current = None
            if re.fullmatch(r"\S.*:", line):
                section = line[:-1]
    return {
        flag: (group, " ".join(" ".join(lines).split())) for flag, (group, lines) in entries.items()
    }


def test_settings_are_frozen():
    settings = Settings.from_args([], environ={})

    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]
