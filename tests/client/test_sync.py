"""The synchronous client against a real server (and a scripted stub for the answers a real
server will not give on demand): typed tasks, lease ids passed back, errors with the server's
detail, connection reuse, and retries only where repeating is safe."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import orjson
import pytest

from tests.client.support import DROP, Answer, StubServer, real_server, tasks_in_every_state
from tests.support import wait_until
from tornado_queue.client import (
    BadRequest,
    BatchItem,
    Client,
    Conflict,
    ConnectionFailed,
    Forbidden,
    LeaseLost,
    NotFound,
    OutcomeUnknown,
    ServerError,
    Task,
    TaskQueueError,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    calls,
)
from tornado_queue.client.task import Task as ClientTask
from tornado_queue.models import TaskStatus
from tornado_queue.testing import ServerProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with real_server(tmp_path_factory.mktemp("client")) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url) as client:
        yield client


@pytest.fixture
def queue(request: pytest.FixtureRequest) -> str:
    """A queue of this test's own on the shared server."""
    return request.node.name.replace("[", ".").replace("]", "")[:64]


# --- against the real server -------------------------------------------------------------


def test_a_task_goes_through_enqueue_dequeue_and_complete_as_typed_objects(client, queue):
    # Given a task enqueued with options
    task_id = client.enqueue({"to": "a@example.com"}, queue=queue, priority=3, max_attempts=5)

    # When it is read, dequeued and completed with a result
    pending = client.get(task_id)
    leased = client.dequeue(queue=queue, lease=60)
    done = client.complete(leased, result={"sent": True})

    # Then each step returns a typed Task with the server's fields
    assert pending == Task.from_document(pending.to_document())
    assert (pending.status, pending.priority, pending.max_attempts) == ("pending", 3, 5)
    assert isinstance(pending.created_at, datetime) and pending.created_at.tzinfo is not None
    assert leased.id == task_id and leased.status is TaskStatus.PROCESSING
    assert leased.payload == {"to": "a@example.com"} and leased.lease_id
    assert done.status == "completed" and done.result == {"sent": True}


def test_dequeue_gives_none_when_the_queue_stays_empty_and_a_long_poll_gets_a_new_task(
    client, server, queue
):
    assert client.dequeue(queue=queue) is None

    # Given a consumer long-polling the queue
    def produce() -> None:
        with Client(server.url) as producer:
            producer.enqueue({"n": 1}, queue=queue)

    timer = threading.Timer(0.2, produce)
    timer.start()
    started = time.monotonic()

    # When a task arrives while it waits, then it gets it at once
    task = client.dequeue(queue=queue, wait=10)
    timer.join()
    assert task is not None and task.payload == {"n": 1}
    assert time.monotonic() - started < 5


def test_complete_after_the_lease_moved_on_raises_lease_lost_with_the_servers_detail(client, queue):
    client.enqueue({"n": 1}, queue=queue)
    task = client.dequeue(queue=queue, lease=1)
    assert wait_until(lambda: client.get(task).status != "processing", timeout=10)
    again = client.dequeue(queue=queue)
    assert again is not None and again.id == task.id
    client.complete(again)

    with pytest.raises(LeaseLost) as raised:
        client.complete(task)
    assert raised.value.status == 409
    assert task.lease_id in raised.value.detail and "was lost" in raised.value.detail
    with pytest.raises(LeaseLost):
        client.heartbeat(task)


def test_a_complete_repeated_with_its_lease_returns_the_task_as_the_first_did(client, queue):
    client.enqueue({"n": 1}, queue=queue)
    task = client.dequeue(queue=queue)
    first = client.complete(task, result={"sent": True})

    again = client.complete(task, result={"sent": False})

    assert again.status == first.status == "completed"
    assert again.result == {"sent": True}


