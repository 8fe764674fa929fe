"""The abuse and overload flags: defaults, environment variables and refusals."""

from __future__ import annotations

import pytest

from tornado_queue.config import Settings
from tornado_queue.storage import Policy


def test_defaults_keep_the_api_same_origin_unlimited_in_rate_and_bounded_in_waiters():
    settings = Settings.from_args([], environ={})

    assert settings.cors_origin == ""
    assert settings.rate_limit == 0
    assert settings.max_waiters == 10_000
    assert settings.max_header_bytes == 65_536


def test_flags_and_variables_set_them():
    settings = Settings.from_args(
        ["--rate-limit", "50", "--cors-origin", "https://app.example.com:8443"],
        environ={"TQ_MAX_WAITERS": "3", "TQ_MAX_PENDING": "100", "TQ_MAX_TASKS": "1000"},
    )

    assert (settings.rate_limit, settings.cors_origin) == (50, "https://app.example.com:8443")
    assert (settings.max_waiters, settings.max_pending, settings.max_tasks) == (3, 100, 1000)
    assert Policy.of(settings).max_pending == 100


@pytest.mark.parametrize(
    "origin", ["*", "app.example.com", "https://app.example.com/", "javascript:alert(1)"]
)
def test_anything_but_one_origin_is_refused(capsys, origin):
    with pytest.raises(SystemExit) as exit_info:
        Settings.from_args(["--cors-origin", origin], environ={})

    assert exit_info.value.code == 2
    assert "--cors-origin" in capsys.readouterr().err
