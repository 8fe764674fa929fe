"""A store whose disk or server fails: 503 problem JSON with Retry-After, never a 500, and an
honest one. A failure before anything was applied is `store-unavailable` (a retry is safe);
a failure while the operation may have been applied is re-applied by the server when that is
safe (fenced commands, keyed enqueues) and otherwise `outcome-unknown`."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, request
from tornado_queue.server.handlers import base
from tornado_queue.storage import SqliteStore
from tornado_queue.storage.redis import RedisStore
from tornado_queue.testing import RedisServer

OWN_STORE = True  # each test below builds the failing store it needs
pytestmark = pytest.mark.parametrize("store_calls", ["executor"], indirect=True)

UNAVAILABLE = "urn:tornado-queue:problem:store-unavailable"
OUTCOME_UNKNOWN = "urn:tornado-queue:problem:outcome-unknown"
OUTAGE_LOG = "tornado_queue.store"


class FailingDisk:
    """Stands in for an SQLite store's connection and fails the statements `fails(sql)`
    picks, either before running them or, with `after`, once they have run (a commit that
    reached the disk but whose success was never reported)."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real
        self.fails: Callable[[str], bool] = lambda _sql: False
        self.after = False
        self.times = 0  # failures left; negative: for ever

    def execute(self, sql: str, parameters: Any = ()) -> sqlite3.Cursor:
        if self.times and self.fails(sql):
            self.times -= 1
            if not self.after:
                raise sqlite3.OperationalError("disk I/O error")
            self.real.execute(sql, parameters)
            raise sqlite3.OperationalError("disk I/O error")
        return self.real.execute(sql, parameters)

    def fail(self, which: Callable[[str], bool], *, after: bool = False, times: int = -1) -> None:
        self.fails, self.after, self.times = which, after, times

    def close(self) -> None:
        self.real.close()


def commits(sql: str) -> bool:
    return sql == "COMMIT"


@pytest.fixture
def sqlite_store(policy, clock, tmp_path: Path):
    store = SqliteStore(tmp_path / "tasks.db", policy, clock)
    store._db = FailingDisk(store._db)  # type: ignore[assignment]
    yield store
    store.close()


@pytest.fixture
def disk(sqlite_store) -> FailingDisk:
    return sqlite_store._db


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest, policy, clock, tmp_path: Path):
    """A Redis store whose server is not there, a SQLite store whose disk fails, or (for the
    tests that ask for `disk`) a SQLite store that fails only when told to."""
    if "disk" in request.fixturenames:
        yield request.getfixturevalue("sqlite_store")
        return
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
    failing = request.getfixturevalue("sqlite_store")
    failing._db.fail(lambda _sql: True)
    yield failing


@pytest.fixture
def quick_reapply(monkeypatch) -> None:
    monkeypatch.setattr(base, "REAPPLY_SECONDS", 0.3)


on_demand = pytest.mark.parametrize("store", ["sqlite-on-demand"], indirect=True)
"""For the tests whose SQLite disk fails only when they say so (they ask for `disk`)."""


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
        ("PUT", "/tasks/6f1f5a8e-0000-4000-8000-000000000000/complete", {"lease_id": "x"}),
    ],
)
async def test_a_store_that_cannot_be_reached_is_a_503_saying_nothing_was_changed(
    http_client, base_url, method, path, body
):
    response = await request(http_client, base_url, method, path, body)

    problem = assert_problem(response, 503)
    assert "the store is not answering" in problem["detail"]
    assert response.headers["Retry-After"] == "1"
    if path not in ("/metrics", "/healthz"):
        assert problem["type"] == UNAVAILABLE
        assert "nothing was changed" in problem["detail"]


async def leased_task(http_client, base_url) -> dict[str, Any]:
    assert_json(await request(http_client, base_url, "POST", "/tasks", {"payload": {}}), 201)
    return assert_json(await request(http_client, base_url, "POST", "/tasks/dequeue"), 200)


async def get_task(http_client, base_url, task_id: str) -> dict[str, Any]:
    return assert_json(await request(http_client, base_url, "GET", f"/tasks/{task_id}"), 200)


# From here on the SQLite disk fails only when a test says so.


@pytest.mark.gen_test
@on_demand
@pytest.mark.parametrize("applied", [True, False], ids=["commit-applied", "commit-refused"])
async def test_a_fenced_complete_whose_commit_failed_is_applied_again_and_answers_the_truth(
    http_client, base_url, disk, applied
):
    task = await leased_task(http_client, base_url)
    disk.fail(commits, after=applied, times=1)

    response = await request_complete(http_client, base_url, task, {"r": 1})

    done = assert_json(response, 200)
    assert done["status"] == "completed"
    assert done["result"] == {"r": 1}
    assert (await get_task(http_client, base_url, task["id"]))["result"] == {"r": 1}


