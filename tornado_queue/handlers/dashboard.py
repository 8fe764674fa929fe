"""The live dashboard: `GET /` answers the page, `/dashboard/…` its script and style sheet.

The page is static; it reads the JSON API from the browser (see static/dashboard/dashboard.js).
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any

from tornado.web import HTTPError, StaticFileHandler

from .. import codec
from .base import REQUEST_ID, ApiHandler

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"
INDEX = DASHBOARD_DIR / "index.html"


class DashboardHandler(ApiHandler):
    """`GET /` (and HEAD): the dashboard page. An `ApiHandler`, so that a wrong method still
    gets problem JSON, the request id and the access line every other route gets."""

    roles = None  # the page is static; the JSON it reads needs a token

    async def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        # The page names its assets without a version, so always revalidate.
        self.set_header("Cache-Control", "no-cache")
        self.finish(INDEX.read_bytes())

    head = get


class DashboardAssetHandler(StaticFileHandler):
    """`/dashboard/{path}`: the page's script and style sheet, from the packaged directory.

    Tornado's own handler, for its path checks, conditional GETs and ranges; only its error
    pages are replaced, so that no answer of this server is ever HTML but the page itself.
    """

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", self.request_id)
        # A browser must never read a script or style sheet as anything else.
        self.set_header("X-Content-Type-Options", "nosniff")

    @property
    def request_id(self) -> str:
        """As `ApiHandler.request_id`: the client's sensible `X-Request-ID`, or a fresh one."""
        if not hasattr(self, "_request_id"):
            given = self.request.headers.get("X-Request-ID", "")
            self._request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        return self._request_id

    def get_content_type(self) -> str:
        content_type = super().get_content_type()
        if content_type.startswith("text/"):
            return content_type + "; charset=utf-8"
        return content_type

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs["exc_info"][1] if "exc_info" in kwargs else None
        if status_code == 404:
            detail = f"no dashboard asset at {self.request.path[:200]}"
        elif status_code == 405:
            self.set_header("Allow", "GET, HEAD")
            detail = f"{self.request.method} is not allowed here; allowed: GET, HEAD"
        elif isinstance(error, HTTPError) and error.log_message and status_code < 500:
            detail = error.log_message % error.args
        else:
            detail = HTTPStatus(status_code).phrase
        problem = {
            "type": "about:blank",
            "title": HTTPStatus(status_code).phrase,
            "status": status_code,
            "detail": detail,
        }
        self.set_header("Content-Type", "application/problem+json")
        self.finish(codec.dumps(problem))
