"""Shared fixtures: a clock tests move by hand, a store on it, and the app pytest-tornado serves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tornado_queue.config import Settings
from tornado_queue.server.app import make_app
from tornado_queue.server.simulation import SimulatedWorkers
from tornado_queue.storage import MemoryStore, Policy, SqliteStore
from tornado_queue.storage.redis import RedisStore
from tornado_queue.testing import RedisServer


class FakeClock:
    """Wall and monotonic time that move only when a test says so: time rules without sleeping."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def policy() -> Policy:
    return Policy(lease_seconds=30, max_attempts=3, retry_backoff=1.0, retention_seconds=3600)


STORES = ["memory", "sqlite", "redis"]
"""Every backend runs the same contract tests: a behaviour differs between stores only where
the README says so."""

HTTP_MODES = ["memory-inline", "memory-executor", "sqlite", "redis"]
"""HTTP tests also run the memory store both ways handlers can call a store: inline on the
IOLoop, and on Tornado's thread-pool executor (as every blocking store, like SQLite, is)."""

STORE_CALLS = ["inline", "executor"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    names = metafunc.fixturenames
    if "store" in names and not getattr(metafunc.module, "OWN_STORE", False):
        modes = HTTP_MODES if "app" in names else STORES
        metafunc.parametrize("store", modes, indirect=True)
    elif "app" in names and "store_calls" not in _direct_params(metafunc):
        # A module with its own store fixture: run its HTTP tests in both call modes.
        metafunc.parametrize("store_calls", STORE_CALLS, indirect=True)


def _direct_params(metafunc: pytest.Metafunc) -> set[str]:
    return {
        name
        for marker in metafunc.definition.iter_markers("parametrize")
        for name in ([marker.args[0]] if isinstance(marker.args[0], str) else marker.args[0])
    }


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private redis-server on a free loopback port for the whole session."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def store(request: pytest.FixtureRequest, clock: FakeClock, policy: Policy, tmp_path: Path):
    """A store of each backend (see `STORES` and `HTTP_MODES`) on the test's clock."""
    mode = request.param
    if mode.startswith("memory"):
        memory = MemoryStore(policy, clock)
        memory.blocking = mode == "memory-executor"
        yield memory
        return
    if mode == "redis":
        if "io_loop" in request.fixturenames:
            # torn down after the store, so the store closes its connections on a live loop
            request.getfixturevalue("io_loop")
        shared = RedisStore(request.getfixturevalue("redis_url"), policy, clock)
        shared.flush()
        yield shared
        shared.flush()
        shared.close()
        return
    sqlite = SqliteStore(tmp_path / "tasks.db", policy, clock)
    yield sqlite
    sqlite.close()


@pytest.fixture
def memory_store(clock: FakeClock, policy: Policy) -> MemoryStore:
    """For tests of the memory store's own internals."""
    return MemoryStore(policy, clock)


@pytest.fixture
def pools():
    """Pools made by a test; any still running at the end are stopped so threads never leak."""
    made: list[SimulatedWorkers] = []
    yield made
    for pool in made:
        pool.stop(timeout=5)


@pytest.fixture
def settings() -> Settings:
    return Settings(max_body_bytes=64 * 1024)


@pytest.fixture
def store_calls(request: pytest.FixtureRequest, store) -> str:
    """How handlers reach the store: "inline" on the IOLoop, or "executor" on a pool thread."""
    if hasattr(request, "param"):
        store.blocking = request.param == "executor"
        return request.param
    return "executor" if store.blocking else "inline"


@pytest.fixture
def app(store, settings, store_calls):
    """The application pytest-tornado serves to `http_client` / `base_url`; in "executor" mode
    concurrent requests really call the store from several threads."""
    return make_app(store, settings)


@pytest.fixture
def http_server(http_server, app):
    """pytest-tornado's server. It looks `app` up by name at run time, which hides it (and the
    `store_calls` parameter) from collection; requesting `app` here makes every HTTP test run
    in both modes."""
    return http_server
