"""The dashboard's live updates in a real browser: it follows the server's event stream
(GET /events), shows the workers (GET /workers) and a task's history, and polls when there is
no stream. Every wait is Playwright's auto-waiting `expect` or a wait for the page's next
request, never a sleep.

Most tests answer /events (and /workers, or a task's history) with a small fake through
`page.route`: the page's side of the stream (its parser, Last-Event-ID, resync, the bearer
token, which parts it reads again, falling back to polling) is tested whatever the server has.
The last tests use the server's own routes and nothing else. The page is opened with
`?poll=…&refresh=…` of ten minutes, so that no timer refreshes it during a test: what it shows
after its first read can only have come from an event.
"""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from tests.server.handlers.conftest import WAIT_MS
from tests.server.handlers.test_dashboard_browser import (
    CONNECTED,
    XSS,
    call,
    complete,
    count,
    dequeue,
    enqueue,
    row,
)
from tests.support import NO_PROXY
from tornado_queue.testing import ServerProcess

pytestmark = pytest.mark.timeout(90)

expect.set_options(timeout=WAIT_MS)

NO_TIMERS = "?poll=600000&refresh=600000"
"""The page's query that leaves it no timer to refresh by within a test: events only."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One memory-backed server for the module; each test uses queues of its own."""
    log = tmp_path_factory.mktemp("dashboard-events") / "server.log"
    with ServerProcess(log, "--log-level", "warning") as process:
        yield process


# --- the fakes -------------------------------------------------------------------------------


def path_is(path: str) -> Callable[[str], bool]:
    return lambda url: urlsplit(url).path == path


is_stream = path_is("/events")


class FakeStream:
    """GET /events as a server with a stream answers it, played by the test: each request
    gets `retry: 100`, the events sent since the one before, and the end of the stream, so
    the page reconnects a tenth of a second later, with the id of the last event it read.
    (The server's own stream stays open; the page must cope with both.) With `token`, a
    request without that bearer token gets a 401, as from a server with auth."""

    def __init__(self, page: Page, token: str | None = None) -> None:
        self.page = page
        self.token = token
        self.headers: list[dict[str, str]] = []
        self._queued = ["id: fake-0\n\n"]
        self._next = 1
        page.route(is_stream, self._answer)

    def send(self, event: str, task: dict[str, Any], **data: Any) -> str:
        """Queue an event about `task` for the page's next request; its id."""
        event_id = f"fake-{self._next}"
        self._next += 1
        fields = {
            "id": task["id"],
            "queue": task["queue"],
            "status": task["status"],
            "at": "2026-12-07T12:00:00Z",
            "attempts": task["attempts"],
            **data,
        }
        self._queued.append(f"id: {event_id}\nevent: {event}\ndata: {json.dumps(fields)}\n\n")
        return event_id

    def resync(self) -> None:
        self._queued.append("event: resync\ndata: {}\n\n")

    def wait_for(self, condition: Callable[[], bool]) -> None:
        """Wait, request by request of the page's, until `condition()` holds."""
        deadline = time.monotonic() + WAIT_MS / 1000
        while not condition():
            assert time.monotonic() < deadline, "the page never asked for that"
            self.page.wait_for_event("request", lambda request: is_stream(request.url))

    def _answer(self, route: Route) -> None:
        headers = route.request.all_headers()
        self.headers.append(headers)
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            problem = {"title": "Unauthorized", "status": 401, "detail": "a bearer token"}
            route.fulfill(status=401, content_type="application/problem+json", json=problem)
            return
        body = "retry: 100\n\n" + "".join(self._queued)
        self._queued.clear()
        route.fulfill(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
            body=body,
        )


def no_stream(page: Page, status: int = 404) -> None:
    """GET /events answers as on a server without it."""
    problem = {"title": "Not Found", "status": status, "detail": "no route GET /events"}

    def answer(route: Route) -> None:
        route.fulfill(status=status, content_type="application/problem+json", json=problem)

    page.route(is_stream, answer)


def task_of(server: ServerProcess, task_id: str) -> dict[str, Any]:
    status, task = call(server, "GET", f"/tasks/{task_id}")
    assert status == 200, task
    return task


