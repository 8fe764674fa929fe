"""The route table and the application factory."""

from __future__ import annotations

from functools import cache
from typing import Any

from tornado.httputil import HTTPMessageDelegate, HTTPServerRequest
from tornado.web import Application, RequestHandler

from tornado_queue.config import Settings
from tornado_queue.logs import log_request
from tornado_queue.push_allow import PushAllow
from tornado_queue.server import openapi
from tornado_queue.server.auth import Tokens, warn_if_open
from tornado_queue.server.bodywatch import BodyDeadlines
from tornado_queue.server.event_hub import EventHub
from tornado_queue.server.handlers.base import (
    ApiHandler,
    NotFoundHandler,
    is_json,
    route_template,
)
from tornado_queue.server.handlers.dashboard import (
    DASHBOARD_DIR,
    DashboardAssetHandler,
    DashboardHandler,
)
from tornado_queue.server.handlers.docs import (
    DOCS_STATIC_PATH,
    SWAGGER_UI_PATH,
    DocsAssets,
    DocsHandler,
    OpenApiHandler,
    SwaggerUiAssets,
)
from tornado_queue.server.handlers.events import EventsHandler
from tornado_queue.server.handlers.health import HealthHandler
from tornado_queue.server.handlers.metrics import MetricsHandler
from tornado_queue.server.handlers.queue import (
    QueueHandler,
    QueuePurgeHandler,
    QueuePushSecretHandler,
    QueueRetryHandler,
    QueuesHandler,
    QueueStatsHandler,
    QueueTotalsHandler,
    QueueViewHandler,
)
from tornado_queue.server.handlers.schedules import ScheduleHandler, SchedulesHandler
from tornado_queue.server.handlers.tasks import (
    CompleteBatchHandler,
    CompleteHandler,
    DequeueBatchHandler,
    DequeueHandler,
    FailHandler,
    HeartbeatHandler,
    ProgressHandler,
    RetryHandler,
    TaskBatchHandler,
    TaskHandler,
    TasksHandler,
)
from tornado_queue.server.handlers.workers import WorkersHandler
from tornado_queue.server.metrics import Metrics
from tornado_queue.server.push.dispatcher import Pusher
from tornado_queue.server.ratelimit import RateLimiter
from tornado_queue.server.result_waiters import ResultWaiters
from tornado_queue.server.scheduler import Scheduler
from tornado_queue.server.services import RequestTracker, Services
from tornado_queue.server.waiters import Waiters
from tornado_queue.storage import Store

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
    (r"/tasks/([^/]+)/progress", ProgressHandler),
    (r"/tasks/([^/]+)/retry", RetryHandler),
    (r"/queue/view", QueueViewHandler),
    (r"/queue/stats", QueueStatsHandler),
    (r"/queue/totals", QueueTotalsHandler),
    (r"/queues", QueuesHandler),
    (r"/queues/(?P<name>[^/]+)", QueueHandler),
    (r"/queues/(?P<name>[^/]+)/retry", QueueRetryHandler),
    (r"/queues/(?P<name>[^/]+)/tasks", QueuePurgeHandler),
    (r"/queues/(?P<name>[^/]+)/push/rotate-secret", QueuePushSecretHandler),
    (r"/schedules", SchedulesHandler),
    (r"/schedules/(?P<name>[^/]+)", ScheduleHandler),
    (r"/workers", WorkersHandler),
    (r"/events", EventsHandler),
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
    handler.route = route_template(pattern)
    return handler


class QueueApplication(Application):
    """Routes a request whose body is small and declared up front (`Content-Length` within
    `--max-body-bytes`, or no body) to a buffered copy of its handler: Tornado then reads the
    body with the headers, in one step. Only a chunked or oversize body is streamed, which
    costs about two more IOLoop turns but lets it get a JSON 413 the moment the limit is
    passed. (Measured: the buffered path serves the common request with fewer instructions;
    see docs/performance.md.)"""

    def __init__(self, *args: Any, services: Services, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.services = services
        self._max_body_bytes = services.config.max_body_bytes
        self.body_deadlines = services.body_deadlines

    def get_handler_delegate(
        self,
        request: HTTPServerRequest,
        target_class: type[RequestHandler],
        target_kwargs: dict[str, Any] | None = None,
        path_args: list[bytes] | None = None,
        path_kwargs: dict[str, bytes] | None = None,
    ) -> HTTPMessageDelegate:
        headers = request.headers
        watched = issubclass(target_class, ApiHandler)
        if watched and (
            "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0"
        ):
            self.body_deadlines.expect_body(request)
        if getattr(target_class, "_stream_request_body", False) and self._fits(request):
            target_class = buffered(target_class)
        return super().get_handler_delegate(
            request, target_class, target_kwargs, path_args, path_kwargs
        )

    def _fits(self, request: HTTPServerRequest) -> bool:
        headers = request.headers
        if "Transfer-Encoding" in headers or "Content-Encoding" in headers:
            return False
        content_type = headers.get("Content-Type")
        if content_type is not None and not is_json(content_type):
            # Buffered, Tornado would parse a form body itself (and answer a bad one with its
            # own 400); streamed, the handler refuses any non-JSON body with its 415.
            return False
        length = headers.get("Content-Length")
        if length is None:
            return True
        # Anything odd (two lengths, signs, spaces) takes the streamed path, whose checks
        # answer it with problem JSON.
        return length.isdigit() and len(length) <= 18 and int(length) <= self._max_body_bytes


@cache
def buffered(handler: type[RequestHandler]) -> type[RequestHandler]:
    """`handler` with Tornado reading the whole body before it runs (same route, same code)."""
    return type(handler.__name__, (handler,), {"_stream_request_body": False})


def make_app(store: Store, settings: Settings, **tornado_settings: Any) -> QueueApplication:
    """Build the Tornado application over `store`; `app.services` holds what its handlers
    share (the request tracker and waiters a graceful shutdown needs among them).

    Raises `auth.TokenError` on a bad token or tokens file.
    """
    tokens = Tokens.configured(settings.auth_token, settings.tokens_file)
    warn_if_open(tokens, settings.host)
    metrics = Metrics()
    push_allow = PushAllow.parse(settings.push_allow)
    pusher = Pusher(store, push_allow, observe=metrics.pushed) if push_allow.enabled else None
    services = Services(
        store=store,
        config=settings,
        tokens=tokens,
        tracker=RequestTracker(),
        waiters=Waiters(store),
        result_waiters=ResultWaiters(store),
        metrics=metrics,
        body_deadlines=BodyDeadlines(settings.body_timeout),
        rate_limiter=RateLimiter(settings.rate_limit) if settings.rate_limit else None,
        openapi_document=openapi.document_bytes(ROUTES, auth=tokens.enabled),
        scheduler=Scheduler(store, metrics.schedule_fired),
        event_hub=EventHub(store),
        push_allow=push_allow,
        pusher=pusher,
    )

    def log_function(handler: RequestHandler) -> None:
        services.metrics.observe(handler)
        log_request(handler)

    handler_args = {"services": services}
    rules = [
        (entry[0], route(entry[1], entry[0]), entry[2] if len(entry) == 3 else handler_args)
        for entry in ROUTES
    ]
    return QueueApplication(
        rules,
        services=services,
        default_handler_class=NotFoundHandler,
        default_handler_args=handler_args,
        log_function=log_function,
        **tornado_settings,
    )
