"""The live dashboard: `GET /` answers the page, `/dashboard/…` its script and style sheet.

The page is static; it reads the JSON API from the browser (see static/dashboard/dashboard.js).
"""

from __future__ import annotations

from pathlib import Path

from tornado_queue.server.handlers.base import ApiHandler
from tornado_queue.server.handlers.html import set_page_headers
from tornado_queue.server.handlers.static import StaticFiles

DASHBOARD_DIR = Path(__file__).resolve().parent.parent / "static" / "dashboard"
INDEX = DASHBOARD_DIR / "index.html"


class DashboardHandler(ApiHandler):
    """`GET /` (and HEAD): the dashboard page. An `ApiHandler`, so that a wrong method still
    gets problem JSON, the request id and the access line every other route gets."""

    roles = None  # the page is static; the JSON it reads needs a token

    async def get(self) -> None:
        # CSP and friends; no-cache because the page names its assets without a version.
        set_page_headers(self)
        self.finish(INDEX.read_bytes())

    head = get


class DashboardAssetHandler(StaticFiles):
    """`/dashboard/{path}`: the page's script, style sheet and icon, from the packaged
    directory."""