def seconds_ago(seconds: float) -> str:
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def dequeue_as(server: ServerProcess, queue: str, worker: str) -> dict[str, Any]:
    """A dequeue by a consumer that names itself (X-Worker-Id)."""
    sent = urllib.request.Request(
        f"{server.url}/tasks/dequeue?queue={queue}&lease=300",
        data=b"",
        headers={"X-Worker-Id": worker},
        method="POST",
    )
    with NO_PROXY.open(sent, timeout=10) as response:
        assert response.status == 200
        return json.loads(response.read())


def fail_to_retry(server: ServerProcess, task: dict[str, Any], error: str) -> None:
    body = {"error": error, "retry": True, "lease_id": task["lease_id"]}
    status, answer = call(server, "PUT", f"/tasks/{task['id']}/fail", body)
    assert status == 200, answer


class Requests:
    """The URLs the page asked for, in order, and those answered."""

    def __init__(self, page: Page) -> None:
        self.sent: list[str] = []
        self.finished: list[str] = []
        page.on("request", lambda request: self.sent.append(request.url))
        page.on("requestfinished", lambda request: self.finished.append(request.url))

    def of(self, path: str, urls: list[str] | None = None) -> list[str]:
        return [url for url in (self.sent if urls is None else urls) if urlsplit(url).path == path]

    def since_last(self, path: str) -> list[str]:
        """The requests from the last one for `path` on: the last refresh, when `path` is
        the first thing each refresh reads."""
        starts = [i for i, url in enumerate(self.sent) if urlsplit(url).path == path]
        return self.sent[starts[-1] :] if starts else []


def queue_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["queue"][0]


def open_live(page: Page, server: ServerProcess, hash_: str = "") -> None:
    page.goto(f"{server.url}/{NO_TIMERS}{hash_}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#connection-text")).to_have_text(re.compile(r"^Live · updated "))


# --- the parser ------------------------------------------------------------------------------

PARSE = """(chunks) => {
  const events = [];
  const retries = [];
  const parser = new window.TornadoQueueSse.EventStreamParser({
    onEvent: (event) => events.push(event),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return { events, retries, lastEventId: parser.lastEventId };
}"""


def test_the_parser_reads_the_event_stream_format_across_any_chunks(
    page: Page, server: ServerProcess
):
    no_stream(page)
    page.goto(server.url + "/")

    chunks = [
        "\ufeffretry: 1500\n",  # a byte order mark first, then a reconnection time
        ": keep-alive\n\n",  # a comment, then a blank line with no data: nothing
        "id: a-1\r",  # CR and LF of one line break in two chunks
        '\nevent: enqueued\r\ndata: {"id"',
        ":1}\r\r",  # a line cut in two; CR alone ends lines, an empty one dispatches
        "data:no space\ndata:  two spaces\n",
        "\n",
        "event: not sent\nid: a-2\n\n",  # an id alone moves the last id and sends nothing
        "retry: soon\nid: bad\0id\nunknown: field\ndata\n\n",  # ignored, ignored, ignored, ""
        "data: cut off by the end",
    ]
    parsed = page.evaluate(PARSE, chunks)

    assert parsed["events"] == [
        {"type": "enqueued", "data": '{"id":1}', "lastEventId": "a-1"},
        {"type": "message", "data": "no space\n two spaces", "lastEventId": "a-1"},
        {"type": "message", "data": "", "lastEventId": "a-2"},
    ]
    assert parsed["retries"] == [1500]
    assert parsed["lastEventId"] == "a-2"

    one_by_one = list("id: 7\r\nevent: completed\r\ndata: x\r\n\r\n")
    assert page.evaluate(PARSE, one_by_one)["events"] == [
        {"type": "completed", "data": "x", "lastEventId": "7"}
    ]


# --- the event stream, played by the fake ----------------------------------------------------


def test_an_event_redraws_the_counts_and_lists_of_its_queue_only(page: Page, server: ServerProcess):
    first = enqueue(server, "ev-mine", {"n": 1})
    enqueue(server, "ev-other", {"n": 1})
    stream = FakeStream(page)
    seen = Requests(page)
    open_live(page, server)
    expect(count(page, "ev-mine", "pending")).to_have_text("1")
    expect(count(page, "ev-other", "pending")).to_have_text("1")
    # Its first read, and the one when the stream opened, are over before the change.
    stream.wait_for(lambda: len(seen.of("/queues", seen.finished)) >= 2)

    second = enqueue(server, "ev-mine", {"n": 2})
    stream.send("enqueued", task_of(server, second))

    expect(count(page, "ev-mine", "pending")).to_have_text("2")
    expect(row(page, "pending", second)).to_have_count(1)
    drawn = seen.since_last("/queues")
    assert {queue_of(url) for url in seen.of("/queue/view", drawn)} == {"ev-mine"}
    assert not [url for url in drawn if urlsplit(url).path.startswith("/queues/")]  # no settings

    complete(server, dequeue(server, "ev-mine"))
    stream.send("delivered", task_of(server, first))
    stream.send("completed", task_of(server, first))

    expect(count(page, "ev-mine", "completed")).to_have_text("1")
    expect(count(page, "ev-mine", "pending")).to_have_text("1")
    expect(row(page, "pending", first)).to_have_count(0)
    expect(count(page, "ev-other", "pending")).to_have_text("1")


