"""One warning when the store stops answering and one line when it is back, instead of a
traceback for every request refused in between."""

from __future__ import annotations

import logging
import threading
import time

from tornado_queue.errors import StoreFailure

log = logging.getLogger("tornado_queue.store")


class OutageLog:
    """Tracks whether the store is answering. `failed` is called with each `StoreFailure`,
    `answered` after each call that went through; only the changes are logged.

    Thread-safe: HTTP handlers, the reaper and `--workers` threads all report here. The common
    case (the store answers, no outage) reads one attribute and takes no lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, failure: StoreFailure) -> None:
        with self._lock:
            self._failures += 1
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
        log.warning("the store stopped answering (%s); answering 503 until it is back", failure)

    def answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is None:
                return
            seconds = time.monotonic() - self._down_since
            failures, self._down_since, self._failures = self._failures, None, 0
        log.warning(
            "the store is answering again after %.1f s; store calls failed meanwhile: %d",
            seconds,
            failures,
        )
