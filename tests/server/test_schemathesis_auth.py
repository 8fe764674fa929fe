"""Schemathesis again, against a server with a token: with the admin token every operation
still keeps to the document, and `ignored_auth` checks that each operation marked with
`bearerAuth` really refuses a request without it or with a wrong one.

Smaller than tests/server/test_schemathesis.py (which runs with auth off): a few examples per
operation, no stateful workflows.
"""

from __future__ import annotations

from collections.abc import Iterator

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi.checks import ignored_auth

from tests.server.test_schemathesis import (
    CHECKS,
    SEED,
    fit_query_numbers,
    served_document,
    timeout_for,
)
from tornado_queue.testing import ServerProcess

TOKEN = "schemathesis-admin-token-0123456789"
MAX_EXAMPLES = 5

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    }
)
schema = schemathesis.openapi.from_dict(served_document(auth=True), config=CONFIG)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("schemathesis-auth") / "server.log"
    with ServerProcess(log, "--host", "127.0.0.1", "--auth-token", TOKEN) as process:
        yield process


@schema.parametrize()
@hypothesis.settings(
    deadline=None,
    derandomize=True,
    database=None,
    max_examples=MAX_EXAMPLES,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_with_the_admin_token_every_operation_keeps_to_the_document_and_enforces_auth(
    case: schemathesis.Case, server: ServerProcess
) -> None:
    fit_query_numbers(case)
    case.call_and_validate(
        base_url=server.url,
        checks=[*CHECKS, ignored_auth],
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=timeout_for(case),
    )


def test_the_server_logged_no_exception_and_no_token(server: ServerProcess) -> None:
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert TOKEN not in log