def test_the_open_queue_and_task_pages_follow_their_own_events(page: Page, server: ServerProcess):
    task_id = enqueue(server, "ev-page", {"n": 1})
    stream = FakeStream(page)
    open_live(page, server, "#/queues/ev-page")
    tab_count = page.locator('#queue-tabs [data-count="processing"]')
    expect(tab_count).to_have_text("0")

    leased = dequeue(server, "ev-page")
    stream.send("delivered", task_of(server, task_id), lease_id=leased["lease_id"])

    expect(tab_count).to_have_text("1")

    page.goto(f"{server.url}/{NO_TIMERS}#/tasks/{task_id}")
    expect(page.locator("#task-status")).to_have_text("processing")
    complete(server, leased)
    stream.send("completed", task_of(server, task_id))

    expect(page.locator("#task-status")).to_have_text("completed")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_the_stream_resumes_from_the_last_event_id_and_a_resync_reads_everything(
    page: Page, server: ServerProcess
):
    task_id = enqueue(server, "ev-resume", {"n": 1})
    stream = FakeStream(page)
    open_live(page, server)
    expect(count(page, "ev-resume", "pending")).to_have_text("1")

    last = stream.send("enqueued", task_of(server, task_id))
    stream.wait_for(lambda: stream.headers[-1].get("last-event-id") == last)

    assert "last-event-id" not in stream.headers[0]  # the first connection has none
    assert stream.headers[-1]["accept"] == "text/event-stream"

    # Missed while it could not be replayed: only a resync tells the page.
    enqueue(server, "ev-resync", {"n": 1})
    stream.resync()

    expect(count(page, "ev-resync", "pending")).to_have_text("1")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_the_stream_is_read_with_the_bearer_token(page: Page, tmp_path: Path):
    token = "events-admin-token-0123456789"
    flags = ("--log-level", "warning", "--auth-token", token)
    with ServerProcess(tmp_path / "server.log", *flags) as guarded:
        stream = FakeStream(page, token=token)
        page.goto(f"{guarded.url}/{NO_TIMERS}")
        expect(page.locator("#token-form")).to_be_visible()
        stream.wait_for(lambda: len(stream.headers) > 0)
        assert "authorization" not in stream.headers[0]

        page.locator("#token-input").fill(token)
        page.get_by_role("button", name="Use token").click()

        expect(page.locator("#connection")).to_have_attribute("data-state", "live")
        assert stream.headers[-1]["authorization"] == f"Bearer {token}"
        status, _ = call(guarded, "POST", "/tasks", {"payload": {}, "queue": "ev-guarded"}, token)
        assert status == 201
        _, task = call(guarded, "GET", "/queue/view?queue=ev-guarded", token=token)
        stream.send("enqueued", task[0])

        expect(count(page, "ev-guarded", "pending")).to_have_text("1")


# --- falling back to polling -------------------------------------------------------------------


@pytest.mark.parametrize("status", [404, 405])
def test_without_an_event_stream_the_page_polls_and_says_so(
    page: Page, server: ServerProcess, status: int
):
    no_stream(page, status)
    page.goto(server.url + "/")

    connection = page.locator("#connection")
    expect(connection).to_have_attribute("data-state", "polling")
    expect(page.locator("#connection-text")).to_have_text(re.compile(r"^Polling · updated "))
    expect(connection).to_have_attribute("title", re.compile(f"answered {status}"))
    expect(page.locator("#updates-note")).to_have_text("Polls the JSON API every second")

    enqueue(server, f"ev-polled-{status}", {"n": 1})  # no event: the next poll shows it

    expect(count(page, f"ev-polled-{status}", "pending")).to_have_text("1")
    expect(connection).to_have_attribute("data-state", "polling")