def test_heartbeat_extends_the_lease_and_fail_retries_or_kills_the_task(client, queue):
    client.enqueue({"n": 1}, queue=queue, max_attempts=2)
    task = client.dequeue(queue=queue, lease=5)

    extended = client.heartbeat(task, lease=600)
    assert extended.lease_expires_at > task.lease_expires_at

    failed = client.fail(task, "SMTP timeout", retry=False)
    assert (failed.status, failed.error) == ("failed", "SMTP timeout")

    # A dead task goes back with retry(); retrying it again is a conflict
    assert client.retry(task.id).status == "pending"
    with pytest.raises(Conflict) as raised:
        client.retry(task.id)
    assert not isinstance(raised.value, LeaseLost)
    client.delete(task.id)
    with pytest.raises(NotFound):
        client.get(task.id)


def test_progress_is_recorded_fenced_and_kept(client, queue):
    client.enqueue({"n": 1}, queue=queue)
    task = client.dequeue(queue=queue, lease=600)

    reported = client.progress(task, {"done": 3, "of": 10})

    assert reported.progress == {"done": 3, "of": 10}
    assert reported.lease_expires_at == task.lease_expires_at
    assert client.get(task.id).progress == {"done": 3, "of": 10}
    client.complete(task)
    with pytest.raises(LeaseLost):
        client.progress(task, {"done": 4})
    with pytest.raises(BadRequest) as raised:
        client.progress(task.id, "x" * 5000)
    assert "'progress'" in raised.value.detail


def test_get_with_wait_and_wait_for_answer_when_another_thread_completes(client, queue):
    client.enqueue({"n": 1}, queue=queue)
    task = client.dequeue(queue=queue, lease=600)
    finisher = threading.Timer(0.3, client.complete, (task, {"sum": 3}))
    finisher.start()

    started = time.monotonic()
    done = client.wait_for(task.id, timeout=20)

    assert (done.status, done.result) == ("completed", {"sum": 3})
    assert time.monotonic() - started < 5
    assert client.get(task.id, wait=30).status == "completed"  # finished: at once
    finisher.join()


def test_wait_for_raises_timeout_error_and_get_with_wait_answers_as_it_is(client, queue):
    task_id = client.enqueue({"n": 1}, queue=queue)

    assert client.get(task_id, wait=0.2).status == "pending"
    with pytest.raises(TimeoutError, match="still pending"):
        client.wait_for(task_id, timeout=0.3)
    with pytest.raises(NotFound):
        client.wait_for("no-such-task", timeout=5)


def test_result_wait_rounds_are_as_long_as_the_server_allows():
    assert calls.result_wait(95.0) == 30
    assert calls.result_wait(2.5) == 2.5
    assert calls.result_wait(0.0) is None
    assert calls.result_wait(-1.0) is None
    assert calls.get("t", 30).wait == 30
    assert calls.get("t", 30).path == "/tasks/t?wait=30"
    assert calls.get("t").path == "/tasks/t"


def test_the_same_idempotency_key_gives_the_same_task(client, queue):
    first = client.enqueue({"order": 1}, queue=queue, idempotency_key="order-1")
    again = client.enqueue({"order": 1}, queue=queue, idempotency_key="order-1")
    other = client.enqueue({"order": 1}, queue=queue)

    assert first == again != other
    with pytest.raises(BadRequest) as raised:  # the same key with another body: 422
        client.enqueue({"order": 2}, queue=queue, idempotency_key="order-1")
    assert raised.value.status == 422 and "order-1" in raised.value.detail


def test_batches_stats_totals_and_queues(client, queue):
    ids = client.enqueue_many([{"n": n} for n in range(5)], queue=queue, priority=1)
    tasks = client.dequeue_many(3, queue=queue)

    assert [task.id for task in tasks] == ids[:3]
    assert client.stats(queue) == {
        "pending": 2,
        "processing": 3,
        "completed": 0,
        "failed": 0,
        "scheduled": 0,
        "waiting": 0,
    }
    assert client.totals(queue)["enqueued"] == 5
    listed = {entry["name"]: entry for entry in client.queues()}
    assert listed[queue]["pending"] == 2
    assert client.dequeue_many(10, queue=queue, wait=0.1)[0].id == ids[3]


def test_errors_carry_the_status_and_the_servers_sentence(client):
    with pytest.raises(NotFound) as raised:
        client.get("no-such-task")
    assert (raised.value.status, raised.value.detail) == (404, "no task with id 'no-such-task'")

    with pytest.raises(BadRequest) as bad:
        client.enqueue({"n": 1}, queue="no spaces allowed")
    assert bad.value.status == 400 and "queue" in bad.value.detail


