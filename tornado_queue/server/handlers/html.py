"""Headers every HTML page of the server carries (the dashboard, the API docs)."""

from __future__ import annotations

from tornado.web import RequestHandler

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",  # no inline script: task data can never run as code
        "style-src 'self'",
        "img-src 'self' data:",  # Swagger UI draws its icons as data: SVGs
        "font-src 'self'",
        "connect-src 'self'",  # the pages call this server's API and nothing else
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",  # no clickjacking of the Retry/Delete buttons
    )
)

PAGE_HEADERS = {
    "Content-Type": "text/html; charset=utf-8",
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers without CSP level 2
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def set_page_headers(handler: RequestHandler) -> None:
    for name, value in PAGE_HEADERS.items():
        handler.set_header(name, value)
