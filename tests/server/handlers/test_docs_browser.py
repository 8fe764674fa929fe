"""`/docs` in a real browser (Debian's Chromium driven by Playwright, as the dashboard's browser
tests): Swagger UI renders every documented operation from local files only, under the CSP the
security work will send, and "Try it out" reaches the server.

Chromium missing is a failure with the command to install it, never a skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.server.handlers.conftest import WAIT_MS
from tests.server.test_openapi import operations
from tornado_queue.testing import ServerProcess

pytestmark = pytest.mark.timeout(90)

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("docs") / "server.log"
    with ServerProcess(log, "--log-level", "warning") as process:
        yield process


def open_docs(page: Page, server: ServerProcess) -> list[str]:
    """Open /docs (under the server's own CSP, handlers/html.py); return the URLs it
    requested."""
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/docs")
    return requested


def test_every_documented_operation_is_shown_from_local_files_under_the_csp(
    page: Page, server: ServerProcess, csp_violations: list[str]
):
    requested = open_docs(page, server)

    expect(page.locator(".opblock")).to_have_count(len(operations()))
    expect(page.locator(".info .title")).to_contain_text("tornado_queue")
    origin = urlsplit(server.url).netloc
    assert requested
    assert all(urlsplit(url).netloc == origin for url in requested), requested
    assert server.url + "/openapi.json" in requested
    assert csp_violations == []


def test_try_it_out_calls_the_server(page: Page, server: ServerProcess):
    open_docs(page, server)
    operation = page.locator("#operations-queues-queueStats")

    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    operation.get_by_role("button", name="Execute").click()

    expect(
        operation.locator(".live-responses-table tr.response .response-col_status")
    ).to_have_text("200")
    expect(operation.locator(".live-responses-table")).to_contain_text('"pending"')
