"""Schemathesis runs every operation of `/openapi.json` against a real server (memory store):
no 5xx, and every status, content type, header and body is one the document declares.

Bounded for CI: a fixed seed, few examples per operation, and long-polls capped (a valid
`wait` could otherwise hold a request for 30 s).
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tornado_queue import openapi
from tornado_queue.testing import ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]
MAX_EXAMPLES = 30
MAX_TEST_WAIT = 0.05
"""Seconds a generated long-poll may wait; enough to take the parked path, short enough to keep
the run bounded."""

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": 20261128,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        # Stateful runs need links between operations, which the document does not declare.
        "phases": {"stateful": {"enabled": False}},
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("schemathesis") / "server.log"
    with ServerProcess(log, "--host", "127.0.0.1", "--backend", "memory") as process:
        yield process


# Loaded in-process: schemathesis 4.32.5's lazy `from_fixture` loader does not run under
# pytest 9 (it sets `Node._nodeid`, which pytest 9 removed). That the server serves this very
# document is tests/test_openapi.py's business.
schema = schemathesis.openapi.from_dict(openapi.document(), config=CONFIG)


def cap_wait(case: schemathesis.Case) -> None:
    """A valid long-poll lasts at most `MAX_TEST_WAIT`; invalid values are sent as generated."""
    raw = (case.query or {}).get("wait")
    try:
        seconds = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return
    if seconds > MAX_TEST_WAIT:
        case.query["wait"] = MAX_TEST_WAIT


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_keeps_to_the_document(
    case: schemathesis.Case, server: ServerProcess
) -> None:
    cap_wait(case)
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=10)


def test_the_server_logged_no_exception(server: ServerProcess) -> None:
    # Runs after the operations (same module, file order): a 5xx is caught above, but an
    # exception a handler swallowed into a 4xx would only show in the log.
    assert "Traceback" not in server.log(), server.log()[-3000:]
