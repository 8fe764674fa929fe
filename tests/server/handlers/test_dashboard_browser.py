"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real server
process. Tasks are moved through the HTTP API and the page must show it by itself (told by the
event stream, or polling every second without one); every wait is Playwright's auto-waiting
`expect`, never a sleep.

Chromium missing is a failure with the command to install it, never a skip.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, expect

from tests.server.handlers.conftest import WAIT_MS
from tests.support import NO_PROXY
from tornado_queue.testing import ROOT, ServerProcess, free_port

pytestmark = pytest.mark.timeout(90)

SCREENSHOT = ROOT / "docs" / "dashboard.png"
XSS = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
CONNECTED = re.compile(r"^(Live|Polling) · updated ")
"""The connection line once the server answered: live with its event stream, else polling."""

expect.set_options(timeout=WAIT_MS)


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One memory-backed server for the module; each test uses queues of its own."""
    log = tmp_path_factory.mktemp("dashboard") / "server.log"
    with ServerProcess(log, "--log-level", "warning") as process:
        yield process


# --- the HTTP API, from the test ----------------------------------------------------------


def call(
    server: ServerProcess, method: str, path: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    """One API request over loopback (with a bearer token if given): (status, parsed JSON
    body or None)."""
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    sent = urllib.request.Request(server.url + path, data, headers, method=method)
    try:
        with NO_PROXY.open(sent, timeout=10) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def enqueue(server: ServerProcess, queue: str, payload: Any, **fields: Any) -> str:
    status, task = call(server, "POST", "/tasks", {"payload": payload, "queue": queue, **fields})
    assert status == 201, task
    return task["id"]


def dequeue(server: ServerProcess, queue: str, lease: int = 30) -> dict[str, Any]:
    status, task = call(server, "POST", f"/tasks/dequeue?queue={queue}&lease={lease}")
    assert status == 200, task
    return task


def complete(server: ServerProcess, task: dict[str, Any]) -> None:
    body = {"lease_id": task["lease_id"], "result": {"ok": True}}
    status, answer = call(server, "PUT", f"/tasks/{task['id']}/complete", body)
    assert status == 200, answer


def fail_for_good(server: ServerProcess, task: dict[str, Any], error: str) -> None:
    body = {"error": error, "retry": False, "lease_id": task["lease_id"]}
    status, answer = call(server, "PUT", f"/tasks/{task['id']}/fail", body)
    assert status == 200, answer
    assert answer["status"] == "failed"


# --- the page --------------------------------------------------------------------------------


def open_dashboard(page: Page, server: ServerProcess) -> None:
    page.goto(server.url + "/")
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)


def count(page: Page, queue: str, state: str) -> Locator:
    return page.locator(f'#queues tr[data-queue="{queue}"] td[data-state="{state}"]')


def row(page: Page, table: str, task_id: str) -> Locator:
    return page.locator(f'#{table} tr[data-task-id="{task_id}"]')


def rows_of_queue(page: Page, table: str, queue: str) -> Locator:
    queue_cell = page.get_by_role("cell", name=queue, exact=True)
    return page.locator(f"#{table} tbody tr").filter(has=queue_cell)


# --- the tests -------------------------------------------------------------------------------


def test_counts_and_lists_follow_tasks_through_the_api(page: Page, server: ServerProcess):
    open_dashboard(page, server)
    ids = [enqueue(server, "counting", {"n": n}, priority=0) for n in range(3)]

    expect(count(page, "counting", "pending")).to_have_text("3")
    head = rows_of_queue(page, "pending", "counting")
    expect(head).to_have_count(3)
    assert [head.nth(i).get_attribute("data-task-id") for i in range(3)] == ids

    complete(server, dequeue(server, "counting"))

    expect(count(page, "counting", "completed")).to_have_text("1")
    expect(count(page, "counting", "pending")).to_have_text("2")
    expect(row(page, "pending", ids[0])).to_have_count(0)

    leased = dequeue(server, "counting", lease=90)

    expect(count(page, "counting", "processing")).to_have_text("1")
    countdown = row(page, "processing", leased["id"]).locator(".countdown")
    expect(countdown).to_have_text(re.compile(r"^1m [23]\ds$"))
    first = countdown.text_content()
    expect(countdown).not_to_have_text(first)  # it ticks between polls' data changes


def test_a_failed_task_is_retried_and_deleted_from_the_page(page: Page, server: ServerProcess):
    first, second, third = (enqueue(server, "flaky", {"n": n}) for n in range(3))
    fail_for_good(server, dequeue(server, "flaky"), "SMTP 550: mailbox unavailable")
    fail_for_good(server, dequeue(server, "flaky"), "timeout after 30 s")
    open_dashboard(page, server)

    expect(count(page, "flaky", "failed")).to_have_text("2")
    failed_row = row(page, "failed", first)
    expect(failed_row).to_contain_text("SMTP 550: mailbox unavailable")

    # A refused action shows the server's problem detail: this Retry is sent for the task
    # that is still pending, which the server answers with a 409.
    retry_url = f"{server.url}/tasks/{first}/retry"
    page.route(retry_url, lambda route: route.continue_(url=f"{server.url}/tasks/{third}/retry"))
    failed_row.get_by_role("button", name="Retry").click()
    notice = page.locator("#notice")
    expect(notice).to_contain_text(f"Retry of task {first} failed")
    expect(notice).to_contain_text("it is pending; only failed tasks can be retried")
    page.unroute(retry_url)

    failed_row.get_by_role("button", name="Retry").click()

    expect(notice).to_contain_text(f"Task {first} (flaky) is pending again")
    assert call(server, "GET", f"/tasks/{first}")[1]["status"] == "pending"
    expect(count(page, "flaky", "failed")).to_have_text("1")
    expect(row(page, "pending", first)).to_have_count(1)

    page.once("dialog", lambda dialog: dialog.accept())
    row(page, "failed", second).get_by_role("button", name="Delete").click()

    expect(row(page, "failed", second)).to_have_count(0)
    expect(count(page, "flaky", "failed")).to_have_text("0")
    assert call(server, "GET", f"/tasks/{second}")[0] == 404


def test_a_queues_failed_tasks_are_retried_together_after_a_confirmation(
    page: Page, server: ServerProcess
):
    for n in range(2):
        enqueue(server, "bulk", {"n": n})
        fail_for_good(server, dequeue(server, "bulk"), "gateway timeout")
    enqueue(server, "bulk-other", {})
    fail_for_good(server, dequeue(server, "bulk-other"), "kept")
    enqueue(server, "bulk-fine", {})
    open_dashboard(page, server)

    expect(count(page, "bulk", "failed")).to_have_text("2")
    retry_all = page.locator('#queues tr[data-queue="bulk"] .retry-all')
    expect(retry_all).to_be_visible()
    expect(page.locator('#queues tr[data-queue="bulk-fine"] .retry-all')).to_be_hidden()

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first; no means nothing
    retry_all.click()
    expect(count(page, "bulk", "failed")).to_have_text("2")

    messages: list[str] = []
    page.once("dialog", lambda dialog: (messages.append(dialog.message), dialog.accept()))
    retry_all.click()

    notice = page.locator("#notice")
    expect(notice).to_contain_text("2 failed tasks are pending again in queue bulk")
    assert messages == ["Put all 2 failed tasks of queue bulk back to pending?"]
    expect(count(page, "bulk", "failed")).to_have_text("0")
    expect(count(page, "bulk", "pending")).to_have_text("2")
    expect(retry_all).to_be_hidden()
    expect(count(page, "bulk-other", "failed")).to_have_text("1")


def test_a_queue_is_paused_and_resumed_from_the_page(page: Page, server: ServerProcess):
    enqueue(server, "pausable", {})
    open_dashboard(page, server)

    row = page.locator('#queues tr[data-queue="pausable"]')
    pause = row.locator("button.pause")
    expect(pause).to_have_text("Pause")
    questions: list[str] = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    pause.click()

    expect(page.locator("#notice")).to_contain_text("Queue pausable is paused")
    expect(row.locator(".paused-badge")).to_be_visible()
    expect(pause).to_have_text("Resume")
    assert questions and questions[0].startswith("Pause queue pausable?")
    assert call(server, "GET", "/queues/pausable")[1]["settings"]["paused"] is True
    assert call(server, "POST", "/tasks/dequeue?queue=pausable")[0] == 404

    pause.click()  # resuming asks nothing

    expect(page.locator("#notice")).to_contain_text("Queue pausable is delivering again")
    expect(row.locator(".paused-badge")).to_be_hidden()
    expect(pause).to_have_text("Pause")
    assert call(server, "POST", "/tasks/dequeue?queue=pausable")[0] == 200


def test_hostile_payloads_and_errors_are_shown_as_text_and_never_run(
    page: Page, server: ServerProcess
):
    enqueue(server, "hostile", {"html": "failing"})
    fail_for_good(server, dequeue(server, "hostile"), "<img src=x onerror=window.pwned=3>")
    pending = enqueue(server, "hostile", {"note": XSS})
    open_dashboard(page, server)

    expect(row(page, "pending", pending)).to_contain_text(XSS)
    expect(rows_of_queue(page, "failed", "hostile")).to_contain_text(
        "<img src=x onerror=window.pwned=3>"
    )
    expect(page.get_by_text(XSS, exact=False)).to_be_visible()
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_page_runs_under_a_csp_that_allows_only_its_own_scripts(
    page: Page, server: ServerProcess, csp_violations: list[str]
):
    # The server's own policy (handlers/html.py: script-src 'self', no inline anything).
    enqueue(server, "guarded", {"n": 1})
    open_dashboard(page, server)

    expect(count(page, "guarded", "pending")).to_have_text("1")
    assert csp_violations == []


def test_a_narrow_window_scrolls_tables_not_the_page(page: Page, server: ServerProcess):
    enqueue(server, "narrow", {"long": "x" * 300})
    page.set_viewport_size({"width": 360, "height": 740})
    open_dashboard(page, server)

    expect(count(page, "narrow", "pending")).to_be_visible()
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0


def test_a_banner_shows_while_the_server_is_down_and_goes_when_it_is_back(
    page: Page, tmp_path: Path
):
    port = str(free_port())
    first = ServerProcess(tmp_path / "first.log", "--port", port, "--log-level", "warning")
    try:
        enqueue(first, "before", {"n": 1})
        open_dashboard(page, first)
        expect(count(page, "before", "pending")).to_have_text("1")
        banner = page.locator("#banner")
        expect(banner).to_be_hidden()
    finally:
        first.kill()

    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Cannot reach the server")
    expect(page.locator("#connection-text")).to_have_text("Disconnected")

    with ServerProcess(tmp_path / "second.log", "--port", port, "--log-level", "warning") as back:
        enqueue(back, "after", {"n": 2})

        expect(banner).to_be_hidden()
        expect(count(page, "after", "pending")).to_have_text("1")
        # A new memory store: the old queue is gone from the page too.
        expect(page.locator('#queues tr[data-queue="before"]')).to_have_count(0)


def test_a_screenshot_of_a_realistic_mix(page: Page, tmp_path: Path):
    """Three queues in every state, with a few seconds of throughput. The picture is written to
    a temporary file; with TQ_UPDATE_SCREENSHOT=1 (or when missing) also to docs/dashboard.png
    for the README, so that an ordinary test run leaves the working tree as it was."""
    with ServerProcess(tmp_path / "server.log", "--log-level", "warning") as shop:
        open_dashboard(page, shop)
        completed = 0

        def burst(number: int, emails: int) -> None:
            nonlocal completed
            for n in range(emails):
                email = {"to": f"user{number * 20 + n}@example.com", "template": "welcome"}
                enqueue(shop, "emails", email)
            for n in range(2 + number % 3):
                image = {"src": f"s3://uploads/{number}-{n}.jpg", "sizes": [64, 512]}
                enqueue(shop, "images", image, priority=n % 2)
            if number % 2 == 0:
                report = {"report": "daily-sales", "day": f"2026-11-{10 + number:02d}"}
                enqueue(shop, "reports", report, priority=5)
            for _ in range(emails - 1):
                complete(shop, dequeue(shop, "emails"))
            complete(shop, dequeue(shop, "images"))
            completed += emails
            # Wait for the chart to have a sample after it (live or polling): one point on the
            # chart per burst.
            total = page.locator('#queues tfoot td[data-state="completed"]')
            expect(total).to_have_text(str(completed))
            expect(page.locator("#totals")).to_contain_text(f" · {completed} completed · ")

        month_end = {"report": "monthly-close", "month": "2026-11"}
        enqueue(shop, "reports", month_end, delay=3600)  # scheduled
        for number, emails in enumerate((4, 7, 11, 9, 13, 8, 6)):
            burst(number, emails)
        fail_for_good(shop, dequeue(shop, "emails"), "SMTP 550: mailbox unavailable")
        error = "PIL.UnidentifiedImageError: cannot identify image file"
        fail_for_good(shop, dequeue(shop, "images"), error)
        dequeue(shop, "emails", lease=120)
        dequeue(shop, "images", lease=45)
        dequeue(shop, "reports", lease=300)
        burst(7, 10)
        assert call(shop, "PATCH", "/queues/reports", {"paused": True})[0] == 200
        expect(page.locator('#queues tr[data-queue="reports"] .paused-badge')).to_be_visible()
        expect(page.locator('#queues tfoot td[data-state="processing"]')).to_have_text("3")
        expect(page.locator('#queues tfoot td[data-state="failed"]')).to_have_text("2")

        shot = page.screenshot(path=tmp_path / "dashboard.png", full_page=True)

    assert shot.startswith(b"\x89PNG")
    if os.environ.get("TQ_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot)
