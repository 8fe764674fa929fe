"""The route table and the application factory."""

from __future__ import annotations

from typing import Any

from tornado.util import re_unescape
from tornado.web import Application, RequestHandler

from .auth import warn_if_open
from .config import Settings
from .handlers.base import NotFoundHandler, RequestTracker
from .handlers.dashboard import DASHBOARD_DIR, DashboardAssetHandler, DashboardHandler
from .handlers.docs import (
    DOCS_STATIC_PATH,
    SWAGGER_UI_PATH,
    DocsAssets,
    DocsHandler,
    OpenApiHandler,
    SwaggerUiAssets,
)
from .handlers.health import HealthHandler
from .handlers.metrics import MetricsHandler
from .handlers.queue import (
    QueuesHandler,
    QueueStatsHandler,
    QueueTotalsHandler,
    QueueViewHandler,
)
from .handlers.tasks import (
    CompleteBatchHandler,
    CompleteHandler,
    DequeueBatchHandler,
    DequeueHandler,
    FailHandler,
    HeartbeatHandler,
    RetryHandler,
    TaskBatchHandler,
    TaskHandler,
    TasksHandler,
)
from .logs import log_request
from .metrics import Metrics
from .ratelimit import RateLimiter
from .storage import Store
from .waiters import Waiters

# Literal routes come before `/tasks/{id}` so that `/tasks/dequeue` or `/tasks/batch` is never
# read as an id. A route with a third element (static assets) gets those handler arguments
# instead of the API handlers' ones.
ROUTES: list[tuple[str, type] | tuple[str, type, dict[str, Any]]] = [
    (r"/tasks", TasksHandler),
    (r"/tasks/batch", TaskBatchHandler),
    (r"/tasks/dequeue", DequeueHandler),
    (r"/tasks/dequeue/batch", DequeueBatchHandler),
    (r"/tasks/complete/batch", CompleteBatchHandler),
    (r"/tasks/([^/]+)", TaskHandler),
    (r"/tasks/([^/]+)/complete", CompleteHandler),
    (r"/tasks/([^/]+)/fail", FailHandler),
    (r"/tasks/([^/]+)/heartbeat", HeartbeatHandler),
    (r"/tasks/([^/]+)/retry", RetryHandler),
    (r"/queue/view", QueueViewHandler),
    (r"/queue/stats", QueueStatsHandler),
    (r"/queue/totals", QueueTotalsHandler),
    (r"/queues", QueuesHandler),
    (r"/healthz", HealthHandler),
    (r"/metrics", MetricsHandler),
    (r"/", DashboardHandler),
    (r"/dashboard/(.*)", DashboardAssetHandler, {"path": str(DASHBOARD_DIR)}),
    (r"/openapi\.json", OpenApiHandler),
    (r"/docs", DocsHandler),
    (r"/docs/assets/(.*)", SwaggerUiAssets, {"path": str(SWAGGER_UI_PATH)}),
    (r"/docs/static/(.*)", DocsAssets, {"path": str(DOCS_STATIC_PATH)}),
]


def route(handler: type, pattern: str) -> type:
    """The handler, told its route template (for access lines and metrics by route)."""
    template = pattern.replace("([^/]+)", "{id}").replace("(.*)", "{path}")
    handler.route = re_unescape(template)
    return handler


def make_app(store: Store, settings: Settings, **tornado_settings: Any) -> Application:
    """Build the Tornado application over `store`.

    `app.settings["tracker"]` counts the requests in progress, for a graceful shutdown,
    `app.settings["waiters"]` holds the long-polling consumers, `app.settings["metrics"]`
    the request latencies and `app.settings["tokens"]` the bearer tokens (empty: auth off).
    Raises `auth.TokenError` on a bad token or tokens file.
    """
    tokens = settings.tokens()
    warn_if_open(tokens, settings.host)
    tracker = RequestTracker()
    waiters = Waiters(store)
    metrics = Metrics()

    def log_function(handler: RequestHandler) -> None:
        metrics.observe(handler)
        log_request(handler)

    handler_args = {"store": store, "config": settings, "tracker": tracker, "waiters": waiters}
    rules = [
        (entry[0], route(entry[1], entry[0]), entry[2] if len(entry) == 3 else handler_args)
        for entry in ROUTES
    ]
    return Application(
        rules,
        default_handler_class=NotFoundHandler,
        default_handler_args=handler_args,
        tracker=tracker,
        waiters=waiters,
        metrics=metrics,
        tokens=tokens,
        rate_limiter=RateLimiter(settings.rate_limit) if settings.rate_limit else None,
        log_function=log_function,
        **tornado_settings,
    )
