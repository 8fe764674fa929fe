"""Packaged static files (the dashboard's and the docs page's) that answer like the API."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar

from tornado.web import HTTPError, StaticFileHandler

from tornado_queue import codec
from tornado_queue.server.handlers.base import request_id_of, set_transport_headers


class StaticFiles(StaticFileHandler):
    """Tornado's own handler, for its path checks, conditional GETs and ranges, with an
    `X-Request-ID` on every answer, `nosniff`, a UTF-8 charset on text, and errors as problem
    JSON (Tornado's error page is HTML). Subclass it per directory (`app.route` names the
    class's route)."""

    route = "unknown"
    """The route template (set by `app.route`)."""

    FILES: ClassVar[frozenset[str] | None] = None
    """The only files served, by path under the root; None serves the whole root."""

    def set_default_headers(self) -> None:
        set_transport_headers(self)
        self.set_header("X-Request-ID", self.request_id)
        # A browser must never read a script or style sheet as anything else.
        self.set_header("X-Content-Type-Options", "nosniff")

    @property
    def request_id(self) -> str:
        """As `ApiHandler.request_id`: the client's sensible `X-Request-ID`, or a fresh one."""
        if not hasattr(self, "_request_id"):
            self._request_id = request_id_of(self.request)
        return self._request_id

    def get_content_type(self) -> str:
        content_type = super().get_content_type()
        if content_type.startswith("text/"):
            return content_type + "; charset=utf-8"
        return content_type

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
        if "\x00" in absolute_path:  # no file has one; os.path would raise ValueError
            raise HTTPError(404)
        if self.FILES is not None and absolute_path not in {
            str(Path(root) / name) for name in self.FILES
        }:
            raise HTTPError(404)
        return super().validate_absolute_path(root, absolute_path)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 405:
            self.set_header("Allow", "GET, HEAD")
        # 403 (a path outside the root) reads as 404: nothing is there for the client.
        status = 404 if status_code == 403 else status_code
        self.set_status(status)
        self.set_header("Content-Type", "application/problem+json")
        phrase = HTTPStatus(status).phrase
        detail = {
            404: f"no file at {self.request.path[:200]}",
            405: f"{self.request.method} is not allowed here; allowed: GET, HEAD",
        }.get(status, phrase)
        problem = {"type": "about:blank", "title": phrase, "status": status, "detail": detail}
        self.finish(codec.dumps(problem))
