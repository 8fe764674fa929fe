"""The dashboard against a server with tokens, in a real browser: on 401 it asks for a token
with its own form, keeps it in sessionStorage only, and works once given one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.server.handlers.test_dashboard_browser import CONNECTED
from tests.server.handlers.test_dashboard_browser import call as api_call
from tornado_queue.testing import ServerProcess

pytestmark = pytest.mark.timeout(90)

ADMIN = "dashboard-admin-token-0123456789"
PRODUCER = "dashboard-producer-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory = tmp_path_factory.mktemp("dashboard-auth")
    tokens = directory / "tokens"
    tokens.write_text(f"producer {PRODUCER}\n")
    with ServerProcess(
        directory / "server.log",
        "--log-level",
        "warning",
        "--auth-token",
        ADMIN,
        "--tokens-file",
        str(tokens),
    ) as process:
        yield process


def call(server: ServerProcess, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return api_call(server, method, path, body, token=ADMIN)


def enter_token(tab: Page, token: str) -> None:
    tab.locator("#token-input").fill(token)
    tab.get_by_role("button", name="Use token").click()


def session_token(tab: Page) -> str | None:
    return tab.evaluate("() => sessionStorage.getItem('tornado_queue.token')")


def test_the_page_asks_for_a_token_on_401_and_works_once_given_one(
    page: Page,
    server: ServerProcess,
):
    status, task = call(server, "POST", "/tasks", {"payload": {"n": 1}, "queue": "guarded"})
    assert status == 201, task
    # Failed for good, so the page shows it with a Delete button (an admin action).
    status, leased = call(server, "POST", "/tasks/dequeue?queue=guarded")
    assert status == 200, leased
    body = {"error": "boom", "retry": False, "lease_id": leased["lease_id"]}
    assert call(server, "PUT", f"/tasks/{task['id']}/fail", body)[0] == 200

    page.goto(server.url + "/")

    form = page.locator("#token-form")
    expect(form).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("401")
    expect(page.locator("#connection-text")).to_have_text("Needs a token")
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#forget-token")).to_be_hidden()

    enter_token(page, ADMIN)

    expect(page.locator("#connection-text")).to_have_text(CONNECTED)
    expect(form).to_be_hidden()
    expect(page.locator('#queues tr[data-queue="guarded"] td[data-state="failed"]')).to_have_text(
        "1"
    )
    assert session_token(page) == ADMIN
    assert page.evaluate("() => localStorage.length") == 0
    assert ADMIN not in page.content()  # never written into the page

    # The buttons' requests carry the token too.
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f'#failed tr[data-task-id="{task["id"]}"]').get_by_role(
        "button", name="Delete"
    ).click()
    expect(page.locator("#notice")).to_contain_text("was deleted")
    assert call(server, "GET", f"/tasks/{task['id']}")[0] == 404

    page.get_by_role("button", name="Forget token").click()

    expect(form).to_be_visible()
    expect(page.locator("#connection-text")).to_have_text("Needs a token")
    assert session_token(page) is None


def test_a_wrong_token_or_a_producer_token_keeps_the_form_up_with_the_reason(
    page: Page,
    server: ServerProcess,
):
    page.goto(server.url + "/")
    expect(page.locator("#token-form")).to_be_visible()

    enter_token(page, "not-a-token-this-server-knows")

    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("refused the saved token")

    enter_token(page, PRODUCER)

    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#token-reason")).to_contain_text("may not read the queues")
    expect(page.locator("#token-reason")).to_contain_text("a producer token may not GET")
