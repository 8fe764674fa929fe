"""API documentation: `GET /openapi.json`, `GET /docs` (Swagger UI) and the files that page loads.

Swagger UI comes from the pinned `swagger-ui-bundle` package and is served from here: no CDN, so
the page works offline, and no inline script, so it works under `script-src 'self'`.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle

from tornado_queue.server.handlers.base import ApiHandler
from tornado_queue.server.handlers.html import set_page_headers
from tornado_queue.server.handlers.static import StaticFiles

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
        self.finish(self.services.openapi_document)

    head = get


class DocsHandler(ApiHandler):
    """`GET /docs`: the Swagger UI page over `/openapi.json`."""

    roles = None

    def get(self) -> None:
        set_page_headers(self)
        self.finish(DOCS_PAGE)

    head = get


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
