"""Schemathesis runs every operation of `/openapi.json` against a real server (memory store):
no 5xx, and every status, content type, header and body is one the document declares.

Bounded for CI: a fixed seed, few examples per operation, and long-polls capped (a valid
`wait` could otherwise hold a request for 30 s).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import hypothesis
import orjson
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.engine import Status, events
from schemathesis.engine.recorder import CheckFailureInfo
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from tornado_queue.limits import (
    MAX_LEASE_SECONDS,
    MAX_WAIT_SECONDS,
    MIN_LEASE_SECONDS,
)
from tornado_queue.server import openapi
from tornado_queue.server.app import ROUTES
from tornado_queue.testing import ServerProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    unsupported_method,
]
SEED = 20261128
MAX_EXAMPLES = 30
STATEFUL_SCENARIOS = 100
STATEFUL_STEPS = 10
MAX_TEST_WAIT = 0.05
"""Seconds a generated long-poll may wait; enough to take the parked path, short enough to keep
the run bounded."""

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    }
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("schemathesis") / "server.log"
    with ServerProcess(log, "--host", "127.0.0.1", "--backend", "memory") as process:
        yield process


def served_document(*, auth: bool = False) -> dict[str, Any]:
    """The document as a server with (`auth`) or without tokens serves it, parsed afresh:
    schemathesis gets its own copy and can never change the cached one other tests read."""
    return orjson.loads(openapi.document_bytes(ROUTES, auth=auth))


STREAMS = ["/events"]
"""Routes whose answer is a stream that stays open: schemathesis reads it until the request's
timeout, so these get a short one (and stateful workflows, which chain answers, leave them
out). Their events are checked against the document's event schema all the same."""
STREAM_SECONDS = 0.5


def timeout_for(case: schemathesis.Case) -> float:
    return STREAM_SECONDS if case.operation.path in STREAMS else 10


# Loaded in-process rather than from the server's URL: schemathesis 4.32.5's lazy
# `from_fixture` loader does not run under pytest 9 (it sets `Node._nodeid`, which pytest 9
# removed). tests/server/handlers/test_docs.py checks that /openapi.json serves these very bytes.
schema = schemathesis.openapi.from_dict(served_document(), config=CONFIG)


QUERY_NUMBERS = {"lease": (MIN_LEASE_SECONDS, MAX_LEASE_SECONDS), "wait": (0, MAX_WAIT_SECONDS)}


def fit_query_numbers(case: schemathesis.Case) -> None:
    """Valid `lease` and `wait` numbers written as the document says the server reads them.

    A valid long-poll is cut to `MAX_TEST_WAIT` to keep the run bounded, and valid numbers are
    written with 3 decimals. Out-of-range and malformed values (negative cases) are sent as
    generated.
    """
    for name, (low, high) in QUERY_NUMBERS.items():
        value = (case.query or {}).get(name)
        if isinstance(value, str):  # coverage cases come as written; cut long waits only
            try:
                value = float(value)
            except ValueError:
                continue
            if name == "lease" or not MAX_TEST_WAIT < value <= high:
                continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if not low <= value <= high:
            continue
        if name == "wait":
            value = min(value, MAX_TEST_WAIT)
        case.query[name] = f"{math.floor(value * 1000) / 1000:.3f}"


def make_ready(case: schemathesis.Case) -> None:
    """Tasks a workflow enqueues are ready at once (a generated delay is mostly months), so
    that the dequeue after them finds them and the commands meet processing tasks."""
    bodies = [case.body] if case.operation.path == "/tasks" else []
    if case.operation.path == "/tasks/batch" and isinstance(case.body, dict):
        bodies = case.body.get("tasks") if isinstance(case.body.get("tasks"), list) else []
    for body in bodies:
        if isinstance(body, dict) and isinstance(body.get("delay"), int | float):
            body["delay"] = 0


def drop_transfer_encoding(case: schemathesis.Case) -> None:
    """A generated `Transfer-Encoding` header other than `chunked` is refused by Tornado's
    HTTP/1 parser with a bare 400 before any handler runs (docs/operations.md, Known limits):
    that is the transport's answer, not the API's, so such a header is not sent."""
    for name in list(case.headers or {}):
        if name.lower() == "transfer-encoding":
            del case.headers[name]


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
    fit_query_numbers(case)
    drop_transfer_encoding(case)
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=timeout_for(case))


def test_workflows_along_the_links_keep_to_the_document(server: ServerProcess) -> None:
    """Chains of calls along the document's links (enqueue → dequeue → complete, fail,
    heartbeat → retry, delete), so commands also meet tasks that exist, in every state.

    Run by schemathesis's own engine rather than as a Hypothesis state machine under pytest:
    the server's state moves on between scenarios, which Hypothesis would call flaky data
    generation; the engine expects that of a live API."""
    config = schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "base-url": server.url,
            "request-timeout": 10,
            "generation": {"max-examples": STATEFUL_SCENARIOS, "database": "none"},
            "phases": {
                "examples": {"enabled": False},
                "coverage": {"enabled": False},
                "fuzzing": {"enabled": False},
                # Only the document's links: inferred ones dilute the workflows that matter.
                "stateful": {
                    "enabled": True,
                    "max-steps": STATEFUL_STEPS,
                    "inference": {"algorithms": []},
                },
            },
            "checks": {"enabled": False, **{check.__name__: {"enabled": True} for check in CHECKS}},
        }
    )
    workflows = schemathesis.openapi.from_dict(served_document(), config=config).exclude(
        path=STREAMS
    )

    @workflows.hook
    def map_case(context: Any, case: schemathesis.Case) -> schemathesis.Case:
        fit_query_numbers(case)
        make_ready(case)
        return case

    failures: list[str] = []
    scenarios = 0
    for event in schemathesis.engine.from_schema(workflows).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            for checks in event.recorder.checks.values():
                failures += [
                    describe(check.failure_info)
                    for check in checks
                    if check.status == Status.FAILURE and check.failure_info is not None
                ]
        elif isinstance(event, events.NonFatalError | events.FatalError):
            failures.append(f"error: {event.info.format()}")

    assert not failures, "\n".join(sorted(set(failures)))
    assert scenarios > 0


def describe(info: CheckFailureInfo) -> str:
    """A failed check: what it found, and the request that shows it."""
    failure = info.failure
    return f"{failure.operation}: {failure.title}: {failure.message}\n    {info.code_sample}"


def test_the_server_logged_no_exception(server: ServerProcess) -> None:
    # Runs after the operations (same module, file order): a 5xx is caught above, but an
    # exception a handler swallowed into a 4xx would only show in the log.
    assert "Traceback" not in server.log(), server.log()[-3000:]
