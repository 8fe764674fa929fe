"""API documentation: `GET /openapi.json`, `GET /docs` (Swagger UI) and the files that page loads.

Swagger UI comes from the pinned `swagger-ui-bundle` package and is served from here: no CDN, so
the page works offline, and no inline script, so it works under `script-src 'self'`.
"""

from __future__ import annotations

import uuid
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar

import swagger_ui_bundle
from tornado.web import HTTPError, StaticFileHandler

from .. import codec, openapi
from .base import REQUEST_ID, ApiHandler

DOCS_STATIC_PATH = Path(__file__).resolve().parent.parent / "static" / "docs"
"""Our own files for the page (its start-up script), found next to the package's code."""
SWAGGER_UI_PATH = Path(str(swagger_ui_bundle.swagger_ui_path)).resolve()

DOCS_PAGE = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tornado_queue API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="/docs/assets/index.css">
<link rel="icon" type="image/png" sizes="32x32" href="/docs/assets/favicon-32x32.png">
<link rel="icon" type="image/png" sizes="16x16" href="/docs/assets/favicon-16x16.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-init.js"></script>
</body>
</html>
"""


class OpenApiHandler(ApiHandler):
    """`GET /openapi.json`: the OpenAPI 3.1 document (built once, written as cached bytes)."""

    roles = None

    def get(self) -> None:
        self.finish(openapi.document_bytes())

    head = get


class DocsHandler(ApiHandler):
    """`GET /docs`: the Swagger UI page over `/openapi.json`."""

    roles = None

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(DOCS_PAGE)

    head = get


class StaticFiles(StaticFileHandler):
    """Static files that answer like the API: an `X-Request-ID` on every answer and errors as
    problem JSON (Tornado's own error page is HTML)."""

    route = "unknown"
    """The route template (set by `app.route`)."""

    FILES: ClassVar[frozenset[str] | None] = None
    """The only files served, by path under the root; None serves the whole root."""

    def set_default_headers(self) -> None:
        self.set_header("X-Request-ID", self.request_id)
        # A browser must never read a script or style sheet as anything else.
        self.set_header("X-Content-Type-Options", "nosniff")

    @property
    def request_id(self) -> str:
        if not hasattr(self, "_request_id"):
            given = self.request.headers.get("X-Request-ID", "")
            self._request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        return self._request_id

    def validate_absolute_path(self, root: str, absolute_path: str) -> str | None:
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


class SwaggerUiAssets(StaticFiles):
    """`/docs/assets/…`: the parts of the Swagger UI bundle the page loads (and their source
    maps), nothing else of the package (its demo pages point at a public petstore)."""

    FILES = frozenset(
        {
            "swagger-ui.css",
            "swagger-ui.css.map",
            "swagger-ui-bundle.js",
            "swagger-ui-bundle.js.map",
            "index.css",
            "favicon-16x16.png",
            "favicon-32x32.png",
        }
    )


class DocsAssets(StaticFiles):
    """`/docs/static/…`: the page's own start-up script."""
