"""`GET /` and `/dashboard/…` over plain HTTP: the page, its local assets, and the rules the
page's sources keep (no inline script, no HTML built from strings). The page's behaviour in a
browser is in test_dashboard_browser.py."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from tests.server.handlers.helpers import assert_problem, request
from tornado_queue.server.handlers.dashboard import DASHBOARD_DIR, INDEX
from tornado_queue.storage import MemoryStore

OWN_STORE = True


@pytest.fixture
def store(clock, policy) -> MemoryStore:
    # The dashboard's routes never touch the store: one backend is enough.
    return MemoryStore(policy, clock)


class PageParts(HTMLParser):
    """Every tag of the page with its attributes, and the text of inline scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def page_parts() -> PageParts:
    parts = PageParts()
    parts.feed(INDEX.read_text())
    return parts


def linked_assets() -> list[str]:
    """The URLs the page loads by itself: scripts, style sheets and its icon."""
    parts = page_parts()
    scripts = [attrs["src"] for tag, attrs in parts.tags if tag == "script"]
    sheets = [attrs["href"] for tag, attrs in parts.tags if tag == "link"]
    return [url for url in scripts + sheets if url is not None]


@pytest.mark.gen_test
async def test_the_root_answers_the_dashboard_page_as_html(http_client, base_url):
    response = await http_client.fetch(base_url + "/")

    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-cache"
    assert response.headers["X-Request-ID"]
    assert response.body == INDEX.read_bytes()
    assert b'<script src="/dashboard/dashboard.js"' in response.body


@pytest.mark.gen_test
async def test_head_of_the_root_has_the_headers_and_no_body(http_client, base_url):
    response = await http_client.fetch(base_url + "/", method="HEAD")

    assert response.code == 200
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.body == b""


@pytest.mark.gen_test
async def test_another_method_on_the_root_is_a_405_problem(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/", {"x": 1})

    problem = assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"
    assert "POST" in problem["detail"]


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("dashboard.js", "text/javascript"),
        ("sse.js", "text/javascript"),
        ("dashboard.css", "text/css"),
    ],
)
@pytest.mark.gen_test
async def test_assets_are_served_from_the_package_with_their_types(
    http_client, base_url, name, media_type
):
    response = await http_client.fetch(f"{base_url}/dashboard/{name}")

    assert response.code == 200
    # Python 3.11 calls JavaScript application/javascript, 3.12 text/javascript: both run.
    content_type = response.headers["Content-Type"].replace("application/", "text/")
    assert content_type == f"{media_type}; charset=utf-8"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Request-ID"]
    assert response.body == (DASHBOARD_DIR / name).read_bytes()


@pytest.mark.gen_test
async def test_every_asset_the_page_links_is_local_and_served(http_client, base_url):
    assets = linked_assets()

    assert sorted(assets) == [
        "/dashboard/dashboard.css",
        "/dashboard/dashboard.js",
        "/dashboard/favicon.svg",
        "/dashboard/sse.js",
    ]
    for url in assets:
        response = await http_client.fetch(base_url + url)
        assert response.code == 200, url


@pytest.mark.gen_test
async def test_an_unknown_asset_is_a_404_problem_not_an_html_page(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/dashboard/missing.js")

    problem = assert_problem(response, 404)
    assert "/dashboard/missing.js" in problem["detail"]
    assert response.headers["X-Request-ID"]


@pytest.mark.gen_test
async def test_a_path_out_of_the_asset_directory_is_refused(http_client, base_url):
    response = await request(http_client, base_url, "GET", "/dashboard/%2E%2E/app.py")

    assert_problem(response, 404)  # as for any file that is not there: nothing to tell


@pytest.mark.gen_test
async def test_writing_to_an_asset_is_a_405_problem(http_client, base_url):
    response = await request(http_client, base_url, "POST", "/dashboard/dashboard.js", {})

    assert_problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


def test_the_page_has_no_inline_script_or_style_so_a_strict_csp_can_apply():
    parts = page_parts()

    assert parts.script_text == []
    for tag, attrs in parts.tags:
        assert tag != "style", "inline <style>"
        for name, value in attrs.items():
            assert not name.startswith("on"), f"inline handler {name} on <{tag}>"
            assert name != "style", f"inline style on <{tag}>"
            assert not (value or "").strip().lower().startswith("javascript:"), (tag, name)


def test_the_page_loads_nothing_from_another_origin():
    for url in linked_assets():
        assert url.startswith("/") and not url.startswith("//"), url
    assert not re.search(r"https?://", (DASHBOARD_DIR / "dashboard.css").read_text())


@pytest.mark.parametrize("script", ["dashboard.js", "sse.js"])
def test_the_scripts_never_turn_strings_into_html_or_code(script):
    # Task data is attacker-controlled: the scripts may only set text and DOM properties.
    source = (DASHBOARD_DIR / script).read_text()

    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, sink
    assert "new Function" not in source


@pytest.mark.gen_test
@pytest.mark.parametrize("path", ["/dashboard/%00", "/dashboard/a%00b.js", "/docs/static/%00"])
async def test_a_nul_byte_in_an_asset_path_is_a_404_not_a_500(http_client, base_url, path):
    response = await request(http_client, base_url, "GET", path)

    assert_problem(response, 404)