def test_threads_share_one_client_each_on_its_own_connection(client, queue):
    ids: list[str] = []

    def produce() -> None:
        ids.extend(client.enqueue({"n": n}, queue=queue) for n in range(20))

    threads = [threading.Thread(target=produce) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 160
    assert client.stats(queue)["pending"] == 160


def test_interrupt_ends_a_long_poll_at_once_and_strands_no_task(client, server, queue):
    # Given a consumer long-polling an empty queue for 20 s on another thread
    outcome: list[BaseException | Task | None] = []

    def consume() -> None:
        try:
            outcome.append(client.dequeue(queue=queue, wait=20))
        except ConnectionFailed as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    assert wait_until(lambda: client._busy)  # the request is under way (or about to be)

    # When it is interrupted
    started = time.monotonic()
    client.interrupt()
    consumer.join(5)

    # Then it ends at once with ConnectionFailed, and a task enqueued next is not lost
    assert isinstance(outcome[0], ConnectionFailed)
    assert time.monotonic() - started < 2
    task_id = client.enqueue({"n": 1}, queue=queue)
    assert client.dequeue(queue=queue).id == task_id


def test_a_consumer_that_closes_right_after_asking_is_never_handed_a_task(client, server, queue):
    # Given consumers that each start a long-poll on their kept-alive connection and drop it
    # at once (the FIN can arrive with the request itself, which Tornado does not report)
    stranded = 0
    for _ in range(200):
        consumer = Client(server.url)
        consumer.stats()
        thread = threading.Thread(target=_dequeue_quietly, args=(consumer, queue))
        thread.start()
        consumer.interrupt()
        thread.join()
        consumer.close()

        # When a task arrives, then it waits for a live consumer instead of going to the dead one
        task_id = client.enqueue({}, queue=queue)
        if client.get(task_id).status != "pending":
            stranded += 1
        else:
            client.delete(task_id)
    assert stranded == 0


def _dequeue_quietly(consumer: Client, queue: str) -> None:
    with contextlib.suppress(ConnectionFailed):
        consumer.dequeue(queue=queue, wait=5, lease=600)


# --- queue control, against the real server ----------------------------------------------


def test_a_group_delivers_its_tasks_one_at_a_time_in_enqueue_order(client, queue):
    # Given two tasks of one group, and a task of no group enqueued after them
    first = client.enqueue({"n": 1}, queue=queue, group="order-7")
    second = client.enqueue({"n": 2}, queue=queue, group="order-7")
    loose = client.enqueue({"n": 3}, queue=queue)

    # When the first is leased, then the second waits behind it while the loose one goes ahead
    head = client.dequeue(queue=queue)
    assert (head.id, head.group) == (first, "order-7")
    assert [task.id for task in client.view(queue)] == [loose, second]
    assert client.dequeue(queue=queue).id == loose
    assert client.dequeue(queue=queue) is None

    # And once the first is completed, the second is delivered
    client.complete(head)
    assert client.dequeue(queue=queue).id == second


def test_a_batch_with_a_group_and_an_expiry_gives_both_to_every_task(client, queue):
    ids = client.enqueue_many(
        [{"n": n} for n in range(3)], queue=queue, group="customer-1", expires_in=600
    )

    assert [task.id for task in client.dequeue_many(3, queue=queue)] == ids[:1]
    for task in map(client.get, ids):
        assert task.group == "customer-1"
        lifetime = (task.expires_at - task.created_at).total_seconds()
        assert lifetime == pytest.approx(600, abs=0.001)
        assert Task.from_document(task.to_document()) == task


def test_a_task_not_delivered_before_it_expires_fails_as_expired(client, queue):
    task_id = client.enqueue({"n": 1}, queue=queue, expires_in=1)

    assert wait_until(lambda: client.get(task_id).status == "failed", timeout=10)
    expired = client.get(task_id)
    assert "expired" in expired.error and expired.attempts == 0
    assert client.dequeue(queue=queue) is None
    assert client.totals(queue)["expired"] == 1


def test_a_task_that_fails_for_good_moves_to_the_dead_letter_queue(client, queue):
    dead_letters = f"{queue[:59]}.dead"
    client.configure_queue(queue, dead_letter_queue=dead_letters)
    task_id = client.enqueue({"n": 1}, queue=queue)

    client.fail(client.dequeue(queue=queue), "boom", retry=False)

    moved = client.get(task_id)
    assert (moved.queue, moved.status, moved.attempts) == (dead_letters, "pending", 0)
    assert (moved.dead_lettered_from, moved.error) == (queue, "boom")
    assert client.dequeue(queue=dead_letters).id == task_id
    assert client.get(client.enqueue({}, queue=queue)).dead_lettered_from is None


EVERY_SETTING = {
    "paused": True,
    "max_processing": 5,
    "rate_limit": {"tasks": 10, "seconds": 1.5},
    "lease_seconds": 60,
    "max_attempts": 7,
    "retry_backoff": 0.5,
    "dead_letter_queue": "graveyard",
    "ttl_seconds": 3600,
}


def test_configure_queue_takes_every_setting_and_none_clears_each(client, queue):
    shown = {**EVERY_SETTING, "push": None}  # every setting is shown, push unset
    assert client.configure_queue(queue, **EVERY_SETTING)["settings"] == shown
    assert client.queue(queue)["settings"] == shown

    cleared = client.configure_queue(queue, **dict.fromkeys(EVERY_SETTING))

    assert cleared["settings"] == dict.fromkeys(shown)


def test_a_bad_setting_is_refused_naming_it_and_nothing_changes(client, queue):
    client.configure_queue(queue, max_processing=3)

    with pytest.raises(BadRequest) as raised:
        client.configure_queue(
            queue, max_processing=4, rate_limit={"tasks": 10, "seconds": 1, "burst": 5}
        )

    assert raised.value.status == 400
    assert "'rate_limit'" in raised.value.detail and "'burst'" in raised.value.detail
    assert client.queue(queue)["settings"]["max_processing"] == 3


def test_the_delivery_settings_cap_what_a_dequeue_gets(client, queue):
    client.enqueue_many([{"n": n} for n in range(4)], queue=queue)

    # At most two processing at once: a batch gets only the free slots
    client.configure_queue(queue, max_processing=2)
    leased = client.dequeue_many(4, queue=queue)
    assert len(leased) == 2 and client.dequeue(queue=queue) is None

    # One delivery an hour: the next is delivered, the one after is not
    client.configure_queue(queue, max_processing=None, rate_limit={"tasks": 1, "seconds": 3600})
    assert client.dequeue(queue=queue) is not None
    assert client.dequeue(queue=queue) is None


@pytest.mark.parametrize("status", ["pending", "scheduled", "completed", "failed"])
def test_purge_queue_counts_and_deletes_one_states_tasks(client, queue, status):
    # Given a task in each state, and a second pending one
    ids = tasks_in_every_state(client, queue)
    extra = client.enqueue({"made": "pending"}, queue=queue)
    purged = [ids[status], extra] if status == "pending" else [ids[status]]

    # When the tasks in one state are purged, then those, and only those, are gone
    assert client.purge_queue(queue, status) == len(purged)
    for task_id in purged:
        with pytest.raises(NotFound):
            client.get(task_id)
    for state, task_id in ids.items():
        if state != status:
            assert client.get(task_id).status == state
    assert client.purge_queue(queue, status) == 0


def test_purge_queue_never_deletes_processing_tasks(client, queue):
    ids = tasks_in_every_state(client, queue)

    with pytest.raises(BadRequest) as raised:
        client.purge_queue(queue, "processing")

    assert "processing" in raised.value.detail
    assert client.get(ids["processing"]).status == "processing"


def test_view_lists_a_queues_tasks_in_every_state_and_pages(client, queue):
    ids = tasks_in_every_state(client, queue)
    for status, task_id in ids.items():
        assert [task.id for task in client.view(queue, status=status)] == [task_id], status
    assert client.view(queue, status=TaskStatus.FAILED)[0].error == "boom"

    pending = [ids["pending"], *client.enqueue_many([{"n": n} for n in range(4)], queue=queue)]
    assert [task.id for task in client.view(queue)] == pending
    assert [task.id for task in client.view(queue, limit=2, offset=1)] == pending[1:3]
    assert client.view(queue, limit=0) == []


# --- against a stub ----------------------------------------------------------------------


def problem(status: int, detail: str, kind: str = "about:blank") -> bytes:
    return orjson.dumps({"type": kind, "title": "x", "status": status, "detail": detail})


UNAVAILABLE = Answer(
    503, problem(503, "down", "urn:tornado-queue:problem:store-unavailable"), {"Retry-After": "0"}
)
UNKNOWN = Answer(
    503, problem(503, "maybe", "urn:tornado-queue:problem:outcome-unknown"), {"Retry-After": "0"}
)
DONE = b'{"id": "t1", "queue": "default", "payload": {}, "status": "completed"}'


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, BadRequest),
        (415, BadRequest),
        (422, BadRequest),
        (429, TooManyRequests),
        (503, Unavailable),
        (500, ServerError),
        (418, TaskQueueError),
    ],
)
def test_each_status_raises_its_own_exception_with_the_detail(status, kind):
    answer = Answer(status, problem(status, "what was wrong"), {"Retry-After": "7"})
    stub = StubServer(answer)
    with stub, Client(stub.url, retries=0) as client, pytest.raises(kind) as raised:
        client.stats()
    assert type(raised.value) is kind
    assert (raised.value.status, raised.value.detail) == (status, "what was wrong")
    if status in (429, 503):
        assert raised.value.retry_after == 7.0


