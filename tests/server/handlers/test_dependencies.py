"""Task dependencies over HTTP, on every store: a task enqueued with `after` is `waiting` until
every parent is completed, then pending (or scheduled for its delay, counted from the
release); one batch can be a whole workflow ("#k" names an earlier item); a parent that fails
for good or is deleted fails its waiting dependents, naming it, down the chain; every bad
`after` is a 400 naming the field and changes nothing; waiting tasks are counted, listed and
in the metrics; a consumer parked on a dependent's queue wakes when its parent completes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from tornado.httpclient import AsyncHTTPClient
from tornado.ioloop import IOLoop

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    at,
    parse_timestamp,
    request,
)
from tornado_queue.limits import MAX_DEPENDENTS, MAX_PARENTS

EXPIRED_ERROR = "expired: not delivered before its expires_at"


async def call(client, base_url: str, method: str, path: str, body: Any = None) -> Any:
    """A request that must succeed; its document (None for an empty answer)."""
    response = await request(client, base_url, method, path, body)
    assert response.code in (200, 201, 204), response.body
    return assert_json(response, response.code) if response.body else None


async def enqueue(client, base_url: str, **fields: Any) -> dict[str, Any]:
    task = await call(client, base_url, "POST", "/tasks", {"payload": {}, **fields})
    return assert_task_document(task)


async def batch(client, base_url: str, *items: dict[str, Any]) -> list[str]:
    body = {"tasks": [{"payload": {}, **item} for item in items]}
    return (await call(client, base_url, "POST", "/tasks/batch", body))["ids"]


async def get(client, base_url: str, task_id: str) -> dict[str, Any]:
    return assert_task_document(await call(client, base_url, "GET", f"/tasks/{task_id}"))


async def dequeue(client, base_url: str, queue: str = "default") -> dict[str, Any] | None:
    response = await request(client, base_url, "POST", f"/tasks/dequeue?queue={queue}")
    return None if response.code == 404 else assert_json(response, 200)


async def complete(client, base_url: str, task: dict[str, Any]) -> dict[str, Any]:
    path = f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}"
    return await call(client, base_url, "PUT", path)


async def finish(client, base_url: str, task_id: str, queue: str = "default") -> None:
    """Dequeue the next task of `queue`, which must be `task_id`, and complete it."""
    task = await dequeue(client, base_url, queue)
    assert task is not None and task["id"] == task_id, task
    await complete(client, base_url, task)


async def fail_for_good(client, base_url: str, task_id: str) -> dict[str, Any]:
    """Dequeue the next task, which must be `task_id`, and fail it with `retry: false`."""
    task = await dequeue(client, base_url)
    assert task is not None and task["id"] == task_id, task
    path = f"/tasks/{task_id}/fail?lease_id={task['lease_id']}"
    return await call(client, base_url, "PUT", path, {"error": "boom", "retry": False})


async def stats(client, base_url: str, queue: str | None = None) -> dict[str, int]:
    path = "/queue/stats" + (f"?queue={queue}" if queue else "")
    return await call(client, base_url, "GET", path)


async def statuses(client, base_url: str, *task_ids: str) -> list[str]:
    return [(await get(client, base_url, task_id))["status"] for task_id in task_ids]


def stamp(epoch: float) -> str:
    return at(epoch).isoformat().replace("+00:00", "Z")


# -- waiting and release ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_task_enqueued_after_another_waits_until_it_completes(http_client, base_url):
    parent = await enqueue(http_client, base_url)

    child = await enqueue(http_client, base_url, after=[parent["id"]])

    assert (child["status"], child["after"], child["dependents"]) == (
        "waiting",
        [parent["id"]],
        None,
    )
    shown = await get(http_client, base_url, parent["id"])
    assert (shown["after"], shown["dependents"]) == (None, [child["id"]])
    assert (await stats(http_client, base_url))["waiting"] == 1

    # The waiting child is never delivered: only its parent is
    await finish(http_client, base_url, parent["id"])

    released = await get(http_client, base_url, child["id"])
    assert released["status"] == "pending" and released["after"] == [parent["id"]]
    assert (await stats(http_client, base_url))["waiting"] == 0
    await finish(http_client, base_url, child["id"])


@pytest.mark.gen_test
async def test_a_task_waits_for_every_parent_and_its_delay_counts_from_the_release(
    http_client, base_url, clock: FakeClock
):
    first, second = await enqueue(http_client, base_url), await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[first["id"], second["id"]], delay=30)
    assert child["status"] == "waiting"

    await finish(http_client, base_url, first["id"])
    assert await statuses(http_client, base_url, child["id"]) == ["waiting"]
    clock.advance(100)
    await finish(http_client, base_url, second["id"])

    released = await get(http_client, base_url, child["id"])
    assert released["status"] == "scheduled"
    assert parse_timestamp(released["available_at"]) == parse_timestamp(stamp(clock.time() + 30))
    assert await dequeue(http_client, base_url) is None
    clock.advance(30)
    await finish(http_client, base_url, child["id"])


@pytest.mark.gen_test
async def test_a_completed_parent_counts_as_done(http_client, base_url):
    parent = await enqueue(http_client, base_url)
    await finish(http_client, base_url, parent["id"])

    child = await enqueue(http_client, base_url, after=[parent["id"]])

    assert child["status"] == "pending"
    assert (await get(http_client, base_url, parent["id"]))["dependents"] == [child["id"]]


@pytest.mark.gen_test
async def test_a_fan_out_fan_in_workflow_in_one_batch_runs_in_order(http_client, base_url):
    # Given a workflow in one batch: fetch, then two resizes of it in another queue, then a
    # publish that waits for both
    ids = await batch(
        http_client,
        base_url,
        {"payload": {"step": "fetch"}},
        {"payload": {"step": "small"}, "queue": "resize", "after": ["#0"]},
        {"payload": {"step": "large"}, "queue": "resize", "after": ["#0"]},
        {"payload": {"step": "publish"}, "after": ["#1", "#2"]},
    )
    fetch, small, large, publish = ids
    assert await statuses(http_client, base_url, *ids) == [
        *("pending", "waiting", "waiting", "waiting")
    ]
    assert (await get(http_client, base_url, fetch))["dependents"] == [small, large]
    assert (await get(http_client, base_url, small))["after"] == [fetch]
    assert (await get(http_client, base_url, publish))["after"] == [small, large]
    assert (await stats(http_client, base_url, "resize"))["waiting"] == 2

    # When consumers take what is deliverable: only fetch at first
    assert await dequeue(http_client, base_url, "resize") is None
    await finish(http_client, base_url, fetch)
    # then both resizes, while publish still waits
    first = await dequeue(http_client, base_url, "resize")
    second = await dequeue(http_client, base_url, "resize")
    assert {first["id"], second["id"]} == {small, large}
    assert await dequeue(http_client, base_url) is None
    await complete(http_client, base_url, first)
    assert await dequeue(http_client, base_url) is None
    await complete(http_client, base_url, second)

    # Then publish runs last, and the whole workflow is completed
    await finish(http_client, base_url, publish)
    assert await statuses(http_client, base_url, *ids) == ["completed"] * 4
    assert (await stats(http_client, base_url))["waiting"] == 0


# -- failure and deletion cascade -------------------------------------------------------------


@pytest.mark.gen_test
async def test_a_parents_dead_fail_fails_its_dependents_down_the_chain(http_client, base_url):
    root = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[root["id"]])
    grandchild = await enqueue(http_client, base_url, after=[child["id"]])
    other = await enqueue(http_client, base_url, delay=60)
    unrelated = await enqueue(http_client, base_url, after=[other["id"]])

    failed = await fail_for_good(http_client, base_url, root["id"])

    # As soon as the fail answers, the whole chain is failed, each naming its own parent
    assert failed["status"] == "failed"
    shown_child = await get(http_client, base_url, child["id"])
    shown_grandchild = await get(http_client, base_url, grandchild["id"])
    assert (shown_child["status"], shown_child["error"]) == (
        "failed",
        f"parent task '{root['id']}' failed",
    )
    assert (shown_grandchild["status"], shown_grandchild["error"]) == (
        "failed",
        f"parent task '{child['id']}' failed",
    )
    assert shown_child["attempts"] == 0 and shown_child["finished_at"] is not None
    assert await statuses(http_client, base_url, unrelated["id"]) == ["waiting"]
    counts = await stats(http_client, base_url)
    assert (counts["failed"], counts["waiting"]) == (3, 1)
    assert (await call(http_client, base_url, "GET", "/queue/totals"))["failed"] == 3


@pytest.mark.gen_test
async def test_deleting_a_parent_fails_its_dependents(http_client, base_url):
    parent = await enqueue(http_client, base_url, delay=60)
    child = await enqueue(http_client, base_url, after=[parent["id"]])
    grandchild = await enqueue(http_client, base_url, after=[child["id"]])

    assert await call(http_client, base_url, "DELETE", f"/tasks/{parent['id']}") is None

    assert (await get(http_client, base_url, child["id"]))["error"] == (
        f"parent task '{parent['id']}' was deleted"
    )
    assert (await get(http_client, base_url, grandchild["id"]))["error"] == (
        f"parent task '{child['id']}' failed"
    )
    counts = await stats(http_client, base_url)
    assert (counts["failed"], counts["waiting"], counts["scheduled"]) == (2, 0, 0)


@pytest.mark.gen_test
async def test_purging_a_parent_fails_its_dependents(http_client, base_url):
    parent = await enqueue(http_client, base_url, queue="first")
    child = await enqueue(http_client, base_url, queue="then", after=[parent["id"]])

    purged = await call(http_client, base_url, "DELETE", "/queues/first/tasks?status=pending")

    assert purged == {"deleted": 1}
    shown = await get(http_client, base_url, child["id"])
    assert (shown["status"], shown["error"]) == (
        "failed",
        f"parent task '{parent['id']}' was deleted",
    )


@pytest.mark.gen_test
async def test_a_dead_lettered_parent_keeps_its_dependents_waiting(http_client, base_url):
    await call(http_client, base_url, "PATCH", "/queues/default", {"dead_letter_queue": "dead"})
    parent = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[parent["id"]])

    moved = await fail_for_good(http_client, base_url, parent["id"])

    assert (moved["queue"], moved["status"]) == ("dead", "pending")
    assert await statuses(http_client, base_url, child["id"]) == ["waiting"]
    await finish(http_client, base_url, parent["id"], "dead")
    assert await statuses(http_client, base_url, child["id"]) == ["pending"]


@pytest.mark.gen_test
async def test_a_waiting_task_can_expire(http_client, base_url, clock: FakeClock):
    parent = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[parent["id"]], expires_in=10)
    clock.advance(10)

    expired = await get(http_client, base_url, child["id"])

    assert (expired["status"], expired["error"]) == ("failed", EXPIRED_ERROR)
    assert (await call(http_client, base_url, "GET", "/queue/totals"))["expired"] == 1
    await finish(http_client, base_url, parent["id"])
    assert await statuses(http_client, base_url, child["id"]) == ["failed"]


@pytest.mark.gen_test
async def test_a_waiting_task_that_expires_fails_what_waits_for_it(
    http_client, base_url, clock: FakeClock
):
    parent = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[parent["id"]], expires_in=10)
    grandchild = await enqueue(http_client, base_url, after=[child["id"]])
    clock.advance(10)

    shown = await get(http_client, base_url, grandchild["id"])

    assert (shown["status"], shown["error"]) == ("failed", f"parent task '{child['id']}' failed")
    totals = await call(http_client, base_url, "GET", "/queue/totals")
    assert (totals["expired"], totals["failed"]) == (1, 1)


@pytest.mark.gen_test
async def test_a_dependent_failed_by_its_parent_is_not_dead_lettered(http_client, base_url):
    await call(http_client, base_url, "PATCH", "/queues/then", {"dead_letter_queue": "dead"})
    parent = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, queue="then", after=[parent["id"]])

    await fail_for_good(http_client, base_url, parent["id"])

    shown = await get(http_client, base_url, child["id"])
    assert (shown["status"], shown["queue"], shown["dead_lettered_from"]) == (
        "failed",
        "then",
        None,
    )
    assert (await call(http_client, base_url, "GET", "/queue/totals?queue=then"))["failed"] == 1


@pytest.mark.gen_test
async def test_retrying_a_failed_parent_leaves_its_failed_dependents_to_be_retried(
    http_client, base_url
):
    parent = await enqueue(http_client, base_url)
    child = await enqueue(http_client, base_url, after=[parent["id"]])
    await fail_for_good(http_client, base_url, parent["id"])

    retried = await call(http_client, base_url, "POST", f"/tasks/{parent['id']}/retry")

    assert retried["status"] == "pending"
    assert await statuses(http_client, base_url, child["id"]) == ["failed"]
    await call(http_client, base_url, "POST", f"/tasks/{child['id']}/retry")
    assert await statuses(http_client, base_url, child["id"]) == ["pending"]


# -- bad parents ------------------------------------------------------------------------------

UNKNOWN = "no-such-task"
TOO_MANY = [f"t{n}" for n in range(MAX_PARENTS + 1)]


@pytest.mark.parametrize(
    ("after", "named"),
    [
        ("{pending}", "field 'after' must be a list of task ids, got a string"),
        ([], f"field 'after' must name 1 to {MAX_PARENTS} tasks, got 0"),
        (TOO_MANY, f"field 'after' must name 1 to {MAX_PARENTS} tasks, got {MAX_PARENTS + 1}"),
        ([7], "field 'after'[0] must be a task id, got 'a number'"),
        (["{pending}", ""], "field 'after'[1] must be a task id"),
        (["#0"], "field 'after'[0] is '#0': '#<index>' names an item of the same batch"),
        (["{pending}", "{pending}"], "field 'after'[1] names '{pending}' a second time"),
        ([UNKNOWN], f"field 'after' names task '{UNKNOWN}', which does not exist"),
        (["{pending}", "{failed}"], "field 'after' names task '{failed}', which has failed"),
    ],
    ids=[
        "not a list",
        "empty",
        "over 100",
        "not a string",
        "empty id",
        "batch reference",
        "repeated",
        "unknown",
        "failed",
    ],
)
@pytest.mark.gen_test
async def test_a_bad_after_on_post_tasks_is_400_naming_it_and_changes_nothing(
    http_client, base_url, after, named
):
    known = await known_parents(http_client, base_url)
    before = await stats(http_client, base_url)

    body = {"payload": {}, "after": fill(after, known)}
    response = await request(http_client, base_url, "POST", "/tasks", body)

    assert fill(named, known) in assert_problem(response, 400)["detail"]
    assert await stats(http_client, base_url) == before
    assert (await get(http_client, base_url, known["pending"]))["dependents"] is None


@pytest.mark.parametrize(
    ("items", "named"),
    [
        ([{}, {"after": {"id": "{pending}"}}], "tasks[1].after must be a list of task ids"),
        ([{}, {"after": []}], f"tasks[1].after must name 1 to {MAX_PARENTS} tasks, got 0"),
        ([{}, {"after": TOO_MANY}], f"tasks[1].after must name 1 to {MAX_PARENTS} tasks"),
        ([{}, {"after": [None]}], "tasks[1].after[0] must be a task id, got 'null'"),
        ([{"after": ["#0"]}], "tasks[0].after[0] is '#0': the first item of a batch has no"),
        ([{}, {"after": ["#1"]}], "tasks[1].after[0] is '#1': an item may only wait for an"),
        ([{}, {"after": ["#0", "#2"]}], "tasks[1].after[1] is '#2': an item may only wait"),
        ([{}, {"after": ["#-1"]}], "tasks[1].after[0] is '#-1': not '#<index>' nor a task id"),
        ([{}, {"after": ["#0", "#0"]}], "tasks[1].after[1] names '#0' a second time"),
        ([{}, {"after": ["{pending}", "{pending}"]}], "tasks[1].after[1] names '{pending}'"),
        ([{}, {"after": [UNKNOWN]}], f"tasks[1].after names task '{UNKNOWN}', which does not"),
        ([{}, {"after": ["#0", "{failed}"]}], "tasks[1].after names task '{failed}', which has"),
        (
            [{}, {}, {"after": ["#1"]}, {"after": [UNKNOWN]}],
            f"tasks[3].after names task '{UNKNOWN}'",
        ),
    ],
    ids=[
        "not a list",
        "empty",
        "over 100",
        "not a string",
        "first item",
        "own index",
        "later index",
        "not an index",
        "repeated index",
        "repeated id",
        "unknown",
        "failed",
        "unknown after good items",
    ],
)
@pytest.mark.gen_test
async def test_a_bad_after_in_a_batch_is_400_naming_the_item_and_creates_nothing(
    http_client, base_url, items, named
):
    known = await known_parents(http_client, base_url)
    before = await stats(http_client, base_url)

    body = {"tasks": [{"payload": {}, **fill(item, known)} for item in items]}
    response = await request(http_client, base_url, "POST", "/tasks/batch", body)

    assert fill(named, known) in assert_problem(response, 400)["detail"]
    assert await stats(http_client, base_url) == before
    assert (await call(http_client, base_url, "GET", "/queue/totals"))["enqueued"] == 2


@pytest.mark.gen_test(timeout=60)
async def test_a_parent_takes_at_most_so_many_dependents(http_client, base_url):
    parent = await enqueue(http_client, base_url)
    await batch(http_client, base_url, *({"after": [parent["id"]]} for _ in range(MAX_DEPENDENTS)))

    response = await request(
        http_client, base_url, "POST", "/tasks", {"payload": {}, "after": [parent["id"]]}
    )

    detail = assert_problem(response, 400)["detail"]
    assert f"already has {MAX_DEPENDENTS} dependents" in detail
    assert len((await get(http_client, base_url, parent["id"]))["dependents"]) == MAX_DEPENDENTS
    assert (await stats(http_client, base_url))["waiting"] == MAX_DEPENDENTS


async def known_parents(client, base_url: str) -> dict[str, str]:
    """Two tasks a bad `after` may name: one pending, one failed."""
    failed = await enqueue(client, base_url)
    await fail_for_good(client, base_url, failed["id"])
    pending = await enqueue(client, base_url)
    return {"pending": pending["id"], "failed": failed["id"]}


def fill(value: Any, known: dict[str, str]) -> Any:
    """`value` with "{pending}" and "{failed}" replaced by those tasks' ids, at any depth."""
    if isinstance(value, str):
        return value.format(**known)
    if isinstance(value, list):
        return [fill(item, known) for item in value]
    if isinstance(value, dict):
        return {name: fill(item, known) for name, item in value.items()}
    return value


