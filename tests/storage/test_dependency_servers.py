"""Task dependencies against real server processes: a consumer long-polling one server for a
dependent's queue gets it at once when its parent is completed through another server on the
same Redis; a SQLite server killed with SIGKILL keeps its waiting tasks and their links, and
releases (or fails) them when their parents finish after the restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.storage.test_queue_control_servers import (
    complete,
    dequeue,
    enqueue,
    sqlite_server,
    woken_on,
)
from tests.storage.test_redis_servers import start_pair
from tests.support import call


def batch(url: str, *items: dict[str, Any]) -> list[str]:
    status, answer = call(
        url, "POST", "/tasks/batch", {"tasks": [{"payload": {}, **item} for item in items]}
    )
    assert status == 201, answer
    return answer["ids"]


def shown(url: str, task_id: str) -> dict[str, Any]:
    status, task = call(url, "GET", f"/tasks/{task_id}")
    assert status == 200, task
    return task


# --- two servers on one Redis ----------------------------------------------------------------


def test_a_parent_completed_on_one_server_wakes_a_consumer_of_its_dependent_on_the_other(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given a child in its own queue waiting for a parent, both enqueued through B
        parent = enqueue(b.url, "fetch")
        child = enqueue(b.url, "publish", after=[parent["id"]])
        assert shown(a.url, child["id"])["status"] == "waiting"
        leased = dequeue(b.url, "fetch", wait=0)

        # When a consumer long-polls A for the child's queue and B completes the parent
        task, waited = woken_on(
            a, "/tasks/dequeue?queue=publish&wait=10", lambda: complete(b.url, leased)
        )

    # Then A hands it the child at once
    assert (task["id"], task["status"], task["after"]) == (
        child["id"],
        "processing",
        [parent["id"]],
    )
    assert waited < 1.0


def test_a_parent_failed_on_one_server_fails_its_chain_for_both(tmp_path: Path, redis_url: str):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        root, child, grandchild = batch(a.url, {}, {"after": ["#0"]}, {"after": ["#1"]})
        leased = dequeue(b.url, "default", wait=0)
        body = {"lease_id": leased["lease_id"], "error": "boom", "retry": False}
        assert call(b.url, "PUT", f"/tasks/{root}/fail", body)[0] == 200

        for url in (a.url, b.url):
            assert shown(url, child)["error"] == f"parent task '{root}' failed"
            assert shown(url, grandchild)["error"] == f"parent task '{child}' failed"
            counts = call(url, "GET", "/queue/stats")[1]
            assert (counts["failed"], counts["waiting"]) == (3, 0)


# --- a SQLite server killed and started again --------------------------------------------------


def test_sqlite_waiting_tasks_and_their_links_survive_a_kill(tmp_path: Path):
    with sqlite_server(tmp_path) as server:
        # Given a fan-out/fan-in workflow killed half-way: its first step and one of the two
        # middle ones completed (the other waits out its delay), the last still waiting; and a
        # chain on a parent that has not run yet
        fetch, small, large, publish = batch(
            server.url,
            {"queue": "jobs"},
            {"queue": "jobs", "after": ["#0"], "delay": 1},
            {"queue": "jobs", "after": ["#0"]},
            {"queue": "jobs", "after": ["#1", "#2"]},
        )
        doomed, orphan = batch(server.url, {"queue": "other"}, {"queue": "other", "after": ["#0"]})
        complete(server.url, dequeue(server.url, "jobs", wait=0))
        large_task = dequeue(server.url, "jobs", wait=0)
        assert large_task["id"] == large
        complete(server.url, large_task)
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        url = restarted.url
        # Then after the restart the waiting tasks wait, with their links as they were
        counts = call(url, "GET", "/queue/stats")[1]
        assert (counts["waiting"], counts["scheduled"], counts["completed"]) == (2, 1, 2)
        assert shown(url, fetch)["dependents"] == [small, large]
        assert (shown(url, publish)["status"], shown(url, publish)["after"]) == (
            "waiting",
            [small, large],
        )
        assert shown(url, doomed)["dependents"] == [orphan]
        listed = call(url, "GET", "/queue/view?queue=jobs&status=waiting")[1]
        assert [task["id"] for task in listed] == [publish]
        # and the last step is released when its last parent completes
        assert dequeue(url, "jobs", wait=0) is None
        small_task = dequeue(url, "jobs", wait=5)
        assert small_task["id"] == small
        assert shown(url, publish)["status"] == "waiting"
        complete(url, small_task)
        assert dequeue(url, "jobs", wait=0)["id"] == publish
        # a parent failing after the restart still fails what waits for it
        leased = dequeue(url, "other", wait=0)
        body = {"lease_id": leased["lease_id"], "error": "boom", "retry": False}
        assert call(url, "PUT", f"/tasks/{doomed}/fail", body)[0] == 200
        assert shown(url, orphan)["error"] == f"parent task '{doomed}' failed"