def test_an_error_that_is_not_json_keeps_its_text_as_the_detail():
    stub = StubServer(Answer(502, b"<html>Bad Gateway</html>"))
    with stub, Client(stub.url) as client, pytest.raises(ServerError) as raised:
        client.get("x")
    assert raised.value.detail == "<html>Bad Gateway</html>"


def test_the_token_is_sent_as_a_bearer_header_and_the_connection_is_reused():
    stats = Answer(200, b'{"pending": 0}')
    with StubServer(stats) as stub, Client(stub.url, token="s3cret") as client:
        for _ in range(3):
            client.stats()
    assert {seen.headers["authorization"] for seen in stub.seen} == {"Bearer s3cret"}
    assert len({seen.port for seen in stub.seen}) == 1


def test_a_read_is_retried_after_a_dropped_connection():
    stub = StubServer(DROP, DROP, Answer(200, b'{"pending": 4}'))
    with stub, Client(stub.url, backoff=0.01) as client:
        assert client.stats() == {"pending": 4}
    assert len(stub.seen) == 3


def test_an_enqueue_is_retried_with_the_same_idempotency_key():
    stub = StubServer(DROP, Answer(201, b'{"id": "t1"}'))
    with stub, Client(stub.url, backoff=0.01) as client:
        assert client.enqueue({"n": 1}) == "t1"
    keys = [seen.headers["idempotency-key"] for seen in stub.seen]
    assert len(keys) == 2 and keys[0] == keys[1]
    assert client.enqueue.__doc__ and "Idempotency-Key" in client.enqueue.__doc__


