"""The route table and the application factory."""

from __future__ import annotations

from typing import Any

from tornado.web import Application

from .config import Settings
from .handlers.base import NotFoundHandler, RequestTracker
from .handlers.queue import QueueStatsHandler, QueueViewHandler
from .handlers.tasks import (
    CompleteHandler,
    DequeueHandler,
    FailHandler,
    HeartbeatHandler,
    RetryHandler,
    TaskHandler,
    TasksHandler,
)
from .storage import Store

# Literal routes come before `/tasks/{id}` so that `/tasks/dequeue` is never read as an id.
ROUTES: list[tuple[str, type]] = [
    (r"/tasks", TasksHandler),
    (r"/tasks/dequeue", DequeueHandler),
    (r"/tasks/([^/]+)", TaskHandler),
    (r"/tasks/([^/]+)/complete", CompleteHandler),
    (r"/tasks/([^/]+)/fail", FailHandler),
    (r"/tasks/([^/]+)/heartbeat", HeartbeatHandler),
    (r"/tasks/([^/]+)/retry", RetryHandler),
    (r"/queue/view", QueueViewHandler),
    (r"/queue/stats", QueueStatsHandler),
]


def make_app(store: Store, settings: Settings, **tornado_settings: Any) -> Application:
    """Build the Tornado application over `store`.

    `app.settings["tracker"]` counts the requests in progress, for a graceful shutdown.
    """
    tracker = RequestTracker()
    handler_args = {"store": store, "config": settings, "tracker": tracker}
    return Application(
        [(pattern, handler, handler_args) for pattern, handler in ROUTES],
        default_handler_class=NotFoundHandler,
        default_handler_args=handler_args,
        tracker=tracker,
        **tornado_settings,
    )
