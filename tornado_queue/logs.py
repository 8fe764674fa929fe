"""Logging: text or JSON lines, and one access line per request with its route and request id."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from tornado.web import RequestHandler

access_log = logging.getLogger("tornado.access")

ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "request_id")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and an access line's fields."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ACCESS_FIELDS:
            if hasattr(record, name):
                document[name] = getattr(record, name)
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(document).decode()


def configure(level: str, log_format: str) -> None:
    handler = logging.StreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def log_request(handler: RequestHandler) -> None:
    """Tornado's `log_function`: the access line, by route template rather than raw path (ids
    and query strings stay out of it, and lines group by route)."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    if not access_log.isEnabledFor(level):
        return
    fields = {
        "method": handler.request.method,
        "route": getattr(handler, "route", "unknown"),
        "status": status,
        "duration_ms": round(1000.0 * handler.request.request_time(), 2),
        "request_id": getattr(handler, "request_id", None),
    }
    access_log.log(
        level,
        "%s %s %s %.2fms id=%s",
        fields["status"],
        fields["method"],
        fields["route"],
        fields["duration_ms"],
        fields["request_id"],
        extra=fields,
    )