# -- counted, listed, measured, woken ---------------------------------------------------------


@pytest.mark.gen_test
async def test_waiting_tasks_are_listed_counted_and_measured(http_client, base_url):
    parent = await enqueue(http_client, base_url, queue="jobs")
    children = [
        (await enqueue(http_client, base_url, queue="jobs", after=[parent["id"]]))["id"]
        for _ in range(3)
    ]

    response = await request(http_client, base_url, "GET", "/queue/view?queue=jobs&status=waiting")
    listed = assert_json(response, 200)
    assert [task["id"] for task in listed] == children[::-1]
    assert {task["status"] for task in listed} == {"waiting"}
    assert response.headers["X-Total-Count"] == "3"
    assert (await stats(http_client, base_url, "jobs"))["waiting"] == 3
    assert (await call(http_client, base_url, "GET", "/queues/jobs"))["waiting"] == 3
    queues = {entry["name"]: entry for entry in await call(http_client, base_url, "GET", "/queues")}
    assert (queues["jobs"]["pending"], queues["jobs"]["waiting"]) == (1, 3)
    metrics = (await request(http_client, base_url, "GET", "/metrics")).body.decode()
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
    }
    assert samples["taskqueue_tasks", (("queue", "jobs"), ("status", "waiting"))] == 3


