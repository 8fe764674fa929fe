"""Start the server, run until SIGTERM/SIGINT, and shut down in order."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import re
import signal
import sqlite3
import ssl
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets

from tornado_queue import logs
from tornado_queue.config import Settings
from tornado_queue.errors import StoreUnavailable, TokenError
from tornado_queue.server import store_calls
from tornado_queue.server.app import make_app
from tornado_queue.server.auth import Tokens
from tornado_queue.server.bodywatch import BodyDeadlines
from tornado_queue.server.event_hub import EventHub
from tornado_queue.server.push.dispatcher import Pusher
from tornado_queue.server.result_waiters import ResultWaiters
from tornado_queue.server.scheduler import Scheduler
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
PUSH_GRACE_SECONDS = 5.0
"""How long a stopping server lets its pushes in flight finish; it then releases their tasks,
so that another server pushes them at once instead of when their leases expire."""
REAP_INTERVAL_MS = 500
"""How often an idle server applies due leases, retries and retention (see storage.base)."""
BODY_DISCARD_ALLOWANCE = 8 << 20
"""Bytes past --max-body-bytes the server still reads (and discards) so an oversized request
gets its JSON 413 on a healthy connection; beyond that Tornado closes the connection."""


class StartupError(Exception):
    """A setting the server cannot start with: the message names the flag and the cause, in
    one line; `code` is the exit status."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def main(argv: Sequence[str] | None = None, prog: str = "python main.py") -> int:
    """`python main.py FLAGS` and `tornado-queue serve FLAGS` (`prog` names which)."""
    settings = Settings.from_args(argv, prog=prog)
    try:
        Tokens.configured(settings.auth_token, settings.tokens_file)
    except TokenError as exc:  # a bad tokens file stops the start-up, naming its line
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings)
    try:
        return asyncio.run(serve(settings))
    except StartupError as exc:  # the reader needs the cause, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return exc.code


def configure_logging(settings: Settings) -> None:
    logs.configure(settings.log_level, settings.log_format)


def url_for(host: str, port: int, tls: bool = False) -> str:
    shown = f"[{host}]" if ":" in host else (host or "0.0.0.0")
    return f"{'https' if tls else 'http'}://{shown}:{port}"


TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
"""TLS 1.2 suites with forward secrecy (ECDHE) and an AEAD cipher: no CBC, no RSA key exchange.
TLS 1.3's suites are all of that kind and are not affected by this list."""


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The server's TLS context from --certfile/--keyfile, or None for plain HTTP. Raises
    `ssl.SSLError` or `OSError` when the files cannot be read or do not match."""
    if not settings.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    context.load_cert_chain(settings.certfile, settings.keyfile)
    return context


def load_tls(settings: Settings) -> ssl.SSLContext | None:
    """`tls_context`, or `StartupError` when the certificate or key is unusable."""
    try:
        return tls_context(settings)
    except OSError as exc:  # ssl.SSLError is one
        raise StartupError(f"cannot load --certfile/--keyfile: {exc}", 2) from None


def open_store(settings: Settings) -> Store:
    """The store the settings choose, checked ready to serve; `StartupError` naming the flag
    and the cause when it cannot start."""
    try:
        store = create_store(
            settings.backend,
            Policy.of(settings),
            db=settings.db,
            sync=settings.sqlite_sync,
            redis_url=settings.redis_url,
            redis_prefix=settings.redis_prefix,
        )
    except (sqlite3.Error, OSError, ValueError) as exc:  # a bad path, file or URL
        raise StartupError(store_problem(settings, exc), 1) from None
    try:
        store.check()
    except StoreUnavailable as exc:
        store.close()
        raise StartupError(store_problem(settings, exc.cause, writing=True), 1) from None
    return store


def store_problem(settings: Settings, cause: BaseException, writing: bool = False) -> str:
    """One line: the flag that chose the store, its value, and why the store cannot start
    (`writing`: it opened, but its check could not write)."""
    if settings.backend == "sqlite":
        # Opening writes the schema, so a read-only file fails there already.
        writing = writing or getattr(cause, "sqlite_errorname", "").startswith("SQLITE_READONLY")
        doing = "write to" if writing else "open"
        return f"--db {settings.db}: cannot {doing} the SQLite database ({cause})"
    if isinstance(cause, RuntimeError):  # reachable but unfit: the text says why
        reason = str(cause)
    elif isinstance(cause, ValueError):
        reason = f"not a Redis URL ({cause})"
    else:
        reason = f"cannot reach Redis ({cause})"
    return f"--redis-url {redacted(settings.redis_url)}: {reason}"


def redacted(url: str) -> str:
    """The URL with its password (redis://user:PASSWORD@host, ?password=) starred out, for
    printing."""
    url = re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)
    return re.sub(r"([?&]password=)[^&]*", r"\1***", url)


@dataclass
class Running:
    """What a started server is made of, in the order it is stopped."""

    server: HTTPServer
    tracker: RequestTracker
    bodies: BodyDeadlines
    waiters: Waiters
    result_waiters: ResultWaiters
    event_hub: EventHub
    reaper: PeriodicCallback
    scheduler: Scheduler
    pusher: Pusher | None
    pool: SimulatedWorkers
    store: Store


async def serve(settings: Settings, store: Store | None = None) -> int:
    """Serve until a shutdown signal; return the process exit code. Raises `StartupError`
    when a setting keeps the server from starting."""
    tls = load_tls(settings)  # first: a bad certificate leaves no store to close
    if store is None:
        store = open_store(settings)
    try:
        sockets = bind_sockets(settings.port, settings.host)
    except OSError as exc:
        store.close()
        where = url_for(settings.host, settings.port)
        raise StartupError(f"--host/--port: cannot listen on {where} ({exc})", 1) from None
    # After the bind: a server that cannot listen prints its one line and nothing else.
    app = make_app(store, settings)
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
    services.scheduler.start()
    if services.pusher is not None:
        services.pusher.start()
    running = Running(
        server,
        services.tracker,
        services.body_deadlines,
        services.waiters,
        services.result_waiters,
        services.event_hub,
        reaper,
        services.scheduler,
        services.pusher,
        pool,
        store,
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
    await running.scheduler.stop()
    if running.pusher is not None:  # pushes in flight get a moment; the rest are let go
        await running.pusher.stop(PUSH_GRACE_SECONDS)
    running.waiters.close()  # long-polling consumers get their answer now, not in 30 s
    running.result_waiters.close()  # as do requests waiting for a result
    running.event_hub.close()  # and event streams end (their clients reconnect elsewhere)
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
