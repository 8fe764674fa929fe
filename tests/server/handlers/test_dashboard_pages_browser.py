"""The dashboard's queue page (`#/queues/NAME`) and task page (`#/tasks/ID`) in a real browser:
Debian's Chromium driven by Playwright against a real server process. Every wait is
Playwright's auto-waiting `expect`, never a sleep.

Chromium missing is a failure with the command to install it, never a skip.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Dialog, Locator, Page, expect

from tests.server.handlers.conftest import WAIT_MS
from tests.server.handlers.test_dashboard_browser import (
    CONNECTED,
    XSS,
    call,
    complete,
    dequeue,
    enqueue,
    fail_for_good,
    open_dashboard,
)
from tornado_queue.testing import ROOT, ServerProcess

pytestmark = pytest.mark.timeout(90)

PAGE_SIZE = 20
"""Tasks per page of a queue page's list (dashboard.js)."""

SCREENSHOT = ROOT / "docs" / "dashboard-queue.png"

expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One memory-backed server for the module; each test uses queues of its own."""
    log = tmp_path_factory.mktemp("dashboard-pages") / "server.log"
    with ServerProcess(log, "--log-level", "warning") as process:
        yield process


# --- the pages -------------------------------------------------------------------------------


def open_queue_page(page: Page, server: ServerProcess, queue: str, state: str = "") -> None:
    query = f"?state={state}" if state else ""
    page.goto(f"{server.url}/#/queues/{queue}{query}")
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)
    expect(page.locator("#queue-name")).to_have_text(queue)


def tab(page: Page, state: str) -> Locator:
    return page.locator(f"#tab-{state}")


def tab_count(page: Page, state: str) -> Locator:
    return page.locator(f'#queue-tabs [data-count="{state}"]')


def list_rows(page: Page) -> Locator:
    return page.locator("#queue-tasks tbody tr")


def shown_ids(page: Page) -> list[str]:
    rows = list_rows(page)
    return [rows.nth(i).get_attribute("data-task-id") or "" for i in range(rows.count())]


def setting_input(page: Page, name: str) -> Locator:
    return page.locator(f'#settings-form [name="{name}"]')


def limit(page: Page, setting: str) -> Locator:
    return page.locator(f'#queue-limits li[data-setting="{setting}"]')


def accept_and_keep(messages: list[str]) -> Callable[[Dialog], None]:
    """A dialog handler that accepts the confirmation and keeps its question."""

    def handle(dialog: Dialog) -> None:
        messages.append(dialog.message)
        dialog.accept()

    return handle


def fail_tasks(server: ServerProcess, queue: str, count: int, error: str) -> list[str]:
    ids = [enqueue(server, queue, {"n": n}) for n in range(count)]
    for _ in ids:
        fail_for_good(server, dequeue(server, queue), error)
    return ids


# --- the tests -------------------------------------------------------------------------------


def test_a_queue_page_opens_from_the_overview_and_back_returns_to_it(
    page: Page, server: ServerProcess
):
    enqueue(server, "opened", {"n": 1})
    enqueue(server, "opened", {"n": 2}, delay=3600)
    open_dashboard(page, server)

    page.locator('#queues tr[data-queue="opened"]').get_by_role("link", name="opened").click()

    expect(page).to_have_url(f"{server.url}/#/queues/opened")
    expect(page.locator("#queue-page")).to_be_visible()
    expect(page.locator("#overview")).to_be_hidden()
    expect(tab_count(page, "pending")).to_have_text("1")
    expect(tab_count(page, "scheduled")).to_have_text("1")
    expect(tab_count(page, "failed")).to_have_text("0")
    expect(tab(page, "pending")).to_have_attribute("aria-selected", "true")
    expect(list_rows(page)).to_have_count(1)
    expect(page).to_have_title("opened · tornado_queue")

    tab(page, "scheduled").click()  # a tab replaces the history entry: back still leaves

    expect(page).to_have_url(f"{server.url}/#/queues/opened?state=scheduled")
    expect(list_rows(page)).to_have_count(1)
    expect(list_rows(page)).to_contain_text('{"n":2}')

    page.go_back()

    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator("#queue-page")).to_be_hidden()
    expect(page.locator('#queues tr[data-queue="opened"] td[data-state="pending"]')).to_have_text(
        "1"
    )


def test_the_pause_switch_pauses_after_a_confirmation_and_resumes(
    page: Page, server: ServerProcess
):
    enqueue(server, "switched", {})
    open_queue_page(page, server, "switched")
    switch = page.get_by_role("switch", name="Paused")
    expect(switch).to_have_attribute("aria-checked", "false")

    page.once("dialog", lambda dialog: dialog.dismiss())  # asked first; no means nothing
    switch.click()
    expect(page.locator("#queue-paused-badge")).to_be_hidden()
    assert call(server, "GET", "/queues/switched")[1]["settings"]["paused"] is None

    questions: list[str] = []
    page.once("dialog", accept_and_keep(questions))
    switch.click()

    expect(page.locator("#notice")).to_contain_text("Queue switched is paused")
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(page.locator("#queue-paused-badge")).to_be_visible()
    assert questions[0].startswith("Pause queue switched?")
    assert call(server, "GET", "/queues/switched")[1]["settings"]["paused"] is True
    assert call(server, "POST", "/tasks/dequeue?queue=switched")[0] == 404

    switch.click()  # resuming asks nothing

    expect(page.locator("#notice")).to_contain_text("Queue switched is delivering again")
    expect(switch).to_have_attribute("aria-checked", "false")
    expect(page.locator("#queue-paused-badge")).to_be_hidden()
    assert call(server, "POST", "/tasks/dequeue?queue=switched")[0] == 200


def test_limits_are_set_and_cleared_through_the_form_and_a_refusal_shows_the_detail(
    page: Page, server: ServerProcess
):
    enqueue(server, "limited", {})
    open_queue_page(page, server, "limited")
    expect(limit(page, "none")).to_be_visible()

    setting_input(page, "max_processing").fill("2")
    setting_input(page, "rate_limit.tasks").fill("5")
    setting_input(page, "rate_limit.seconds").fill("10")
    page.get_by_role("button", name="Save settings").click()

    expect(page.locator("#notice")).to_contain_text("Settings of queue limited saved")
    expect(limit(page, "max_processing")).to_have_text("at most 2 processing at once")
    expect(limit(page, "rate_limit")).to_have_text("5 tasks per 10 s")
    expect(limit(page, "none")).to_have_count(0)
    settings = call(server, "GET", "/queues/limited")[1]["settings"]
    assert settings["max_processing"] == 2
    assert settings["rate_limit"] == {"tasks": 5, "seconds": 10}
    assert settings["lease_seconds"] is None  # untouched fields are not sent

    setting_input(page, "max_processing").fill("0")
    page.get_by_role("button", name="Save settings").click()

    error = page.locator("#settings-error")
    expect(error).to_have_text("setting 'max_processing' must be from 1 to 100000, got 0")
    expect(setting_input(page, "max_processing")).to_have_attribute("aria-invalid", "true")
    expect(setting_input(page, "max_processing")).to_be_focused()
    expect(setting_input(page, "max_processing")).to_have_value("0")  # polls leave it be
    assert call(server, "GET", "/queues/limited")[1]["settings"]["max_processing"] == 2

    page.get_by_role("button", name="Undo changes").click()

    expect(setting_input(page, "max_processing")).to_have_value("2")
    expect(error).to_be_hidden()

    setting_input(page, "max_processing").fill("")  # an empty field clears its setting
    page.get_by_role("button", name="Save settings").click()

    expect(limit(page, "max_processing")).to_have_count(0)
    expect(limit(page, "rate_limit")).to_be_visible()
    assert call(server, "GET", "/queues/limited")[1]["settings"]["max_processing"] is None


def test_a_half_filled_rate_limit_shows_the_servers_detail(page: Page, server: ServerProcess):
    enqueue(server, "half-rate", {})
    open_queue_page(page, server, "half-rate")

    setting_input(page, "rate_limit.tasks").fill("5")
    page.get_by_role("button", name="Save settings").click()

    detail = "setting 'rate_limit' needs field 'seconds'"
    expect(page.locator("#settings-error")).to_have_text(detail)
    expect(setting_input(page, "rate_limit.seconds")).to_have_attribute("aria-invalid", "true")
    assert call(server, "GET", "/queues/half-rate")[1]["settings"]["rate_limit"] is None


def test_settings_changed_elsewhere_show_in_an_untouched_form(page: Page, server: ServerProcess):
    enqueue(server, "changed-elsewhere", {})
    open_queue_page(page, server, "changed-elsewhere")
    expect(setting_input(page, "max_attempts")).to_have_value("")

    body = {"max_attempts": 7, "dead_letter_queue": "changed-elsewhere-dead"}
    assert call(server, "PATCH", "/queues/changed-elsewhere", body)[0] == 200

    expect(setting_input(page, "max_attempts")).to_have_value("7")
    expect(limit(page, "max_attempts")).to_have_text("7 attempts")
    dead_letters = limit(page, "dead_letter_queue").get_by_role("link")
    expect(dead_letters).to_have_text("changed-elsewhere-dead")
    expect(dead_letters).to_have_attribute("href", "#/queues/changed-elsewhere-dead")


def test_a_list_longer_than_a_page_is_paged(page: Page, server: ServerProcess):
    ids = [enqueue(server, "paged", {"n": n}) for n in range(2 * PAGE_SIZE + 5)]
    open_queue_page(page, server, "paged")
    previous = page.get_by_role("button", name="Previous")
    following = page.get_by_role("button", name="Next")
    shown = page.locator("#queue-range")

    expect(shown).to_have_text("1–20 of 45")
    expect(list_rows(page)).to_have_count(PAGE_SIZE)
    assert shown_ids(page) == ids[:PAGE_SIZE]  # dequeue order
    expect(previous).to_be_disabled()

    following.click()

    expect(shown).to_have_text("21–40 of 45")
    expect(page).to_have_url(f"{server.url}/#/queues/paged?offset=20")
    assert shown_ids(page) == ids[PAGE_SIZE : 2 * PAGE_SIZE]

    following.click()

    expect(shown).to_have_text("41–45 of 45")
    expect(list_rows(page)).to_have_count(5)
    assert shown_ids(page) == ids[2 * PAGE_SIZE :]
    expect(following).to_be_disabled()

    previous.click()

    expect(shown).to_have_text("21–40 of 45")
    expect(list_rows(page)).to_have_count(PAGE_SIZE)

    # The list shrinks under the last page: the page moves back to what is left.
    page.get_by_role("button", name="Next").click()
    expect(shown).to_have_text("41–45 of 45")
    for _ in range(10):
        complete(server, dequeue(server, "paged"))
    expect(shown).to_have_text("21–35 of 35")


def test_a_task_page_opens_from_a_list_with_payload_group_and_timestamps(
    page: Page, server: ServerProcess
):
    payload = {"to": "ada@example.com", "note": XSS, "lines": [1, 2, {"deep": None}]}
    task_id = enqueue(server, "detailed", payload, group="customer-7", expires_in=3600, priority=4)
    leased = dequeue(server, "detailed")
    complete(server, leased)
    task = call(server, "GET", f"/tasks/{task_id}")[1]
    open_queue_page(page, server, "detailed", "completed")

    list_rows(page).first.get_by_role("link", name=task_id[:8]).click()

    expect(page).to_have_url(f"{server.url}/#/tasks/{task_id}")
    expect(page.locator("#task-page")).to_be_visible()
    expect(page.locator("#task-id")).to_have_text(task_id)
    expect(page.locator("#task-status")).to_have_text("completed")
    expect(page.locator("#task-payload")).to_have_text(json.dumps(payload, indent=2))
    expect(page.locator("#task-result")).to_have_text(json.dumps({"ok": True}, indent=2))
    expect(page.locator("#task-group")).to_have_text("customer-7")
    expect(page.locator("#task-priority")).to_have_text("4")
    expect(page.locator("#task-attempts")).to_have_text(f"1 of {task['max_attempts']}")
    expect(page.locator("#task-dead-lettered-from")).to_have_text("–")
    expect(page.locator("#task-error-card")).to_be_hidden()
    for field in ("created_at", "available_at", "started_at", "finished_at", "expires_at"):
        moment = page.locator(f'#task-page dd[data-time="{field}"] time')
        expect(moment).to_have_attribute("datetime", task[field])
    expect(page.locator('#task-page dd[data-time="expires_at"]')).to_contain_text("in 59m")
    expect(page.locator('#task-page dd[data-time="created_at"]')).to_contain_text("ago")
    expect(page.locator('#task-page dd[data-time="lease_expires_at"]')).to_have_text("–")
    expect(page.get_by_role("button", name="Delete")).to_be_visible()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()  # only failed tasks
    # The payload's markup is text: nothing was parsed or run.
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"

    page.get_by_role("link", name="detailed", exact=True).first.click()

    expect(page).to_have_url(f"{server.url}/#/queues/detailed?state=completed")
    expect(tab(page, "completed")).to_have_attribute("aria-selected", "true")


def test_a_processing_task_page_shows_its_lease_and_offers_no_delete(
    page: Page, server: ServerProcess
):
    enqueue(server, "leased", {"n": 1})
    leased = dequeue(server, "leased", lease=300)
    open_dashboard(page, server)

    page.locator(f'#processing tr[data-task-id="{leased["id"]}"]').get_by_role("link").click()

    expect(page.locator("#task-status")).to_have_text("processing")
    expect(page.locator("#task-lease-id")).to_have_text(leased["lease_id"])
    lease = page.locator('#task-page dd[data-time="lease_expires_at"]')
    expect(lease.locator("time")).to_have_attribute("datetime", leased["lease_expires_at"])
    expect(lease).to_contain_text("in 4m")
    expect(page.get_by_role("button", name="Delete")).to_be_hidden()
    expect(page.get_by_role("button", name="Retry")).to_be_hidden()


def test_a_failed_task_is_retried_and_deleted_from_its_page_after_confirmations(
    page: Page, server: ServerProcess
):
    (task_id,) = fail_tasks(server, "one-off", 1, "<b>boom</b> at line 3")
    open_dashboard(page, server)
    page.locator(f'#failed tr[data-task-id="{task_id}"]').get_by_role("link").click()
    expect(page.locator("#task-error")).to_have_text("<b>boom</b> at line 3")
    retry = page.get_by_role("button", name="Retry")

    page.once("dialog", lambda dialog: dialog.dismiss())
    retry.click()
    expect(page.locator("#task-status")).to_have_text("failed")

    questions: list[str] = []
    page.once("dialog", accept_and_keep(questions))
    retry.click()

    expect(page.locator("#task-status")).to_have_text("pending")
    expect(page.locator("#notice")).to_contain_text(f"Task {task_id} (one-off) is pending again")
    expect(retry).to_be_hidden()
    assert questions == [f"Retry task {task_id}? It goes back to pending with fresh attempts."]

    page.once("dialog", accept_and_keep(questions))
    page.get_by_role("button", name="Delete").click()

    expect(page.locator("#notice")).to_contain_text(f"Task {task_id} (one-off) was deleted")
    expect(page).to_have_url(f"{server.url}/#/queues/one-off")
    assert questions[1] == f"Delete task {task_id} for good?"
    assert call(server, "GET", f"/tasks/{task_id}")[0] == 404


def test_a_missing_task_is_said_on_its_page_while_the_connection_stays_live(
    page: Page, server: ServerProcess
):
    page.goto(f"{server.url}/#/tasks/no-such-task")

    expect(page.locator("#task-problem")).to_contain_text("no task with id 'no-such-task'")
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)
    expect(page.locator("#banner")).to_be_hidden()
    expect(page.locator("#task-details")).to_be_hidden()


def test_the_shown_states_tasks_are_purged_after_a_confirmation(page: Page, server: ServerProcess):
    fail_tasks(server, "purged", 3, "bad input")
    kept = enqueue(server, "purged", {"keep": True})
    open_queue_page(page, server, "purged", "failed")
    purge = page.locator("#queue-purge")
    expect(purge).to_have_text("Purge 3 failed")

    page.once("dialog", lambda dialog: dialog.dismiss())
    purge.click()
    expect(tab_count(page, "failed")).to_have_text("3")

    questions: list[str] = []
    page.once("dialog", accept_and_keep(questions))
    purge.click()

    expect(page.locator("#notice")).to_contain_text("3 failed tasks were deleted from queue purged")
    assert questions == ["Delete all 3 failed tasks of queue purged for good?"]
    expect(tab_count(page, "failed")).to_have_text("0")
    expect(page.locator("#queue-tasks-empty")).to_have_text("No failed tasks.")
    expect(purge).to_be_hidden()
    expect(tab_count(page, "pending")).to_have_text("1")
    assert call(server, "GET", f"/tasks/{kept}")[1]["status"] == "pending"

    dequeue(server, "purged")
    tab(page, "processing").click()

    expect(list_rows(page)).to_have_count(1)
    expect(purge).to_be_hidden()  # processing tasks are never purged


def test_failed_tasks_are_retried_from_the_queue_page(page: Page, server: ServerProcess):
    fail_tasks(server, "revived", 2, "upstream 503")
    open_queue_page(page, server, "revived", "failed")
    retry_all = page.get_by_role("button", name="Retry failed")
    expect(list_rows(page)).to_have_count(2)

    questions: list[str] = []
    page.once("dialog", accept_and_keep(questions))
    retry_all.click()

    expect(page.locator("#notice")).to_contain_text("2 failed tasks are pending again in queue")
    assert questions == ["Put all 2 failed tasks of queue revived back to pending?"]
    expect(tab_count(page, "failed")).to_have_text("0")
    expect(tab_count(page, "pending")).to_have_text("2")
    expect(list_rows(page)).to_have_count(0)
    expect(retry_all).to_be_hidden()


def test_a_bad_queue_name_is_said_on_its_page(page: Page, server: ServerProcess):
    page.goto(f"{server.url}/#/queues/no%20spaces")

    expect(page.locator("#queue-problem")).to_contain_text("path parameter 'name' must be")
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)


def test_the_pages_run_under_the_csp_and_fit_a_narrow_window(
    page: Page, server: ServerProcess, csp_violations: list[str]
):
    task_id = enqueue(server, "narrow-pages", {"long": "x" * 400}, group="g" * 128)
    page.set_viewport_size({"width": 360, "height": 740})

    child = enqueue(server, "narrow-pages", {"long": "x" * 400}, after=[task_id])
    schedule = {"queue": "narrow-pages", "payload": {"long": "x" * 400}, "cron": "0 6 * * *"}
    assert call(server, "PUT", "/schedules/narrow-pages", schedule)[0] == 201

    for hash_ in (
        "#/queues/narrow-pages",
        "#/queues/narrow-pages?state=waiting",
        f"#/tasks/{task_id}",
        f"#/tasks/{child}",
        "#/schedules",
    ):
        page.goto(f"{server.url}/{hash_}")
        expect(page.locator("#connection-text")).to_have_text(CONNECTED)
        expect(page.locator("main:not([hidden]) .card").first).to_be_visible()
        expect(page.locator("main:not([hidden])")).to_contain_text("x" * 40)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, hash_
    assert csp_violations == []


def test_the_views_ask_for_a_token_like_the_overview(page: Page, tmp_path: Path):
    token = "queue-page-admin-token-0123456789"
    flags = ("--log-level", "warning", "--auth-token", token)
    with ServerProcess(tmp_path / "server.log", *flags) as guarded:
        page.goto(f"{guarded.url}/#/queues/secret")

        expect(page.locator("#token-form")).to_be_visible()
        expect(page.locator("#connection-text")).to_have_text("Needs a token")
        page.locator("#token-input").fill(token)
        page.get_by_role("button", name="Use token").click()

        expect(page.locator("#connection-text")).to_have_text(CONNECTED)
        expect(tab_count(page, "pending")).to_have_text("0")


# --- workflows, progress and schedules ---------------------------------------------------------


def test_a_waiting_task_is_counted_and_listed_under_its_tab_with_its_parents_linked(
    page: Page, server: ServerProcess
):
    first = enqueue(server, "workflow", {"step": "fetch"})
    second = enqueue(server, "workflow", {"step": "resize"})
    child = enqueue(server, "workflow", {"step": "publish"}, after=[first, second], group="g-1")
    open_dashboard(page, server)

    waiting_count = page.locator('#queues tr[data-queue="workflow"] td[data-state="waiting"]')
    expect(waiting_count).to_have_text("1")
    expect(page.locator('#queues tr[data-queue="workflow"] td[data-state="pending"]')).to_have_text(
        "2"
    )
    assert page.locator("#queues thead th").nth(3).text_content() == "Waiting"

    page.goto(f"{server.url}/#/queues/workflow")
    expect(tab_count(page, "waiting")).to_have_text("1")
    expect(tab_count(page, "pending")).to_have_text("2")
    tab(page, "waiting").click()

    expect(page).to_have_url(f"{server.url}/#/queues/workflow?state=waiting")
    expect(tab(page, "waiting")).to_have_attribute("aria-selected", "true")
    headings = page.locator("#queue-tasks thead th")
    expect(headings).to_have_text(["Task", "Waits for", "Group", "Waiting since", "Payload"])
    for th in range(headings.count()):
        assert headings.nth(th).get_attribute("scope") == "col"
    expect(list_rows(page)).to_have_count(1)
    waiting_row = list_rows(page).first
    assert waiting_row.get_attribute("data-task-id") == child
    expect(waiting_row).to_contain_text('{"step":"publish"}')
    expect(waiting_row).to_contain_text("g-1")
    expect(waiting_row.locator("td").nth(3)).to_contain_text("ago")
    parents = waiting_row.locator("td.parents a")
    expect(parents).to_have_text([first[:8], second[:8]])
    expect(parents.first).to_have_attribute("href", f"#/tasks/{first}")

    complete(server, dequeue(server, "workflow"))  # one parent done: it still waits

    expect(tab_count(page, "completed")).to_have_text("1")
    expect(tab_count(page, "waiting")).to_have_text("1")

    parents.nth(1).click()  # the parent's page, from the child's row

    expect(page).to_have_url(f"{server.url}/#/tasks/{second}")
    expect(page.locator("#task-status")).to_have_text("pending")

    complete(server, dequeue(server, "workflow"))  # the last parent: the child is pending
    page.goto(f"{server.url}/#/queues/workflow?state=waiting")

    expect(tab_count(page, "waiting")).to_have_text("0")
    expect(tab_count(page, "pending")).to_have_text("1")
    expect(page.locator("#queue-tasks-empty")).to_have_text("No waiting tasks.")


def test_a_task_page_shows_its_parents_and_dependents_as_links_that_navigate(
    page: Page, server: ServerProcess
):
    parent = enqueue(server, "chain", {"step": 1})
    middle = enqueue(server, "chain", {"step": 2}, after=[parent])
    last = enqueue(server, "chain", {"step": 3}, after=[middle])
    plain = enqueue(server, "chain-plain", {"step": 0})

    page.goto(f"{server.url}/#/tasks/{middle}")
    expect(page.locator("#task-status")).to_have_text("waiting")
    expect(page.locator("#task-status")).to_have_class("status-badge state-waiting")
    workflow = page.locator("#task-workflow-card")
    expect(workflow).to_be_visible()
    expect(page.locator("#task-after a")).to_have_text([parent])
    expect(page.locator("#task-dependents a")).to_have_text([last])

    page.locator("#task-after").get_by_role("link", name=parent).click()

    expect(page).to_have_url(f"{server.url}/#/tasks/{parent}")
    expect(page.locator("#task-id")).to_have_text(parent)
    expect(page.locator("#task-status")).to_have_text("pending")
    expect(page.locator("#task-after li")).to_have_text(["None: it waits for no task."])
    expect(page.locator("#task-dependents a")).to_have_text([middle])

    page.locator("#task-dependents").get_by_role("link", name=middle).click()
    expect(page).to_have_url(f"{server.url}/#/tasks/{middle}")
    page.locator("#task-dependents").get_by_role("link", name=last).click()

    expect(page).to_have_url(f"{server.url}/#/tasks/{last}")
    expect(page.locator("#task-after a")).to_have_text([middle])
    expect(page.locator("#task-dependents li")).to_have_text(["None: no task waits for it."])

    page.go_back()  # each link was a step in the history
    expect(page.locator("#task-id")).to_have_text(middle)

    page.goto(f"{server.url}/#/tasks/{plain}")  # outside any workflow: no card
    expect(page.locator("#task-id")).to_have_text(plain)
    expect(page.locator("#task-status")).to_have_text("pending")
    expect(workflow).to_be_hidden()

    # Deleting a parent asks, saying that its waiting dependents fail with it.
    page.goto(f"{server.url}/#/tasks/{parent}")
    expect(page.locator("#task-dependents a")).to_have_text([middle])
    questions: list[str] = []
    page.once("dialog", accept_and_keep(questions))
    page.get_by_role("button", name="Delete").click()

    expect(page).to_have_url(f"{server.url}/#/queues/chain")
    assert questions == [f"Delete task {parent} for good? Tasks still waiting for it fail with it."]
    assert call(server, "GET", f"/tasks/{middle}")[1]["status"] == "failed"


def test_a_task_page_shows_its_progress_once_reported(page: Page, server: ServerProcess):
    task_id = enqueue(server, "progressing", {"n": 1})
    leased = dequeue(server, "progressing", lease=300)
    page.goto(f"{server.url}/#/tasks/{task_id}")
    expect(page.locator("#task-status")).to_have_text("processing")
    expect(page.locator("#task-progress-card")).to_be_hidden()
    expect(page.locator("#task-schedule-field")).to_be_hidden()
    expect(page.locator("#task-fire-time-field")).to_be_hidden()

    progress = {"done": 40, "of": 100, "note": XSS}
    body = {"lease_id": leased["lease_id"], "progress": progress}
    assert call(server, "PUT", f"/tasks/{task_id}/progress", body)[0] == 200

    expect(page.locator("#task-progress-card")).to_be_visible()
    expect(page.locator("#task-progress")).to_have_text(json.dumps(progress, indent=2))
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"


def test_the_schedules_view_lists_schedules_and_their_tasks_show_where_they_came_from(
    page: Page, server: ServerProcess
):
    nightly = {
        "queue": "reports-view",
        "payload": {"report": "daily"},
        "cron": "0 6 * * *",
        "timezone": "Europe/Berlin",
        "priority": 5,
        "max_attempts": 2,
    }
    assert call(server, "PUT", "/schedules/nightly-view", nightly)[0] == 201
    open_dashboard(page, server)

    page.locator("nav.views").get_by_role("link", name="Schedules").click()

    expect(page).to_have_url(f"{server.url}/#/schedules")
    expect(page.locator("#schedules-page")).to_be_visible()
    expect(page.locator("#overview")).to_be_hidden()
    expect(page).to_have_title("Schedules · tornado_queue")
    expect(page.locator('nav.views a[aria-current="page"]')).to_have_text("Schedules")
    row = page.locator('#schedules tr[data-schedule="nightly-view"]')
    expect(row.locator("th")).to_have_attribute("scope", "row")
    expect(row.locator("td")).to_have_text(
        [
            "reports-view",
            "0 6 * * *",
            "Europe/Berlin",
            "5",
            "2",
            re.compile(r"^in \d+"),
            "–",
            '{"report":"daily"}',
        ]
    )
    expect(row.locator(".paused-badge")).to_be_hidden()
    expect(row.get_by_role("link", name="reports-view")).to_have_attribute(
        "href", "#/queues/reports-view"
    )

    # A schedule put meanwhile shows by itself; paused, it says it never runs.
    ticking = {"queue": "ticks-view", "payload": {"tick": True}, "every": 1}
    assert call(server, "PUT", "/schedules/ticking-view", ticking)[0] == 201
    ticks = page.locator('#schedules tr[data-schedule="ticking-view"]')
    expect(ticks.locator("td").nth(1)).to_have_text("every 1 s")
    expect(ticks.locator("td").nth(2)).to_have_text("–")  # an interval ignores the timezone
    expect(ticks.locator("td").nth(6)).to_contain_text("ago")  # it has fired
    paused = {**ticking, "paused": True}
    assert call(server, "PUT", "/schedules/ticking-view", paused)[0] == 200
    expect(ticks.locator(".paused-badge")).to_be_visible()
    expect(ticks.locator("td").nth(5)).to_have_text("paused: never")

    # Its task names the schedule and the occurrence it stands for.
    _, tasks = call(server, "GET", "/queue/view?queue=ticks-view")
    task = tasks[0]
    page.goto(f"{server.url}/#/tasks/{task['id']}")
    expect(page.locator("#task-schedule")).to_have_text("ticking-view")
    fire_time = page.locator('#task-page dd[data-time="fire_time"] time')
    expect(fire_time).to_have_attribute("datetime", task["fire_time"])
    expect(page.locator('nav.views a[aria-current="page"]')).to_have_count(0)

    page.locator("#task-schedule").click()

    expect(page).to_have_url(f"{server.url}/#/schedules")
    expect(ticks).to_be_visible()
    page.locator("nav.views").get_by_role("link", name="Queues").click()
    expect(page.locator("#overview")).to_be_visible()
    expect(page.locator('nav.views a[aria-current="page"]')).to_have_text("Queues")


def test_a_screenshot_of_a_queue_page(page: Page, tmp_path: Path):
    """A queue with limits and tasks in every state but waiting. The picture is written to a
    temporary file; with TQ_UPDATE_SCREENSHOT=1 (or when missing) also to
    docs/dashboard-queue.png for the README, so that an ordinary test run leaves the working
    tree as it was."""
    with ServerProcess(tmp_path / "server.log", "--log-level", "warning") as shop:
        templates = ["welcome", "reset", "receipt"]
        groups = ["customer-acme", "customer-initech", None, None, None, None, "customer-globex"]

        def email(n: int) -> dict[str, str]:
            return {"to": f"user{100 + n}@example.com", "template": templates[n % 3]}

        for n in range(8):
            enqueue(shop, "emails", email(n))
        for _ in range(6):
            complete(shop, dequeue(shop, "emails"))
        for _ in range(2):
            fail_for_good(shop, dequeue(shop, "emails"), "SMTP 550: mailbox unavailable")
        for n in range(8, 10):
            enqueue(shop, "emails", email(n), delay=3600)
        for n in range(10, 12):
            enqueue(shop, "emails", email(n))
        dequeue(shop, "emails", lease=120)
        dequeue(shop, "emails", lease=45)
        for n in range(12, 21):
            group = groups[n % len(groups)]
            fields = {"group": group} if group else {}
            enqueue(shop, "emails", email(n), priority=1 if n == 17 else 0, **fields)
        settings = {
            "max_processing": 8,
            "rate_limit": {"tasks": 100, "seconds": 60},
            "max_attempts": 5,
            "dead_letter_queue": "emails-dead",
            "ttl_seconds": 86400,
        }
        assert call(shop, "PATCH", "/queues/emails", settings)[0] == 200
        open_queue_page(page, shop, "emails")

        expect(tab_count(page, "pending")).to_have_text("9")
        expect(tab_count(page, "failed")).to_have_text("2")
        expect(list_rows(page)).to_have_count(9)
        expect(limit(page, "dead_letter_queue")).to_be_visible()
        expect(setting_input(page, "ttl_seconds")).to_have_value("86400")
        shot = page.screenshot(path=tmp_path / "dashboard-queue.png", full_page=True)

    assert shot.startswith(b"\x89PNG")
    if os.environ.get("TQ_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.parent.mkdir(exist_ok=True)
        SCREENSHOT.write_bytes(shot)