@pytest.mark.gen_test
async def test_waiting_tasks_can_be_purged(http_client, base_url):
    parent = await enqueue(http_client, base_url)
    await batch(http_client, base_url, {"after": [parent["id"]]}, {"after": ["#0"]})

    purged = await call(http_client, base_url, "DELETE", "/queues/default/tasks?status=waiting")

    assert purged == {"deleted": 2}
    counts = await stats(http_client, base_url)
    assert (counts["waiting"], counts["failed"], counts["pending"]) == (0, 0, 1)


@pytest.mark.gen_test(timeout=10)
async def test_a_consumer_parked_on_a_dependents_queue_wakes_when_the_parent_completes(
    http_client, base_url, app
):
    parent = await enqueue(http_client, base_url, queue="first")
    child = await enqueue(http_client, base_url, queue="then", after=[parent["id"]])
    consumer = AsyncHTTPClient(force_instance=True)
    try:
        parked = asyncio.ensure_future(
            request(consumer, base_url, "POST", "/tasks/dequeue?queue=then&wait=8")
        )
        await parked_until(app, 1)
        leased = await dequeue(http_client, base_url, "first")
        completed_at = IOLoop.current().time()

        await complete(http_client, base_url, leased)

        woken = assert_json(await parked, 200)
        assert woken["id"] == child["id"]
        assert IOLoop.current().time() - completed_at < 1.0
    finally:
        consumer.close()


async def parked_until(app, count: int) -> None:
    loop = IOLoop.current()
    deadline = loop.time() + 5
    while app.services.waiters.count() != count:
        assert loop.time() < deadline, "the consumer never parked"
        await asyncio.sleep(0.005)
