"""Logging: text or JSON lines, and one access line per request with its route and request id."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from tornado.web import RequestHandler

access_log = logging.getLogger("tornado.access")

ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "request_id")


class TextFormatter(logging.Formatter):
    """`time level logger: message`, with the time's text made once per second, not per line
    (strftime is a good part of an access line's cost)."""

    def __init__(self, fmt: str | None = None) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s: %(message)s")
        self._second = -1
        self._second_text = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", self.converter(second))
            self._second = second
        return f"{self._second_text},{int(record.msecs):03d}"


class JsonFormatter(TextFormatter):
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
    # What the logging HOWTO's "Optimization" section suggests when records never show the
    # caller's file and line, thread or process: each costs work on every line.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    formatter = JsonFormatter() if log_format == "json" else TextFormatter()
    handler = ServerLogHandler(formatter)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


class ServerLogHandler(logging.StreamHandler):
    """The server's one log handler (stderr). It can also write an access line straight to its
    stream, in exactly the form its formatter gives, without building a `LogRecord`: the
    logging machinery costs several times the line itself, on every request. `log_request`
    does so only while this handler is the only place access lines go (no handler or filter of
    anyone else's, such as a test's log capture); otherwise lines take the logging path."""

    def __init__(self, formatter: TextFormatter) -> None:
        super().__init__()
        self.setFormatter(formatter)
        self._text_formatter = formatter
        self._json = isinstance(formatter, JsonFormatter)

    @staticmethod
    def sole() -> ServerLogHandler | None:
        """The handler, when access lines would reach it and nothing else."""
        handlers = logging.root.handlers
        if len(handlers) != 1 or logging.root.filters:
            return None
        handler = handlers[0]
        if not isinstance(handler, ServerLogHandler) or handler.filters:
            return None
        if not access_log.propagate or access_log.handlers or access_log.filters:
            return None
        return handler

    def write_access(self, level: int, message: str, fields: dict[str, Any]) -> None:
        name = logging.getLevelName(level)
        with self.lock:  # type: ignore[union-attr]
            try:
                # The time as the formatter writes it (see TextFormatter.formatTime), under the
                # lock its one-second cache is also read under.
                stamp = self._text_formatter.formatTime(_Moment(time.time()))  # type: ignore[arg-type]
                if self._json:
                    document = {"time": stamp, "level": name, "logger": access_log.name}
                    document["message"] = message
                    document.update(fields)
                    line = orjson.dumps(document).decode()
                else:
                    line = f"{stamp} {name} {access_log.name}: {message}"
                self.stream.write(line + self.terminator)
                self.flush()
            except Exception:
                # As logging does for a failing stream (a closed pipe, a full disk): the request
                # must still finish; logging's own error report goes to stderr if it can.
                record = logging.LogRecord(access_log.name, level, "", 0, message, (), None)
                self.handleError(record)


class _Moment:
    """What `TextFormatter.formatTime` reads of a record."""

    __slots__ = ("created", "msecs")

    def __init__(self, now: float) -> None:
        self.created = now
        self.msecs = (now - int(now)) * 1000


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
    direct = ServerLogHandler.sole()
    if direct is not None:
        message = (
            f"{status} {fields['method']} {fields['route']} "
            f"{fields['duration_ms']:.2f}ms id={fields['request_id']}"
        )
        direct.write_access(level, message, fields)
        return
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