def test_a_dequeue_is_never_retried():
    stub = StubServer(DROP, Answer(200, b'{"tasks": []}'))
    with stub, Client(stub.url, backoff=0.01) as client, pytest.raises(ConnectionFailed):
        client.dequeue()
    assert len(stub.seen) == 1


@pytest.mark.parametrize("first", [UNAVAILABLE, UNKNOWN], ids=["unavailable", "outcome-unknown"])
def test_a_fenced_complete_is_sent_again_after_a_503(first):
    leased = ClientTask(id="t1", queue="default", payload={}, status="processing", lease_id="l1")
    stub = StubServer(first, Answer(200, DONE))
    with stub, Client(stub.url, backoff=0.01) as client:
        assert client.complete(leased, result=1).status == "completed"
    assert [seen.body for seen in stub.seen] == [stub.seen[0].body] * 2
    assert b'"lease_id":"l1"' in stub.seen[0].body


def test_a_dequeue_is_sent_again_after_a_503_saying_nothing_was_applied():
    stub = StubServer(UNAVAILABLE, Answer(200, b'{"tasks": []}'))
    with stub, Client(stub.url, backoff=0.01) as client:
        assert client.dequeue() is None
    assert len(stub.seen) == 2


def test_a_dequeue_whose_outcome_is_unknown_is_not_sent_again():
    stub = StubServer(UNKNOWN, Answer(200, b'{"tasks": []}'))
    with stub, Client(stub.url, backoff=0.01) as client, pytest.raises(OutcomeUnknown) as raised:
        client.dequeue()
    assert len(stub.seen) == 1
    assert raised.value.detail == "maybe"


