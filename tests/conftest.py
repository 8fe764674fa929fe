"""Shared fixtures: a store, settings and the Tornado app that pytest-tornado serves."""

from __future__ import annotations

import pytest

from tornado_queue.app import make_app
from tornado_queue.config import Settings
from tornado_queue.storage import MemoryStore


class FakeClock:
    """A wall clock tests move by hand, so time-based rules are tested without sleeping."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock)


@pytest.fixture
def settings() -> Settings:
    return Settings(max_body_bytes=64 * 1024)


@pytest.fixture
def app(store, settings):
    """The application pytest-tornado serves to `http_client` / `base_url`."""
    return make_app(store, settings)
