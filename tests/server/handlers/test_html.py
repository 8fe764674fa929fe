"""Every HTML page (the dashboard, the API docs) carries the security headers."""

from __future__ import annotations

import pytest

from tornado_queue.server.handlers.html import PAGE_HEADERS
from tornado_queue.storage import MemoryStore

OWN_STORE = True  # the pages never touch a store: one memory store, one call mode
pytestmark = pytest.mark.parametrize("store_calls", ["inline"], indirect=True)


@pytest.fixture
def store(clock, policy) -> MemoryStore:
    return MemoryStore(policy, clock)


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/", "/docs"])
async def test_pages_forbid_inline_script_framing_and_sniffing(http_client, base_url, path):
    response = await http_client.fetch(base_url + path)

    for name, value in PAGE_HEADERS.items():
        assert response.headers[name] == value
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