def test_a_failing_stream_falls_back_to_polling_and_goes_live_once_it_opens(
    page: Page, server: ServerProcess
):
    tries: list[str] = []

    def refuse(route: Route) -> None:
        tries.append(route.request.url)
        route.abort("connectionrefused")

    page.route(is_stream, refuse)
    page.goto(server.url + "/")

    connection = page.locator("#connection")
    expect(connection).to_have_attribute("title", re.compile(r"3 tries in a row"))
    expect(connection).to_have_attribute("data-state", "polling")
    enqueue(server, "ev-fallback", {"n": 1})
    expect(count(page, "ev-fallback", "pending")).to_have_text("1")  # by polling
    assert len(tries) >= 3

    page.unroute(is_stream, refuse)
    FakeStream(page)

    expect(connection).to_have_attribute("data-state", "live")
    expect(page.locator("#updates-note")).to_contain_text("Live")


# --- the workers view and a task's history, from faked answers ---------------------------------


def test_the_workers_view_lists_workers_and_follows_their_events(page: Page, server: ServerProcess):
    held = enqueue(server, "ev-workers", {"n": 1})
    task = task_of(server, held)
    stream = FakeStream(page)
    workers = [
        {
            "id": "mailer-1",
            "last_seen": seconds_ago(2),
            "tasks": [held],
            "completed": 4,
            "failed": 1,
        },
        {"id": XSS, "last_seen": seconds_ago(30), "tasks": [], "completed": 0, "failed": 0},
    ]

    def answer(route: Route) -> None:
        route.fulfill(status=200, json=workers)

    page.route(path_is("/workers"), answer)
    open_live(page, server)

    page.locator("nav.views").get_by_role("link", name="Workers").click()

    expect(page).to_have_url(f"{server.url}/{NO_TIMERS}#/workers")
    expect(page).to_have_title("Workers · tornado_queue")
    mailer = page.locator('#workers tr[data-worker="mailer-1"]')
    expect(mailer.locator("th")).to_have_text("mailer-1")
    expect(mailer.locator("td")).to_have_text([re.compile(r"ago$"), held[:8], "4", "1"])
    expect(mailer.get_by_role("link")).to_have_attribute("href", f"#/tasks/{held}")
    expect(page.locator("#workers-count")).to_have_text("2 workers · 1 task held")
    expect(page.locator("#workers tbody tr").nth(1).locator("th")).to_have_text(XSS)
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"

    workers[0] = {**workers[0], "tasks": [], "completed": 5}
    stream.send("completed", task, worker="mailer-1")

    expect(mailer.locator("td.completed")).to_have_text("5")
    expect(mailer.locator("td.holds")).to_have_text("–")
    expect(page.locator("#workers-count")).to_have_text("2 workers · 0 tasks held")

    workers[0] = {**workers[0], "tasks": [held]}
    stream.send("delivered", task, worker="mailer-1")
    mailer.get_by_role("link", name=held[:8]).click()

    expect(page).to_have_url(f"{server.url}/{NO_TIMERS}#/tasks/{held}")
    expect(page.locator("#task-id")).to_have_text(held)


def test_the_workers_view_says_when_the_server_lists_none(page: Page, server: ServerProcess):
    no_stream(page)
    problem = {"title": "Not Found", "status": 404, "detail": "no route GET /workers"}

    def answer(route: Route) -> None:
        route.fulfill(status=404, content_type="application/problem+json", json=problem)

    page.route(path_is("/workers"), answer)
    page.goto(f"{server.url}/#/workers")

    expect(page.locator("#workers-problem")).to_have_text(
        "This server does not list its workers (GET /workers is 404)."
    )
    expect(page.locator("#connection-text")).to_have_text(CONNECTED)
    expect(page.locator("#workers-wrap")).to_be_hidden()


