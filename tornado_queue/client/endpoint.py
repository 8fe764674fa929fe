"""What both clients share besides the calls: the server's address, the headers every request
carries and the retry settings."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from tornado_queue import __version__

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 10.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF = 0.1


@dataclass(frozen=True)
class Endpoint:
    """A server URL (`http://host:port`, optionally with a path prefix in front of the API's
    routes, or `https://…`), split into what a connection needs."""

    url: str
    https: bool
    host: str
    port: int | None
    prefix: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"server URL must look like http://host:port, got {url!r}")
        return cls(
            url=url.rstrip("/"),
            https=parts.scheme == "https",
            host=parts.hostname,
            port=parts.port,
            prefix=parts.path.rstrip("/"),
        )


def base_headers(token: str | None) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": f"tornado_queue-client/{__version__}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers
