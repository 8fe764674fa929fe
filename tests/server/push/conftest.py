"""The push tests' shared fixture: the app's pusher, running."""

from __future__ import annotations

import pytest


@pytest.fixture
def pusher(app, io_loop):
    """The app's pusher, running as `serve` runs it."""
    running = app.services.pusher
    assert running is not None

    async def start() -> None:
        running.start()

    io_loop.run_sync(start)
    yield running
    io_loop.run_sync(lambda: running.stop(0.0))
