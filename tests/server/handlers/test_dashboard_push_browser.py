"""Push queues on the dashboard, in a real browser: the marker in the queues table, the queue
page's Push panel (target, header names, this server's pushes, the last error as text) and
rotating the signing secret.

The page talks to a real server process; the push parts of its answers (`settings.push`,
`push_status`, `POST /queues/{name}/push/rotate-secret`) are played by the test through
`page.route`, as the push API describes them, so the page's side is tested whatever the server
delivers. Every wait is Playwright's auto-waiting `expect`, never a sleep.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Dialog, Page, Route, expect

from tests.server.handlers.conftest import WAIT_MS
from tests.server.handlers.test_dashboard_browser import CONNECTED, enqueue, open_dashboard
from tornado_queue.testing import ServerProcess

pytestmark = pytest.mark.timeout(90)

expect.set_options(timeout=WAIT_MS)

AUTHORIZATION = "Bearer receiver-credential-0123456789"
TENANT = "tenant-value-9876543210"
ERROR = "push answered 500: <b>x</b>"
TARGET = {
    "url": "https://receiver.internal/hooks/tasks?via=dashboard",
    "timeout_seconds": 45,
    "headers": {"Authorization": AUTHORIZATION, "X-Tenant": TENANT},
    "secret_rotated_at": "2026-12-07T12:00:00Z",
}
STATUS = {
    "in_flight": 2,
    "pushed": 17,
    "failed": 3,
    "last_success_at": "2026-12-07T12:05:00Z",
    "last_error": ERROR,
    "last_error_at": "2026-12-07T12:06:00Z",
}
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One memory-backed server for the module; each test uses queues of its own."""
    log = tmp_path_factory.mktemp("dashboard-push") / "server.log"
    with ServerProcess(log, "--log-level", "warning") as process:
        yield process


@pytest.fixture(autouse=True)
def routes_end_first(page: Page) -> Iterator[None]:
    """The fakes' handlers finish before the page's context closes: a poll answered while the
    test ends would otherwise fetch through a closed context."""
    yield
    page.unroute_all(behavior="wait")


# --- the fakes -------------------------------------------------------------------------------


def path_is(path: str) -> Callable[[str], bool]:
    return lambda url: urlsplit(url).path == path


def as_push_queue(
    page: Page,
    queue: str,
    target: dict[str, Any] | None = None,
    status: dict[str, Any] | None = None,
) -> None:
    """`GET /queues/{queue}` answers as the server's, with the queue's push setting and this
    server's push status added, as from a server where the queue is a push queue."""

    def answer(route: Route) -> None:
        if route.request.method != "GET":
            route.fallback()
            return
        response = route.fetch()
        document = response.json()
        document["settings"]["push"] = TARGET if target is None else target
        document["push_status"] = STATUS if status is None else status
        route.fulfill(response=response, json=document)

    page.route(path_is(f"/queues/{queue}"), answer)


class FakeRotation:
    """`POST /queues/{queue}/push/rotate-secret` played by the test: each request it takes is
    counted and answered with `status` and `body`."""

    def __init__(self, page: Page, queue: str, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body
        self.methods: list[str] = []
        page.route(path_is(f"/queues/{queue}/push/rotate-secret"), self._answer)

    def _answer(self, route: Route) -> None:
        self.methods.append(route.request.method)
        kind = "application/json" if self.status < 400 else "application/problem+json"
        route.fulfill(status=self.status, content_type=kind, json=self.body)


def open_queue_page(page: Page, server: ServerProcess, queue: str) -> None:
    page.goto(f"{server.url}/#/queues/{queue}")
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)
    expect(page.locator("#queue-name")).to_have_text(queue)


def answering(choice: str, messages: list[str]) -> Callable[[Dialog], None]:
    """A dialog handler that keeps the question and accepts or dismisses it."""

    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        if choice == "accept":
            dialog.accept()
        else:
            dialog.dismiss()

    return handle


# --- the tests -------------------------------------------------------------------------------


