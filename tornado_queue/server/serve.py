"""Start the server, run until SIGTERM/SIGINT, and shut down in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from tornado_queue import logs
from tornado_queue.config import Settings
from tornado_queue.errors import TokenError
from tornado_queue.server import store_calls
from tornado_queue.server.app import make_app
from tornado_queue.server.auth import Tokens
from tornado_queue.server.bodywatch import BodyDeadlines
from tornado_queue.server.services import RequestTracker
from tornado_queue.server.simulation import SimulatedWorkers
from tornado_queue.server.waiters import Waiters
from tornado_queue.storage import Policy, Store, create_store

log = logging.getLogger("tornado_queue")
# Start-up and shutdown lines are shown at every --log-level: with --port 0 the start-up line
# is the only place the port is told.
lifecycle_log = logging.getLogger("tornado_queue.lifecycle")
lifecycle_log.setLevel(logging.INFO)

SHUTDOWN_GRACE_SECONDS = 10.0
REAP_INTERVAL_MS = 500
"""How often an idle server applies due leases, retries and retention (see storage.base)."""
BODY_DISCARD_ALLOWANCE = 8 << 20
"""Bytes past --max-body-bytes the server still reads (and discards) so an oversized request
gets its JSON 413 on a healthy connection; beyond that Tornado closes the connection."""


def main(argv: Sequence[str] | None = None) -> int:
    """`python main.py FLAGS` and `python -m tornado_queue serve FLAGS`."""
    settings = Settings.from_args(argv)
    try:
        Tokens.configured(settings.auth_token, settings.tokens_file)
    except TokenError as exc:  # a bad tokens file stops the start-up, naming its line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    return asyncio.run(serve(settings))


def configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


def url_for(host: str, port: int, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
    return f"{'https' if tls else 'http'}://{shown}:{port}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from --certfile/--keyfile, or None for plain HTTP. Raises
    `ssl.SSLError` or `OSError` when the files cannot be read or do not match."""
    if not settings.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


@dataclass
class Running:
    """What a started server is made of, in the order it is stopped."""

    server: HTTPServer
    tracker: RequestTracker
    bodies: BodyDeadlines
    waiters: Waiters
    reaper: PeriodicCallback
    pool: SimulatedWorkers
    store: Store


async def serve(settings: Settings, store: Store | None = None) -> int:
    """Serve until a shutdown signal; return the process exit code."""
    if store is None:
        store = create_store(
            settings.backend,
            Policy.of(settings),
            db=settings.db,
            sync=settings.sqlite_sync,
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
        )
    try:
        tls = tls_context(settings)
    except (OSError, ssl.SSLError) as exc:
        lifecycle_log.error("cannot load --certfile/--keyfile: %s", exc)
        store.close()
        return 2
    app = make_app(store, settings)
    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as exc:
        lifecycle_log.error("cannot listen on %s: %s", url_for(settings.host, settings.port), exc)
        store.close()
        return 1
    server = HTTPServer(
        app,
        max_body_size=settings.max_body_bytes + BODY_DISCARD_ALLOWANCE,
        ssl_options=tls,
        # A client that stalls while sending headers (or idles between requests) is cut off,
        # so slow or hostile clients cannot hold connections for ever; a stalled body is the
        # app's (bodywatch.BodyDeadlines).
        idle_connection_timeout=settings.idle_timeout,
        max_header_size=settings.max_header_bytes,
    )
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    pool = SimulatedWorkers(
        store,
        settings.workers,
        settings.work_seconds,
        settings.fail_rate,
        queues=settings.worker_queues,
    )
    pool.start()
    reaper = PeriodicCallback(lambda: store_calls.reap(store), REAP_INTERVAL_MS)
    reaper.start()
    services = app.services
    running = Running(
        server, services.tracker, services.body_deadlines, services.waiters, reaper, pool, store
    )

    shutdown = asyncio.Event()
    install_signal_handlers(shutdown)
    # Everything allocated so far lives as long as the process: keep the GC from rescanning it.
    gc.freeze()
    lifecycle_log.info(
        "tornado_queue listening on %s (backend=%s, workers=%d)",
        url_for(settings.host, port, tls is not None),
        settings.backend,
        settings.workers,
    )
    await shutdown.wait()
    await shut_down(running)
    return 0


def install_signal_handlers(shutdown: asyncio.Event) -> None:
    """The first SIGTERM/SIGINT starts a graceful shutdown; a second one exits at once."""
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if shutdown.is_set():
            lifecycle_log.warning("second %s: exiting now", signal.Signals(signum).name)
            os._exit(1)
        shutdown.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


async def shut_down(running: Running) -> None:
    """Stop accepting, let requests in progress finish, stop workers (their tasks go back),
    then close the store."""
    lifecycle_log.info("shutting down: no longer accepting connections")
    running.server.stop()
    running.reaper.stop()
    running.waiters.close()  # long-polling consumers get their answer now, not in 30 s
    if not await wait_for_requests(running.tracker, running.bodies, SHUTDOWN_GRACE_SECONDS):
        log.warning("requests still in progress after %.0fs; closing", SHUTDOWN_GRACE_SECONDS)
    try:
        await asyncio.wait_for(running.server.close_all_connections(), SHUTDOWN_GRACE_SECONDS)
    except TimeoutError:
        log.warning("connections still open after %.0fs; closing anyway", SHUTDOWN_GRACE_SECONDS)
    running.pool.stop(SHUTDOWN_GRACE_SECONDS)
    counts = running.store.stats()
    running.store.close()
    summary = ", ".join(f"{status.value}={count}" for status, count in counts.items())
    lifecycle_log.info("stopped cleanly: %s", summary)


async def wait_for_requests(tracker: RequestTracker, bodies: BodyDeadlines, timeout: float) -> bool:
    """Wait until no request is in progress (handled, or still receiving its body); False if
    some still are after `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def busy() -> bool:
        return tracker.active > 0 or bodies.arriving() > 0

    while busy() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    return not busy()