def test_an_unfenced_complete_is_not_sent_again_after_a_503_outcome_unknown():
    stub = StubServer(UNKNOWN, Answer(200, DONE))
    with stub, Client(stub.url, backoff=0.01) as client, pytest.raises(OutcomeUnknown):
        client.complete("t1")
    assert len(stub.seen) == 1


def test_an_unreachable_server_raises_connection_failed_after_the_retries():
    client = Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    with pytest.raises(ConnectionFailed) as raised:
        client.get("x")
    assert raised.value.status is None and "no answer" in raised.value.detail


def test_only_commands_fenced_by_a_lease_are_sent_again_after_a_lost_answer():
    leased = ClientTask(id="t1", queue="default", payload={}, status="processing", lease_id="l1")
    bare = "t1"

    assert calls.fail(leased, "boom", retry=True).retry
    assert calls.heartbeat(leased, None).retry
    # Without the lease id, a repeat could fail or extend another consumer's lease.
    assert not calls.fail(bare, "boom", retry=True).retry
    assert not calls.heartbeat(bare, None).retry


@pytest.mark.parametrize(
    ("send", "answer", "request_line", "body"),
    [
        (
            lambda client: client.purge_queue("emails", "failed"),
            b'{"deleted": 2}',
            ("DELETE", "/queues/emails/tasks?status=failed"),
            b"",
        ),
        (
            lambda client: client.configure_queue(
                "emails", rate_limit={"tasks": 10, "seconds": 1}, ttl_seconds=None
            ),
            b'{"name": "emails", "settings": {}}',
            ("PATCH", "/queues/emails"),
            b'{"rate_limit":{"tasks":10,"seconds":1},"ttl_seconds":null}',
        ),
    ],
    ids=["purge", "configure"],
)
def test_a_purge_and_a_configure_are_sent_again_after_a_dropped_connection(
    send, answer, request_line, body
):
    stub = StubServer(DROP, Answer(200, answer))
    with stub, Client(stub.url, backoff=0.01) as client:
        send(client)
    assert [(seen.method, seen.path) for seen in stub.seen] == [request_line] * 2
    assert [seen.body for seen in stub.seen] == [body] * 2


def test_a_purge_returns_the_count_deleted_and_a_view_the_tasks():
    stub = StubServer(Answer(200, b'{"deleted": 7}'), Answer(200, b"[" + DONE + b"]"))
    with stub, Client(stub.url) as client:
        assert client.purge_queue("a b", "completed") == 7
        assert client.view("a b", status="completed", limit=5, offset=10)[0].id == "t1"
    assert [seen.path for seen in stub.seen] == [
        "/queues/a%20b/tasks?status=completed",
        "/queue/view?queue=a+b&status=completed&limit=5&offset=10",
    ]


def test_a_task_from_a_server_without_the_newer_fields_reads_them_as_none():
    task = Task.from_document(orjson.loads(DONE))

    assert (task.group, task.expires_at, task.dead_lettered_from) == (None, None, None)
    assert (task.after, task.dependents) == (None, None)


# --- dependencies ----------------------------------------------------------------------------


def test_a_task_enqueued_after_another_waits_for_it_and_shows_the_links(client, queue):
    parent = client.enqueue({"step": 1}, queue=queue)
    child = client.enqueue({"step": 2}, queue=queue, after=[parent])

    shown = client.get(child)
    assert (shown.status, shown.after, shown.dependents) == ("waiting", [parent], None)
    assert client.get(parent).dependents == [child]
    assert Task.from_document(shown.to_document()) == shown
    assert client.stats(queue)["waiting"] == 1
    assert [task.id for task in client.view(queue, status="waiting")] == [child]

    leased = client.dequeue(queue=queue)
    assert leased.id == parent and client.dequeue(queue=queue) is None
    client.complete(leased)
    assert client.dequeue(queue=queue).id == child