def test_the_queues_table_marks_push_queues_and_only_them(page: Page, server: ServerProcess):
    enqueue(server, "mark-pushed", {"n": 1})
    enqueue(server, "mark-pulled", {"n": 2})
    as_push_queue(page, "mark-pushed")
    asked: list[str] = []
    page.on("request", lambda request: asked.append(urlsplit(request.url).path))

    open_dashboard(page, server)

    pushed = page.locator('#queues tr[data-queue="mark-pushed"] .push-badge')
    pulled = page.locator('#queues tr[data-queue="mark-pulled"] .push-badge')
    expect(pushed).to_be_visible()
    expect(pushed).to_have_text("push")
    expect(pushed).to_have_attribute("title", f"Pushed to {TARGET['url']}")
    expect(pulled).to_have_count(1)
    expect(pulled).to_be_hidden()
    # The marker comes from the settings the overview reads anyway: at most one read of a
    # queue's settings per read of the queue list, never one per redraw of each row.
    assert asked.count("/queues/mark-pushed") <= asked.count("/queues")
    assert AUTHORIZATION not in page.content()


def test_the_push_panel_shows_the_target_header_names_and_the_last_error_as_text(
    page: Page, server: ServerProcess, csp_violations: list[str]
):
    enqueue(server, "panel-pushed", {"n": 1})
    as_push_queue(page, "panel-pushed")

    open_queue_page(page, server, "panel-pushed")

    card = page.locator("#push-card")
    expect(card).to_be_visible()
    expect(page.locator("#queue-push-badge")).to_be_visible()
    expect(page.locator("#push-url")).to_have_text(TARGET["url"])
    expect(page.locator("#push-timeout")).to_have_text("45 s")
    expect(page.locator("#push-concurrency")).to_have_text("at most 10")  # max_processing unset
    expect(page.locator("#push-headers li")).to_have_text(["Authorization", "X-Tenant"])
    expect(page.locator("#push-rotated time")).to_have_attribute(
        "datetime", "2026-12-07T12:00:00.000Z"
    )
    expect(page.locator("#push-in-flight")).to_have_text("2")
    expect(page.locator("#push-pushed")).to_have_text("17")
    expect(page.locator("#push-failed")).to_have_text("3")
    expect(page.locator("#push-last-success time")).to_have_attribute(
        "datetime", "2026-12-07T12:05:00.000Z"
    )
    expect(page.locator("#push-last-error-at time")).to_have_attribute(
        "datetime", "2026-12-07T12:06:00.000Z"
    )
    # The receiver's answer is text: shown literally, no element made of it.
    expect(page.locator("#push-last-error")).to_have_text(ERROR)
    assert page.locator("#push-last-error").evaluate("(pre) => pre.children.length") == 0
    assert page.locator("b").count() == 0
    # Header values may be credentials: not in the page, not even in an attribute.
    content = page.content()
    assert AUTHORIZATION not in content
    assert TENANT not in content
    assert "receiver-credential" not in page.locator("body").inner_text()
    # Consumers cannot dequeue from a push queue, and the page offers no way to.
    expect(page.get_by_role("button", name=re.compile("dequeue", re.IGNORECASE))).to_have_count(0)
    expect(card).to_contain_text("consumers cannot dequeue")
    assert csp_violations == []


def test_the_panel_reads_epoch_seconds_and_a_queue_without_pushes_yet(
    page: Page, server: ServerProcess
):
    enqueue(server, "panel-fresh", {"n": 1})
    target = {"url": "http://10.0.0.7:8080/t", "timeout_seconds": 90, "headers": {}}
    status = {
        "in_flight": 0,
        "pushed": 0,
        "failed": 0,
        "last_success_at": None,
        "last_error": None,
        "last_error_at": None,
    }
    target = {**target, "secret_rotated_at": None}
    as_push_queue(page, "panel-fresh", target, status)  # reads `target` at each answer

    open_queue_page(page, server, "panel-fresh")

    expect(page.locator("#push-url")).to_have_text("http://10.0.0.7:8080/t")
    expect(page.locator("#push-timeout")).to_have_text("90 s")
    expect(page.locator("#push-headers li")).to_have_text(["none"])
    expect(page.locator("#push-rotated")).to_have_text("never")
    expect(page.locator("#push-last-success")).to_have_text("none yet")
    expect(page.locator("#push-last-error-at")).to_have_text("none")
    expect(page.locator("#push-last-error")).to_be_hidden()

    # Times as epoch seconds read as well as ISO text (2026-12-07T12:00:00Z).
    target["secret_rotated_at"] = 1796644800
    page.reload()

    expect(page.locator("#push-rotated time")).to_have_attribute(
        "datetime", "2026-12-07T12:00:00.000Z"
    )


