"""The chaos checker's push checks find what they look for, and pass what at-least-once
delivery allows: a push retried after a 503, or pushed again after its lease ran out. And its
receiver verifies signatures and answers as the checks expect, over real loopback HTTP."""

from __future__ import annotations

import http.client
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import orjson
from standardwebhooks.webhooks import Webhook

from bench.chaos_push import PUSH_CHECKS, Push, Receiver, push_checks, push_figures

SECRET = "whsec_" + "QUJDREVGR0hJSktMTU5PUA=="
PUSHER = "push/host/1"
OTHER_PUSHER = "push/host/2"
TIMEOUT = 1.0
LEASE = TIMEOUT + 5


def push(task_id: str, lease_id: str, started: float, **changes: Any) -> Push:
    """A push the receiver took: arrived 1 ms after its lease began, answered 200 5 ms later."""
    taken = Push(
        task_id=task_id,
        webhook_id=task_id,
        lease_id=lease_id,
        started_at=started,
        lease_expires_at=started + LEASE,
        worker=PUSHER,
        arrived=started + 0.001,
        answered=started + 0.006,
        status=200,
        signed=True,
    )
    return replace(taken, **changes)


def completed(lease_id: str, worker: str = PUSHER, result: Any = None) -> dict[str, Any]:
    """A task as read back at the end: completed by the push of `lease_id`."""
    return {
        "status": "completed",
        "result": {"lease_id": lease_id} if result is None else result,
        "history": [
            {"event": "enqueued"},
            {"event": "delivered", "lease_id": lease_id, "worker": worker},
            {"event": "completed", "lease_id": lease_id, "worker": worker},
        ],
    }


def verdict(
    pushes: list[Push],
    tasks: dict[str, dict | None],
    cap: int = 3,
    pulled: list[str] | None = None,
) -> dict[str, list[str]]:
    return push_checks(
        pushes,
        acknowledged=list(tasks),
        tasks=tasks,
        cap=cap,
        timeout=TIMEOUT,
        pulled=pulled or [],
    )


def failing(verdict: dict[str, list[str]]) -> dict[str, int]:
    return {name: len(found) for name, found in verdict.items() if found}


def test_retries_after_a_503_and_pushes_after_a_lease_ran_out_pass():
    pushes = [
        push("a", "a1", 100.0, status=503),
        push("a", "a2", 100.02),  # the retry, at once: the 503 was a failed attempt
        push("b", "b1", 100.0, worker=OTHER_PUSHER),  # its server died before completing it
        push("b", "b2", 100.0 + LEASE),
    ]
    tasks = {"a": completed("a2"), "b": completed("b2")}

    assert failing(verdict(pushes, tasks)) == {}
    figures = push_figures(pushes, acknowledged=2, cap=3, pulls_refused=7)
    assert figures.pushes == 4
    assert figures.failed_answers == 1
    assert figures.pushed_after_expiry == 1
    assert figures.pushers == 2
    assert figures.most_in_flight == 2  # a1 and b1 at the receiver at once
    assert figures.pulls_refused == 7


def test_an_acknowledged_task_not_completed_or_gone_is_lost():
    tasks = {"a": completed("a1"), "b": {"status": "pending"}, "c": None}

    found = verdict([push("a", "a1", 100.0)], tasks)

    assert found["pushes lost"] == ["b: pending", "c: 404"]
    assert failing(found) == {"pushes lost": 2}


def test_a_push_leased_again_before_a_taken_push_expired_is_unexplained():
    pushes = [push("a", "a1", 100.0), push("a", "a2", 101.0)]

    found = verdict(pushes, {"a": completed("a2")})

    assert failing(found) == {"unexplained re-pushes": 1}
    assert "a2 started 5.000 s before lease a1 expired" in found["unexplained re-pushes"][0]


def test_a_push_answered_after_the_timeout_may_be_pushed_again_at_once():
    slow = push("a", "a1", 100.0, answered=100.0 + TIMEOUT + 0.1)  # the server gave up on it

    found = verdict([slow, push("a", "a2", 101.2)], {"a": completed("a2")})

    assert failing(found) == {}


