"""A store whose disk or server fails: 503 problem JSON with Retry-After, never a 500."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.handlers.helpers import assert_problem, request
from tornado_queue.storage import SqliteStore
from tornado_queue.storage.redis import RedisStore
from tornado_queue.testing import RedisServer

OWN_STORE = True  # each test below builds the failing store it needs
pytestmark = pytest.mark.parametrize("store_calls", ["executor"], indirect=True)


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest, policy, clock, tmp_path: Path, monkeypatch):
    """A Redis store whose server is not there, or a SQLite store whose disk fails."""
    if request.param == "redis":
        # A Redis that was there when the server started (the store subscribed to its ready
        # channel) and then went away.
        server = RedisServer(tmp_path)
        failing = RedisStore(server.url, policy, clock)
        failing.add_ready_listener(lambda _queue, _count: None)
        server.stop()
        yield failing
        failing.close()
        return
    failing = SqliteStore(tmp_path / "tasks.db", policy, clock)

    def disk_error(*_args, **_kwargs):
        raise sqlite3.OperationalError("disk I/O error")

    for name in ("enqueue_many", "dequeue_many", "get", "stats", "queues", "totals", "view"):
        monkeypatch.setattr(failing, name, disk_error)
    yield failing
    failing.close()


@pytest.mark.gen_test
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/tasks", {"payload": {"n": 1}}),
        ("POST", "/tasks/dequeue", None),
        ("GET", "/tasks/6f1f5a8e-0000-4000-8000-000000000000", None),
        ("GET", "/queue/stats", None),
        ("GET", "/queue/view", None),
        ("GET", "/metrics", None),
        ("GET", "/healthz", None),
    ],
)
async def test_a_failing_store_is_a_503_with_retry_after(http_client, base_url, method, path, body):
    response = await request(http_client, base_url, method, path, body)

    problem = assert_problem(response, 503)
    assert "the store is not answering" in problem["detail"]
    assert response.headers["Retry-After"] == "1"