async def request_complete(http_client, base_url, task, result) -> Any:
    body = {"result": result, "lease_id": task["lease_id"]}
    return await request(http_client, base_url, "PUT", f"/tasks/{task['id']}/complete", body)


@pytest.mark.gen_test
@on_demand
async def test_a_fenced_fail_whose_commit_was_lost_counts_one_attempt(http_client, base_url, disk):
    task = await leased_task(http_client, base_url)
    disk.fail(commits, after=True, times=1)

    body = {"error": "boom", "lease_id": task["lease_id"]}
    response = await request(http_client, base_url, "PUT", f"/tasks/{task['id']}/fail", body)

    failed = assert_json(response, 200)
    assert failed["status"] == "scheduled"
    assert failed["attempts"] == 1
    assert (
        failed["available_at"]
        == (await get_task(http_client, base_url, task["id"]))["available_at"]
    ), "a second backoff was applied"


@pytest.mark.gen_test
@on_demand
async def test_a_fenced_complete_whose_store_stays_down_is_a_503_outcome_unknown(
    http_client, base_url, disk, quick_reapply
):
    task = await leased_task(http_client, base_url)
    disk.fail(commits, after=True)

    response = await request_complete(http_client, base_url, task, 1)

    problem = assert_problem(response, 503)
    assert problem["type"] == OUTCOME_UNKNOWN
    assert "may have been applied" in problem["detail"]
    assert "lease_id" in problem["detail"]
    disk.fail(commits, times=0)
    # Sent again once the store is back, it is answered as the first time.
    assert assert_json(await request_complete(http_client, base_url, task, 2), 200)["result"] == 1


@pytest.mark.gen_test
@on_demand
async def test_a_dequeue_whose_commit_was_lost_is_not_applied_again_and_says_so(
    http_client, base_url, disk
):
    for n in range(2):
        body = {"payload": {"n": n}}
        assert_json(await request(http_client, base_url, "POST", "/tasks", body), 201)
    disk.fail(commits, after=True, times=1)

    response = await request(http_client, base_url, "POST", "/tasks/dequeue")

    problem = assert_problem(response, 503)
    assert problem["type"] == OUTCOME_UNKNOWN
    assert "returns to the queue when its lease expires" in problem["detail"]
    stats = assert_json(await request(http_client, base_url, "GET", "/queue/stats"), 200)
    assert (stats["processing"], stats["pending"]) == (1, 1), "dequeue was applied twice"


@pytest.mark.gen_test
@on_demand
@pytest.mark.parametrize("keyed", [True, False], ids=["idempotency-key", "no-key"])
async def test_an_enqueue_whose_commit_was_lost_is_applied_again_only_with_a_key(
    http_client, base_url, disk, keyed
):
    disk.fail(commits, after=True, times=1)
    headers = {"Idempotency-Key": "order-7"} if keyed else {}

    response = await request(
        http_client, base_url, "POST", "/tasks", {"payload": {"n": 1}}, headers=headers
    )

    stats = assert_json(await request(http_client, base_url, "GET", "/queue/stats"), 200)
    assert stats["pending"] == 1, "the task was created twice, or not at all"
    if keyed:
        assert assert_json(response, 200)["id"], "the replay of the first application"
    else:
        problem = assert_problem(response, 503)
        assert problem["type"] == OUTCOME_UNKNOWN
        assert "Idempotency-Key" in problem["detail"]


@pytest.mark.gen_test
@on_demand
async def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    http_client, base_url, disk, caplog
):
    disk.fail(lambda _sql: True)
    with caplog.at_level(logging.WARNING, logger="tornado_queue"):
        for _ in range(5):
            response = await request(http_client, base_url, "GET", "/queue/stats")
            assert_problem(response, 503)
        disk.fail(commits, times=0)
        assert_json(await request(http_client, base_url, "GET", "/queue/stats"), 200)

    outage = [record.getMessage() for record in caplog.records if record.name == OUTAGE_LOG]
    assert len(outage) == 2, outage
    assert "stopped answering (OperationalError: disk I/O error)" in outage[0]
    assert "answering again" in outage[1]
    assert "store calls failed meanwhile: 5" in outage[1]
    assert not any(record.exc_info for record in caplog.records), "a traceback was logged"
