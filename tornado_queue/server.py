"""Start the server, run until SIGTERM/SIGINT, and shut down in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from .app import make_app
from .config import Settings
from .storage import Store, create_store
from .workers import WorkerPool

log = logging.getLogger("tornado_queue")

SHUTDOWN_GRACE_SECONDS = 10.0
REAP_INTERVAL_MS = 500
"""How often an idle server applies due leases, retries and retention (see storage.base)."""
BODY_DISCARD_ALLOWANCE = 8 << 20
"""Bytes past --max-body-bytes the server still reads (and discards) so an oversized request
gets its JSON 413 on a healthy connection; beyond that Tornado closes the connection."""


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def url_for(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


async def serve(settings: Settings, store: Store | None = None) -> int:
    """Serve until a shutdown signal; return the process exit code."""
    store = store or create_store(settings.backend, settings.policy())
    server = HTTPServer(
        make_app(store, settings),
        max_body_size=settings.max_body_bytes + BODY_DISCARD_ALLOWANCE,
    )
    sockets = bind_sockets(settings.port, settings.host)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    pool = WorkerPool(store, settings.workers, settings.work_seconds, settings.fail_rate)
    pool.start()
    # Reaping the memory store takes microseconds, so it runs inline on the IOLoop.
    reaper = PeriodicCallback(store.reap, REAP_INTERVAL_MS)
    reaper.start()

    shutdown = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, shutdown.set)
    # Everything allocated so far lives as long as the process: keep the GC from rescanning it.
    gc.freeze()
    log.info(
        "tornado_queue listening on %s (backend=%s, workers=%d)",
        url_for(settings.host, port),
        settings.backend,
        settings.workers,
    )
    await shutdown.wait()
    reaper.stop()
    await shut_down(server, pool, store)
    return 0


async def shut_down(server: HTTPServer, pool: WorkerPool, store: Store) -> None:
    """Stop accepting, let connections finish, stop workers (releasing their tasks), close."""
    log.info("shutting down: no longer accepting connections")
    server.stop()
    try:
        await asyncio.wait_for(server.close_all_connections(), SHUTDOWN_GRACE_SECONDS)
    except TimeoutError:
        log.warning("connections still open after %.0fs; closing anyway", SHUTDOWN_GRACE_SECONDS)
    pool.stop(SHUTDOWN_GRACE_SECONDS)
    counts = store.stats()
    store.close()
    summary = ", ".join(f"{status.value}={count}" for status, count in counts.items())
    log.info("stopped cleanly: %s", summary)
