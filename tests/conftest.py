"""Shared fixtures: a clock tests move by hand, a store on it, and the app pytest-tornado serves."""

from __future__ import annotations

import pytest

from tornado_queue.app import make_app
from tornado_queue.config import Settings
from tornado_queue.storage import MemoryStore, Policy
from tornado_queue.workers import WorkerPool


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


@pytest.fixture
def store(clock: FakeClock, policy: Policy) -> MemoryStore:
    return MemoryStore(policy, clock)


@pytest.fixture
def pools():
    """Pools made by a test; any still running at the end are stopped so threads never leak."""
    made: list[WorkerPool] = []
    yield made
    for pool in made:
        pool.stop(timeout=5)


@pytest.fixture
def settings() -> Settings:
    return Settings(max_body_bytes=64 * 1024)


STORE_CALLS = ["inline", "executor"]
"""How handlers reach the store: on the IOLoop itself, or on Tornado's default thread-pool
executor (`ApiHandler.call_store` with a store that declares itself `blocking`)."""


@pytest.fixture(params=STORE_CALLS)
def store_calls(request: pytest.FixtureRequest) -> str:
    """Every HTTP test runs twice: with store calls inline and in the executor."""
    return request.param


@pytest.fixture
def app(store, settings, store_calls):
    """The application pytest-tornado serves to `http_client` / `base_url`.

    In "executor" mode the store is marked blocking, so every store call of every request runs
    on a pool thread: concurrent requests then really call the store from several threads.
    """
    if store_calls == "executor":
        store.blocking = True
    return make_app(store, settings)


@pytest.fixture
def http_server(http_server, app):
    """pytest-tornado's server. It looks `app` up by name at run time, which hides it (and the
    `store_calls` parameter) from collection; requesting `app` here makes every HTTP test run
    in both modes."""
    return http_server