def test_a_batch_of_items_is_a_workflow_and_a_failed_parent_fails_what_waits(client, queue):
    side = f"{queue[:58]}.side"
    root, left, right, join = client.enqueue_many(
        [
            {"step": "root"},
            BatchItem({"step": "left"}, after=["#0"], queue=side, priority=5),
            BatchItem({"step": "right"}, after=("#0",)),
            BatchItem({"step": "join"}, after=["#1", "#2"]),
        ],
        queue=queue,
        priority=1,
    )

    assert [client.get(task_id).status for task_id in (root, left, right, join)] == [
        *("pending", "waiting", "waiting", "waiting")
    ]
    left_task, right_task = client.get(left), client.get(right)
    assert (left_task.queue, left_task.priority) == (side, 5)
    assert (right_task.queue, right_task.priority) == (queue, 1)
    assert client.get(join).after == [left, right]

    client.fail(client.dequeue(queue=queue), "boom", retry=False)

    assert client.get(left).error == f"parent task '{root}' failed"
    assert client.get(join).error in (
        f"parent task '{left}' failed",
        f"parent task '{right}' failed",
    )
    assert client.stats(queue)["failed"] == 3 and client.stats(side)["failed"] == 1


def test_a_bad_parent_raises_bad_request_naming_it_and_creates_nothing(client, queue):
    with pytest.raises(BadRequest) as raised:
        client.enqueue({}, queue=queue, after=["no-such-task"])
    assert "field 'after' names task 'no-such-task'" in raised.value.detail
    with pytest.raises(BadRequest) as raised:
        client.enqueue_many([{}, BatchItem({}, after=["#1"])], queue=queue)
    assert "tasks[1].after[0] is '#1'" in raised.value.detail
    with pytest.raises(BadRequest) as raised:
        client.enqueue({}, queue=queue, after="a-lone-id")  # type: ignore[arg-type]
    assert "field 'after' must be a list of task ids" in raised.value.detail
    assert client.totals(queue)["enqueued"] == 0


def test_after_is_sent_as_a_list_and_an_items_fields_win_over_the_calls():
    stub = StubServer(Answer(201, b'{"id": "t1"}'), Answer(201, b'{"ids": ["t2", "t3"]}'))
    with stub, Client(stub.url) as client:
        client.enqueue({"n": 1}, after=("p1", "p2"))
        client.enqueue_many(
            [{"n": 2}, BatchItem({"n": 3}, after=["#0"], delay=5, queue="other")],
            queue="jobs",
            delay=1,
        )
    single, many = (orjson.loads(seen.body) for seen in stub.seen)
    assert single == {"payload": {"n": 1}, "after": ["p1", "p2"]}
    first, second = many["tasks"]
    assert {name: first[name] for name in first if name != "idempotency_key"} == {
        "payload": {"n": 2},
        "queue": "jobs",
        "delay": 1,
    }
    second.pop("idempotency_key")
    assert second == {"payload": {"n": 3}, "queue": "other", "delay": 5, "after": ["#0"]}


# --- schedules -------------------------------------------------------------------------------


def test_a_schedule_is_put_read_listed_and_deleted(client: Client, queue: str):
    name = "client-" + queue[:40]

    created = client.put_schedule(
        name, queue=queue, payload={"n": 1}, cron="0 6 * * *", timezone="Europe/Berlin"
    )

    assert (created["name"], created["cron"], created["every"]) == (name, "0 6 * * *", None)
    assert created["timezone"] == "Europe/Berlin"
    assert created["next_run_at"] is not None and created["last_run_at"] is None
    assert client.get_schedule(name) == created
    assert name in [schedule["name"] for schedule in client.schedules()]
    paused = client.put_schedule(name, queue=queue, payload={}, every=60, paused=True)
    assert (paused["every"], paused["paused"], paused["next_run_at"]) == (60.0, True, None)

    client.delete_schedule(name)

    with pytest.raises(NotFound):
        client.get_schedule(name)
    with pytest.raises(NotFound):
        client.delete_schedule(name)