def test_one_lease_pushed_twice_is_unexplained_even_after_a_503():
    pushes = [push("a", "a1", 100.0, status=503), push("a", "a1", 100.0)]

    found = verdict(pushes, {"a": completed("a1")})

    assert found["unexplained re-pushes"] == ["a: lease a1 pushed twice"]


def test_a_completion_no_taken_push_answered_is_caught():
    pushes = [push("a", "a1", 100.0, status=503), push("b", "b1", 100.0), push("c", "c1", 100.0)]
    tasks = {
        "a": completed("a1"),  # its only push was answered 503
        "b": completed("b1", result={"lease_id": "b1", "extra": 1}),  # not the receiver's body
        "c": completed("c1", worker=OTHER_PUSHER),  # history names another pusher
    }

    found = verdict(pushes, tasks)

    assert failing(found) == {"push completed unanswered": 3}
    assert "pushed by push/host/1" in found["push completed unanswered"][2]


def test_more_pushes_in_flight_than_the_cap_are_caught_until_their_leases_end():
    overlapping = [push(name, f"{name}1", 100.0, answered=100.5) for name in "abc"]
    # in flight at the receiver long after its lease ended: held only until that end
    outlived = push("d", "d1", 90.0, answered=100.2)
    tasks = {name: completed(f"{name}1") for name in "abcd"}

    assert failing(verdict([*overlapping, outlived], tasks, cap=3)) == {}
    found = verdict(overlapping, tasks | {"d": completed("d1")}, cap=2)
    assert found["push cap exceeded"][0].startswith("3 pushes in flight at ")


def test_bad_signatures_wrong_webhook_ids_and_dequeues_not_refused_are_caught():
    pushes = [push("a", "a1", 100.0, signed=False), push("b", "b1", 100.0, webhook_id="x")]
    tasks = {"a": completed("a1"), "b": completed("b1")}

    found = verdict(pushes, tasks, pulled=["answered 200: task c"])

    assert failing(found) == {"pushes badly signed": 2, "push queue not refusing": 1}
    assert found["pushes badly signed"][0].endswith("signature does not verify")
    assert set(found) == set(PUSH_CHECKS)


# --- the receiver over loopback HTTP -----------------------------------------------------------


def task_body(task_id: str, lease_id: str) -> bytes:
    return orjson.dumps(
        {
            "id": task_id,
            "lease_id": lease_id,
            "started_at": "2026-12-07T10:00:00+00:00",
            "lease_expires_at": "2026-12-07T10:00:06+00:00",
            "history": [{"event": "delivered", "lease_id": lease_id, "worker": PUSHER}],
        }
    )


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = url.removeprefix("http://").split("/", 1)
    host, port = parts[0].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        connection.request("POST", "/" + parts[1], body, headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def signed_headers(secret: str, message_id: str, body: bytes) -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, body),
    }


def test_the_receiver_verifies_signatures_and_answers_with_the_lease():
    taken: list[str] = []
    with Receiver(fail_fraction=0.0, hold=0.0, seed=1) as receiver:
        receiver.secret = SECRET
        receiver.on_taken = taken.append
        body = task_body("a", "a1")
        good = post(receiver.url, body, signed_headers(SECRET, "a", body))
        other = "whsec_" + "WllYV1ZVVFNSUVBPTk1MSw=="
        forged = post(receiver.url, body, signed_headers(other, "a", body))

    assert good == (200, b'{"lease_id":"a1"}')
    assert forged[0] == 200
    assert [each.signed for each in receiver.pushes] == [True, False]
    assert receiver.pushes[0].worker == PUSHER
    assert receiver.pushes[0].lease_expires_at - receiver.pushes[0].started_at == 6
    assert taken == ["a"]  # a task's first 200 only


def test_the_receiver_answers_503_as_often_as_it_is_told():
    with Receiver(fail_fraction=1.0, hold=0.0, seed=1) as receiver:
        receiver.secret = SECRET
        body = task_body("a", "a1")
        answer = post(receiver.url, body, signed_headers(SECRET, "a", body))

    assert answer == (503, b"")
    assert [each.status for each in receiver.pushes] == [503]