def test_a_task_page_shows_its_history_as_a_table(page: Page, server: ServerProcess):
    task_id = enqueue(server, "ev-history", {"n": 1})
    one, two = "lease-one-0123456789", "lease-two-0123456789"
    history = [
        {"at": "2026-12-07T12:00:00Z", "event": "enqueued"},
        {"at": "2026-12-07T12:00:01Z", "event": "delivered", "lease_id": one, "worker": "w-1"},
        {"at": "2026-12-07T12:00:02Z", "event": "failed", "lease_id": one, "error": XSS},
        {"at": "2026-12-07T12:00:03Z", "event": "lease_expired", "lease_id": two},
    ]
    with_history = True

    def answer(route: Route) -> None:
        response = route.fetch()
        task = response.json()
        if with_history:
            task["history"] = history
        else:
            task.pop("history", None)  # as from a server that keeps none
        route.fulfill(response=response, json=task)

    page.route(path_is(f"/tasks/{task_id}"), answer)
    no_stream(page)
    page.goto(f"{server.url}/#/tasks/{task_id}")

    card = page.locator("#task-history-card")
    expect(card).to_be_visible()
    rows = page.locator("#task-history tbody tr")
    expect(rows).to_have_count(4)
    expect(page.locator("#task-history tbody .event-badge")).to_have_text(
        ["enqueued", "delivered", "failed", "lease expired"]
    )
    expect(rows.nth(1).locator("td")).to_have_text(
        [re.compile(r" ago$"), "delivered", "lease-on", "w-1", "–"]
    )
    expect(rows.nth(1).locator("td.lease")).to_have_attribute("title", "lease-one-0123456789")
    expect(rows.nth(2).locator("td.error-text")).to_have_text(XSS)
    expect(rows.nth(0).locator("time")).to_have_attribute("datetime", "2026-12-07T12:00:00.000Z")
    expect(page.locator("#task-history-count")).to_have_text("4 changes, oldest first")
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("typeof window.pwned") == "undefined"

    with_history = False
    page.reload()

    expect(page.locator("#task-status")).to_have_text("pending")
    expect(card).to_be_hidden()


# --- the server's own routes -------------------------------------------------------------------
#
# These need the server's GET /events, GET /workers and the tasks' history; nothing is faked.


def test_the_servers_event_stream_redraws_the_page_without_polling(
    page: Page, server: ServerProcess
):
    open_live(page, server)

    task_id = enqueue(server, "ev-real", {"n": 1})
    expect(count(page, "ev-real", "pending")).to_have_text("1")
    expect(row(page, "pending", task_id)).to_have_count(1)

    leased = dequeue(server, "ev-real")
    expect(count(page, "ev-real", "processing")).to_have_text("1")
    complete(server, leased)

    expect(count(page, "ev-real", "completed")).to_have_text("1")
    expect(count(page, "ev-real", "processing")).to_have_text("0")
    expect(row(page, "processing", task_id)).to_have_count(0)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")


def test_the_servers_workers_show_what_they_hold_and_finish(page: Page, server: ServerProcess):
    task_id = enqueue(server, "ev-real-workers", {"n": 1})
    open_live(page, server, "#/workers")

    leased = dequeue_as(server, "ev-real-workers", "dashboard-worker-1")

    worker = page.locator('#workers tr[data-worker="dashboard-worker-1"]')
    expect(worker.get_by_role("link", name=task_id[:8])).to_have_attribute(
        "href", f"#/tasks/{task_id}"
    )
    expect(worker.locator("td.completed")).to_have_text("0")
    complete(server, leased)

    expect(worker.locator("td.completed")).to_have_text("1")
    expect(worker.locator("td.holds")).to_have_text("–")
    expect(worker.locator("td.last-seen")).to_have_text(re.compile(r"ago$"))


def test_the_servers_history_of_a_task_is_its_table(page: Page, server: ServerProcess):
    assert call(server, "PATCH", "/queues/ev-real-history", {"retry_backoff": 0})[0] == 200
    task_id = enqueue(server, "ev-real-history", {"n": 1})
    first = dequeue_as(server, "ev-real-history", "history-worker")
    fail_to_retry(server, first, "SMTP 451: try again later")
    open_live(page, server, f"#/tasks/{task_id}")
    badges = page.locator("#task-history tbody .event-badge")
    expect(badges).to_have_text(["enqueued", "delivered", "failed"])

    second = dequeue_as(server, "ev-real-history", "history-worker")
    complete(server, second)

    expect(badges).to_have_text(["enqueued", "delivered", "failed", "delivered", "completed"])
    rows = page.locator("#task-history tbody tr")
    expect(rows.nth(1).locator("td.worker")).to_have_text("history-worker")
    expect(rows.nth(1).locator("td.lease")).to_have_attribute("title", first["lease_id"])
    expect(rows.nth(2).locator("td.error-text")).to_have_text("SMTP 451: try again later")
    expect(rows.nth(3).locator("td.lease")).to_have_attribute("title", second["lease_id"])
    expect(page.locator("#task-status")).to_have_text("completed")