def test_a_pull_queue_has_no_push_panel_even_after_a_push_queue(page: Page, server: ServerProcess):
    enqueue(server, "switch-pushed", {"n": 1})
    enqueue(server, "switch-pulled", {"n": 1})
    as_push_queue(page, "switch-pushed")
    open_queue_page(page, server, "switch-pushed")
    expect(page.locator("#push-card")).to_be_visible()

    page.goto(f"{server.url}/#/queues/switch-pulled")

    expect(page.locator("#queue-name")).to_have_text("switch-pulled")
    expect(page.locator("#tab-pending [data-count]")).to_have_text("1")
    expect(page.locator("#push-card")).to_be_hidden()
    expect(page.locator("#queue-push-badge")).to_be_hidden()


def test_rotating_the_secret_asks_first_and_shows_the_new_secret_once(
    page: Page, server: ServerProcess
):
    enqueue(server, "rotated", {"n": 1})
    as_push_queue(page, "rotated")
    body = {"secret": SECRET, "previous_secret_valid_until": "2026-12-08T12:00:00Z"}
    rotation = FakeRotation(page, "rotated", 200, body)
    open_queue_page(page, server, "rotated")
    questions: list[str] = []
    rotate = page.get_by_role("button", name="Rotate secret")
    box = page.locator("#push-secret-box")

    page.once("dialog", answering("dismiss", questions))  # no means nothing is sent
    rotate.click()
    expect(box).to_be_hidden()
    assert len(questions) == 1 and "queue rotated" in questions[0]

    page.once("dialog", answering("accept", questions))
    rotate.click()

    expect(box).to_be_visible()
    expect(page.locator("#push-secret")).to_have_value(SECRET)
    expect(page.locator("#push-secret-queue")).to_have_text("rotated")
    expect(box).to_contain_text("never shows it again")
    expect(page.locator("#push-secret-note")).to_contain_text("previous")
    expect(page.locator("#notice")).to_contain_text("was rotated")
    assert rotation.methods == ["POST"]
    # Shown as the value of a read-only input, the secret is in no attribute or text node.
    assert SECRET not in page.content()

    page.get_by_role("button", name="Done").click()

    expect(box).to_be_hidden()
    expect(page.locator("#push-secret")).to_have_value("")

    # Leaving the page forgets a secret still shown.
    page.once("dialog", answering("accept", questions))
    rotate.click()
    expect(page.locator("#push-secret")).to_have_value(SECRET)
    page.locator("#queue-page .crumbs").get_by_role("link", name="All queues").click()
    expect(page.locator("#overview")).to_be_visible()
    page.go_back()
    expect(page.locator("#push-card")).to_be_visible()
    expect(box).to_be_hidden()
    expect(page.locator("#push-secret")).to_have_value("")
    assert rotation.methods == ["POST", "POST"]


def test_a_refused_rotation_says_why_and_shows_no_secret(page: Page, server: ServerProcess):
    enqueue(server, "refused", {"n": 1})
    as_push_queue(page, "refused")
    detail = "queue 'refused' has no push setting: set one with PATCH /queues/refused first"
    problem = {"title": "Conflict", "status": 409, "detail": detail}
    FakeRotation(page, "refused", 409, problem)
    open_queue_page(page, server, "refused")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Rotate secret").click()

    expect(page.locator("#notice")).to_contain_text(detail)
    expect(page.locator("#push-secret-box")).to_be_hidden()
