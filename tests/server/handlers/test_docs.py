"""`GET /openapi.json`, `GET /docs` and the Swagger UI files the page loads, all served locally."""

from __future__ import annotations

from html.parser import HTMLParser

import orjson
import pytest

from tests.server.handlers.helpers import assert_problem
from tornado_queue.server import openapi
from tornado_queue.server.app import ROUTES
from tornado_queue.storage import MemoryStore

OWN_STORE = True  # the docs never touch a store: one memory store, one call mode
pytestmark = pytest.mark.parametrize("store_calls", ["inline"], indirect=True)


@pytest.fixture
def store(clock, policy) -> MemoryStore:
    return MemoryStore(policy, clock)


class PageReferences(HTMLParser):
    """The URLs a page loads (scripts, stylesheets, icons), and any inline script's text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "script":
            self._in_script = True
            if values.get("src"):
                self.urls.append(values["src"])
        elif tag == "link" and values.get("href"):
            self.urls.append(values["href"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


async def fetch(http_client, base_url, path, method="GET", **kwargs):
    return await http_client.fetch(
        base_url + path, method=method, raise_error=False, allow_nonstandard_methods=True, **kwargs
    )


@pytest.mark.gen_test
async def test_openapi_json_serves_the_document(http_client, base_url):
    response = await fetch(http_client, base_url, "/openapi.json")

    assert response.code == 200
    assert response.headers["Content-Type"] == "application/json"
    # The test server has no tokens: its document is the one with auth off.
    assert response.body == openapi.document_bytes(ROUTES, auth=False)
    assert orjson.loads(response.body)["openapi"] == "3.1.0"
    assert response.headers["X-Request-ID"]


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/openapi.json", "/docs"])
async def test_head_answers_the_headers_without_a_body(http_client, base_url, path):
    get = await fetch(http_client, base_url, path)
    head = await fetch(http_client, base_url, path, method="HEAD")

    assert head.code == 200
    assert head.body == b""
    assert head.headers["Content-Type"] == get.headers["Content-Type"]
    assert head.headers["Content-Length"] == str(len(get.body))


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/docs/assets/swagger-ui.css"])
async def test_another_method_is_a_json_405_naming_get_and_head(http_client, base_url, path):
    response = await fetch(http_client, base_url, path, method="POST", body=b"")

    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.gen_test
async def test_docs_is_a_page_that_loads_only_local_files_and_no_inline_script(
    http_client, base_url
):
    response = await fetch(http_client, base_url, "/docs")

    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    page = PageReferences()
    page.feed(response.body.decode())
    assert page.inline_scripts == []
    assert page.urls
    for url in page.urls:
        assert url.startswith("/"), url
        assert not url.startswith("//"), url
    assert b"http://" not in response.body
    assert b"https://" not in response.body


@pytest.mark.gen_test
async def test_every_file_the_docs_page_loads_is_served(http_client, base_url):
    response = await fetch(http_client, base_url, "/docs")
    page = PageReferences()
    page.feed(response.body.decode())

    for url in page.urls:
        asset = await fetch(http_client, base_url, url)
        assert asset.code == 200, url
        assert asset.body, url
        assert asset.headers["X-Request-ID"], url
    scripts = [url for url in page.urls if url.endswith(".js")]
    assert "/docs/assets/swagger-ui-bundle.js" in scripts
    assert "/docs/static/swagger-init.js" in scripts


@pytest.mark.gen_test
async def test_the_start_up_script_loads_the_served_document(http_client, base_url):
    response = await fetch(http_client, base_url, "/docs/static/swagger-init.js")

    assert response.code == 200
    assert "javascript" in response.headers["Content-Type"]
    assert b'fetch("/openapi.json"' in response.body
    assert b"validatorUrl: null" in response.body  # no badge fetched from a public validator


@pytest.mark.gen_test
@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/index.html",  # the package's demo page (a public petstore)
        "/docs/assets/swagger-initializer.js",
        "/docs/assets/missing.js",
        "/docs/assets/",
        "/docs/static/",
        "/docs/static/missing.js",
        "/docs/assets/..%2F..%2F__init__.py",
    ],
)
async def test_files_outside_the_served_set_are_a_json_404(http_client, base_url, path):
    response = await fetch(http_client, base_url, path)

    assert_problem(response, 404)