def test_a_bad_schedule_raises_bad_request_naming_the_field(client: Client, queue: str):
    with pytest.raises(BadRequest) as raised:
        client.put_schedule("bad-tz", queue=queue, payload={}, every=5, timezone="Nowhere/Land")

    assert "timezone" in raised.value.detail
    with pytest.raises(NotFound):
        client.get_schedule("bad-tz")


def test_a_schedules_task_carries_its_name_and_fire_time(client: Client, queue: str):
    name = "tick-" + queue[:40]
    client.put_schedule(name, queue=queue, payload={"tick": 1}, every=1)

    assert wait_until(lambda: client.stats(queue)["pending"] >= 1)
    client.delete_schedule(name)

    task = client.dequeue(queue=queue)
    assert task is not None
    assert task.schedule == name
    assert isinstance(task.fire_time, datetime)
    assert task.payload == {"tick": 1}


def test_a_put_schedule_is_sent_again_after_a_dropped_connection():
    stub = StubServer(DROP, Answer(200, b'{"name": "s"}'))
    with stub, Client(stub.url, backoff=0.01) as client:
        client.put_schedule("a b", queue="q", payload={}, every=5)
    assert [(seen.method, seen.path) for seen in stub.seen] == [("PUT", "/schedules/a%20b")] * 2
    assert orjson.loads(stub.seen[0].body) == {"queue": "q", "payload": {}, "every": 5}


# --- workers and history ---------------------------------------------------------------------


def test_a_named_worker_is_listed_and_named_in_its_tasks_history(server, queue):
    name = f"sync/{queue}"[:128]
    with Client(server.url, worker_id=name) as named:
        task_id = named.enqueue({"n": 1}, queue=queue)
        leased = named.dequeue(queue=queue, lease=600)
        assert leased is not None
        holding = {worker.id: worker for worker in named.workers()}[name]
        assert holding.tasks == [task_id]
        assert isinstance(holding.last_seen, datetime)
        done = named.complete(leased, result=1)
        listed = {worker.id: worker for worker in named.workers()}[name]

    assert [entry.event for entry in done.history] == ["enqueued", "delivered", "completed"]
    enqueued, delivered, completed = done.history
    assert (enqueued.worker, enqueued.lease_id, enqueued.at) == (None, None, done.created_at)
    assert (delivered.worker, delivered.lease_id) == (name, leased.lease_id)
    assert (completed.worker, completed.lease_id) == (name, leased.lease_id)
    assert (listed.tasks, listed.completed, listed.failed) == ([], 1, 0)
    assert ClientTask.from_document(done.to_document()) == done
    assert type(listed).from_document(listed.to_document()) == listed


def test_the_worker_id_goes_with_dequeues_and_lease_commands_only():
    leased = ClientTask(id="t1", queue="default", payload={}, status="processing", lease_id="l1")
    stub = StubServer(
        Answer(200, b'{"tasks": []}'),
        *[Answer(200, DONE)] * 5,
        Answer(201, b'{"id": "t1"}'),
        Answer(200, b"{}"),
    )
    with stub, Client(stub.url, worker_id="host/1/0") as client:
        client.dequeue()
        client.complete(leased)
        client.fail(leased, "x")
        client.heartbeat(leased)
        client.progress(leased, 1)
        client.get("t1")
        client.enqueue({})
        client.stats()
    sent = [seen.headers.get("x-worker-id") for seen in stub.seen]
    assert sent == ["host/1/0"] * 5 + [None] * 3


@pytest.mark.parametrize("name", ["", "two words", "x" * 129, "caf\u00e9"])
def test_a_worker_id_the_server_would_refuse_is_a_value_error_at_once(name):
    with pytest.raises(ValueError, match="worker_id"):
        Client(worker_id=name)


def test_a_task_from_a_server_without_history_reads_it_as_none():
    assert Task.from_document(orjson.loads(DONE)).history is None
