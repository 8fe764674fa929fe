"""POST /queues/{name}/retry: every failed task of one queue back to pending, on every store."""

from __future__ import annotations

import pytest

from tests.server.handlers.helpers import assert_json, assert_problem, request
from tornado_queue.models import NewTask, TaskStatus
from tornado_queue.server.handlers import queue as queue_handlers


def failed_tasks(store, queue: str, count: int) -> list[str]:
    """`count` tasks of `queue` that used their attempts and failed; their ids."""
    made = []
    for i in range(count):
        store.enqueue(NewTask(payload=b'{"i":%d}' % i, queue=queue, max_attempts=1))
        task = store.dequeue(queue=queue)
        store.fail(task.id, f"boom {i}", retry=False, lease_id=task.lease_id)
        made.append(task.id)
    return made


async def retry_queue(http_client, base_url, name: str) -> int:
    response = await request(http_client, base_url, "POST", f"/queues/{name}/retry")
    return assert_json(response, 200)["retried"]


@pytest.mark.gen_test
async def test_every_failed_task_of_the_queue_goes_back_with_fresh_attempts(
    http_client, base_url, store
):
    failed = failed_tasks(store, "emails", 3)
    untouched = failed_tasks(store, "reports", 1)
    store.enqueue(NewTask(payload=b"{}", queue="emails"))

    assert await retry_queue(http_client, base_url, "emails") == 3

    for task_id in failed:
        task = store.get(task_id)
        assert task.status is TaskStatus.PENDING
        assert task.attempts == 0
        assert task.error is None and task.finished_at is None
    assert store.get(untouched[0]).status is TaskStatus.FAILED
    emails = store.stats("emails")
    assert (emails[TaskStatus.PENDING], emails[TaskStatus.FAILED]) == (4, 0)
    again = [store.dequeue(queue="emails") for _ in range(4)]
    assert set(failed) < {task.id for task in again}  # deliverable again


@pytest.mark.gen_test
async def test_a_queue_without_failed_tasks_retries_none(http_client, base_url, store):
    store.enqueue(NewTask(payload=b"{}", queue="emails"))

    assert await retry_queue(http_client, base_url, "emails") == 0
    assert await retry_queue(http_client, base_url, "never-used") == 0
    assert store.stats("emails")[TaskStatus.PENDING] == 1


@pytest.mark.gen_test
async def test_more_failed_tasks_than_a_round_are_all_retried(
    http_client, base_url, store, monkeypatch
):
    monkeypatch.setattr(queue_handlers, "RETRY_ROUND", 2)
    failed = failed_tasks(store, "emails", 5)

    assert await retry_queue(http_client, base_url, "emails") == 5

    assert {store.get(task_id).status for task_id in failed} == {TaskStatus.PENDING}


@pytest.mark.gen_test
async def test_a_name_that_is_not_a_queue_name_is_400_and_changes_nothing(
    http_client, base_url, store
):
    failed = failed_tasks(store, "emails", 1)

    response = await request(http_client, base_url, "POST", "/queues/bad%20name!/retry")

    problem = assert_problem(response, 400)
    assert "path parameter 'name'" in problem["detail"]
    assert store.get(failed[0]).status is TaskStatus.FAILED
