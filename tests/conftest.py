"""Shared fixtures: a clock tests move by hand, a store on it, and the app pytest-tornado serves."""

from __future__ import annotations

import pytest

from tornado_queue.app import make_app
from tornado_queue.config import Settings
from tornado_queue.storage import MemoryStore, Policy


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
def settings() -> Settings:
    return Settings(max_body_bytes=64 * 1024)


@pytest.fixture
def app(store, settings):
    """The application pytest-tornado serves to `http_client` / `base_url`."""
    return make_app(store, settings)
