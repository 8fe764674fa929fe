"""Queue control over HTTP against real server processes: a concurrency cap, ordered groups and
a rate limit hold across two servers on one Redis under concurrent consumers; a consumer
long-polling one server wakes at once for a slot freed, a window opened or a group's turn
passed on the other; a SQLite server killed with SIGKILL keeps its queue settings, its groups'
turns, its expiries and its dead letters across the restart.

What the consumers saw is judged conservatively: a lease counts as held only from its dequeue's
200 until its complete is sent (the server held it at least that long), and a delivery
happened somewhere between the dequeue being sent and its answer."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.storage.test_redis_servers import park, read_reply, start_pair
from tests.support import call, wait_until
from tornado_queue.testing import ServerProcess

CONSUMERS_PER_SERVER = 4
RUN_SECONDS = 8.0
"""The longest the consumers of one test may take before it fails."""

EXPIRED_ERROR = "expired: not delivered before its expires_at"


# --- consumers -------------------------------------------------------------------------------


class Crew:
    """Consumer threads on several servers; the first that fails stops them all."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []

    def run(self, urls: list[str], per_server: int, consume: Callable[..., None]) -> None:
        """`per_server` threads on each of `urls` run `consume(url, rng)` until they return."""

        def guarded(url: str, seed: int) -> None:
            try:
                consume(url, random.Random(seed))
            except BaseException as error:
                self.errors.append(error)
                self.stop.set()

        threads = [
            threading.Thread(target=guarded, args=(url, seed), daemon=True)
            for seed, url in enumerate(urls * per_server)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + RUN_SECONDS
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.stop.set()
        if self.errors:
            raise self.errors[0]
        assert not any(thread.is_alive() for thread in threads), "consumers did not finish"


def dequeue(url: str, queue: str, wait: float = 0.5, lease: float | None = None) -> Any:
    """A task of `queue` leased from the server at `url`, or None after a 404."""
    path = f"/tasks/dequeue?queue={queue}&wait={wait}"
    status, task = call(url, "POST", path + (f"&lease={lease}" if lease else ""))
    if status == 404:
        return None
    assert status == 200, task
    return task


def complete(url: str, task: dict[str, Any]) -> None:
    status, done = call(url, "PUT", f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}")
    assert (status, done["status"]) == (200, "completed"), done


def enqueue(url: str, queue: str, **fields: Any) -> dict[str, Any]:
    status, task = call(url, "POST", "/tasks", {"payload": {}, "queue": queue, **fields})
    assert status == 201, task
    return task


def enqueue_batch(url: str, queue: str, count: int) -> list[str]:
    items = [{"payload": {"n": n}, "queue": queue} for n in range(count)]
    status, answer = call(url, "POST", "/tasks/batch", {"tasks": items})
    assert status == 201, answer
    return answer["ids"]


def configure(url: str, queue: str, settings: dict[str, Any]) -> dict[str, Any]:
    status, shown = call(url, "PATCH", f"/queues/{queue}", settings)
    assert status == 200, shown
    return shown["settings"]


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


# --- two servers on one Redis ----------------------------------------------------------------

CAP = 3
CAPPED_TASKS = 120


def test_a_cap_holds_across_two_servers_under_concurrent_consumers(tmp_path: Path, redis_url: str):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given a queue capped at 3 processing tasks, filled through both servers
        configure(a.url, "capped", {"max_processing": CAP})
        ids = enqueue_batch(a.url, "capped", CAPPED_TASKS // 2)
        ids += enqueue_batch(b.url, "capped", CAPPED_TASKS // 2)
        crew = Crew()
        held = most = 0
        completed: list[str] = []
        processing_seen: list[int] = []

        def consume(url: str, rng: random.Random) -> None:
            nonlocal held, most
            while not crew.stop.is_set() and len(completed) < CAPPED_TASKS:
                task = dequeue(url, "capped")
                if task is None:
                    continue
                with crew.lock:
                    held += 1
                    most = max(most, held)
                time.sleep(rng.uniform(0, 0.01))
                with crew.lock:
                    held -= 1  # the server holds the lease at least until the complete arrives
                complete(url, task)
                with crew.lock:
                    completed.append(task["id"])

        def watch() -> None:
            while not crew.stop.is_set():
                processing_seen.append(call(b.url, "GET", "/queues/capped")[1]["processing"])

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        # When four consumers on each server drain it
        crew.run([a.url, b.url], CONSUMERS_PER_SERVER, consume)
        watcher.join(5)

        # Then never more than 3 leases were held at once (and 3 often were)
        assert most == CAP, most
        assert max(processing_seen, default=0) <= CAP
        # and every task was completed once
        assert Counter(completed) == Counter(ids)
        shown = call(a.url, "GET", "/queues/capped")[1]
        assert (shown["completed"], shown["processing"], shown["pending"]) == (CAPPED_TASKS, 0, 0)


GROUPS = ("g0", "g1", "g2", "g3", "g4")
GROUPED_TASKS = 60


def test_ordered_groups_hold_across_two_servers_under_concurrent_consumers(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given tasks of five groups enqueued one after another, through both servers in turn
        pick = random.Random(7)
        enqueued: defaultdict[str, list[int]] = defaultdict(list)
        for n in range(GROUPED_TASKS):
            group = pick.choice(GROUPS)
            enqueue((a, b)[n % 2].url, "ordered", group=group, payload={"n": n})
            enqueued[group].append(n)
        crew = Crew()
        holding: Counter[str] = Counter()
        overlaps: list[str] = []
        delivered: defaultdict[str, list[int]] = defaultdict(list)
        completed: list[str] = []

        def consume(url: str, rng: random.Random) -> None:
            while not crew.stop.is_set() and len(completed) < GROUPED_TASKS:
                task = dequeue(url, "ordered")
                if task is None:
                    continue
                group = task["group"]
                with crew.lock:
                    holding[group] += 1
                    if holding[group] > 1:
                        overlaps.append(f"{group}: task {task['payload']['n']} while another")
                    # Recorded before the complete is sent: the next of the group is delivered
                    # only after that, so this list is in delivery order.
                    delivered[group].append(task["payload"]["n"])
                time.sleep(rng.uniform(0, 0.005))
                with crew.lock:
                    holding[group] -= 1
                complete(url, task)
                with crew.lock:
                    completed.append(task["id"])

        # When four consumers on each server drain the queue
        crew.run([a.url, b.url], CONSUMERS_PER_SERVER, consume)

        # Then no two tasks of a group were ever held at once, and each group went in order
        assert overlaps == []
        assert delivered == enqueued
        assert len(set(completed)) == len(completed) == GROUPED_TASKS


RATE_TASKS = 5
RATE_SECONDS = 1.0
RATE_RUN = 3.0


def test_a_rate_limit_holds_across_two_servers_and_is_reached(tmp_path: Path, redis_url: str):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given a queue limited to 5 deliveries a second, with more tasks than that allows
        configure(a.url, "rated", {"rate_limit": {"tasks": RATE_TASKS, "seconds": RATE_SECONDS}})
        enqueue_batch(b.url, "rated", 40)
        crew = Crew()
        deliveries: list[tuple[float, float, str]] = []  # sent, answered, by which server
        started = time.monotonic()

        def consume(url: str, rng: random.Random) -> None:
            while not crew.stop.is_set() and time.monotonic() < started + RATE_RUN:
                sent = time.monotonic()
                task = dequeue(url, "rated", wait=0.3)
                answered = time.monotonic()
                if task is None:
                    continue
                with crew.lock:
                    deliveries.append((sent, answered, url))
                time.sleep(rng.uniform(0, 0.005))
                complete(url, task)

        # When three consumers on each server take what they can for 3 s
        crew.run([a.url, b.url], 3, consume)

        # Then no window of a second surely held more than 5 deliveries: each happened between
        # its dequeue being sent and answered, so those sent at or after one's sending and
        # answered within a second of it all fell in one window
        deliveries.sort()
        for sent, _, _ in deliveries:
            inside = [d for d in deliveries if d[0] >= sent and d[1] < sent + RATE_SECONDS]
            assert len(inside) <= RATE_TASKS, f"{len(inside)} deliveries within a second"
        # and the limit was reached: about 5 a second, shared by both servers
        in_run = [d for d in deliveries if d[1] < started + RATE_RUN]
        assert len(in_run) >= 0.8 * RATE_TASKS * RATE_RUN / RATE_SECONDS
        assert {url for _, _, url in deliveries} == {a.url, b.url}


def woken_on(server: ServerProcess, path: str, trigger: Callable[[], None]) -> tuple[Any, float]:
    """Park a consumer long-polling `path` on `server`, run `trigger`; the task the consumer
    got and the seconds from the trigger to the answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        park(sock, server.url, path)
        triggered = time.monotonic()
        trigger()
        reply = read_reply(sock)
        waited = time.monotonic() - triggered
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply
    return json.loads(body), waited


def test_a_slot_freed_on_one_server_wakes_a_consumer_parked_on_the_other(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        configure(a.url, "capped", {"max_processing": 1})
        enqueue(a.url, "capped")
        second = enqueue(a.url, "capped")
        first = dequeue(a.url, "capped", wait=0)

        task, waited = woken_on(
            b, "/tasks/dequeue?queue=capped&wait=10", lambda: complete(a.url, first)
        )

    assert task["id"] == second["id"]
    assert waited < 1.0


def test_a_rate_window_opening_wakes_a_consumer_parked_on_the_other_server(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        window = 1.5
        configure(a.url, "rated", {"rate_limit": {"tasks": 1, "seconds": window}})
        enqueue(a.url, "rated")
        second = enqueue(a.url, "rated")
        before_first = time.monotonic()
        assert dequeue(a.url, "rated", wait=0) is not None

        # B turns the consumer away (the window is full) and parks it
        task, _ = woken_on(b, "/tasks/dequeue?queue=rated&wait=10", lambda: None)
        waited = time.monotonic() - before_first

    # It got the next task when the window opened: not before, and not much later
    assert task["id"] == second["id"]
    assert window - 0.01 <= waited < window + 0.5


def test_a_groups_head_completed_on_one_server_wakes_a_consumer_parked_on_the_other(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        enqueue(a.url, "ordered", group="order-7")
        second = enqueue(b.url, "ordered", group="order-7")
        head = dequeue(a.url, "ordered", wait=0)
        assert dequeue(b.url, "ordered", wait=0) is None

        task, waited = woken_on(
            b, "/tasks/dequeue?queue=ordered&wait=10", lambda: complete(a.url, head)
        )

    assert task["id"] == second["id"]
    assert waited < 1.0


# --- a SQLite server killed and started again --------------------------------------------------


def sqlite_server(tmp_path: Path) -> ServerProcess:
    return ServerProcess(
        tmp_path / "first.log", "--backend", "sqlite", "--db", str(tmp_path / "q.db")
    )


def test_sqlite_queue_settings_and_their_effects_survive_a_kill(tmp_path: Path):
    limited = {
        "max_processing": 2,
        "rate_limit": {"tasks": 3, "seconds": 60.0},
        "retry_backoff": 7.0,
        "dead_letter_queue": "jobs.dead",
        "ttl_seconds": 100.0,
    }
    expected = {
        "paused": None,
        "max_processing": 2,
        "rate_limit": {"tasks": 3, "seconds": 60.0},
        "lease_seconds": None,
        "max_attempts": None,
        "retry_backoff": 7.0,
        "dead_letter_queue": "jobs.dead",
        "ttl_seconds": 100.0,
        "push": None,
    }
    with sqlite_server(tmp_path) as server:
        # Given a queue with every delivery setting, two of its three deliveries a minute used
        assert configure(server.url, "jobs", limited) == expected
        made = [enqueue(server.url, "jobs", payload={"n": n}) for n in range(4)]
        for _ in range(2):
            complete(server.url, dequeue(server.url, "jobs", wait=0))
        # When the server is killed and started again
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        url = restarted.url
        # Then its settings are as they were, in their order
        shown = call(url, "GET", "/queues/jobs")[1]["settings"]
        assert list(shown.items()) == list(expected.items())
        # the rate window kept its two deliveries: one more, then none while a slot is free
        third = dequeue(url, "jobs", wait=0)
        assert dequeue(url, "jobs", wait=0) is None
        assert call(url, "GET", "/queues/jobs")[1]["processing"] == 1
        # the cap holds once the rate limit is lifted
        configure(url, "jobs", {"rate_limit": None})
        fourth = dequeue(url, "jobs", wait=0)
        assert dequeue(url, "jobs", wait=0) is None
        assert [third["id"], fourth["id"]] == [made[2]["id"], made[3]["id"]]
        # the ttl was applied at the enqueue
        assert epoch(fourth["expires_at"]) - epoch(fourth["created_at"]) == pytest.approx(100.0)
        # a failed attempt waits the queue's backoff
        path = f"/tasks/{third['id']}/fail"
        status, retried = call(url, "PUT", path, {"lease_id": third["lease_id"], "error": "x"})
        assert (status, retried["status"]) == (200, "scheduled")
        assert 6.0 < epoch(retried["available_at"]) - time.time() <= 7.0
        # and a task dead for good moves to the dead-letter queue
        path = f"/tasks/{fourth['id']}/fail"
        body = {"lease_id": fourth["lease_id"], "error": "no", "retry": False}
        status, moved = call(url, "PUT", path, body)
        assert status == 200, moved
        assert (moved["queue"], moved["status"], moved["dead_lettered_from"]) == (
            "jobs.dead",
            "pending",
            "jobs",
        )
        assert dequeue(url, "jobs.dead", wait=0)["id"] == fourth["id"]


def test_sqlite_a_groups_head_processing_at_a_kill_holds_the_rest_back_after_it(tmp_path: Path):
    with sqlite_server(tmp_path) as server:
        # Given two groups whose heads were processing when the server was killed, one of them
        # on a short lease
        first_head = enqueue(server.url, "ordered", group="first")
        first_next = enqueue(server.url, "ordered", group="first")
        second_head = enqueue(server.url, "ordered", group="second")
        second_next = enqueue(server.url, "ordered", group="second")
        held = dequeue(server.url, "ordered", wait=0)
        short = dequeue(server.url, "ordered", wait=0, lease=3)
        assert [held["id"], short["id"]] == [first_head["id"], second_head["id"]]
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        url = restarted.url
        # Then after the restart neither group hands out its next task
        assert dequeue(url, "ordered", wait=0) is None
        # until its head completes
        complete(url, held)
        assert dequeue(url, "ordered", wait=0)["id"] == first_next["id"]
        # or its head's lease runs out: then the head comes again, not the next task
        again = dequeue(url, "ordered", wait=5)
        assert (again["id"], again["attempts"]) == (second_head["id"], 2)
        assert dequeue(url, "ordered", wait=0) is None
        complete(url, again)
        assert dequeue(url, "ordered", wait=0)["id"] == second_next["id"]


def test_sqlite_a_task_whose_expiry_passes_while_the_server_is_down_is_never_delivered(
    tmp_path: Path,
):
    with sqlite_server(tmp_path) as server:
        # Given a task expiring in a second, in a queue with a dead-letter queue, and one
        # behind it that never expires
        configure(server.url, "jobs", {"dead_letter_queue": "jobs.dead"})
        expiring = enqueue(server.url, "jobs", expires_in=1)
        lasting = enqueue(server.url, "jobs")
        # When the server is down while its expiry passes
        server.kill()
        expires_at = epoch(expiring["expires_at"])
        assert wait_until(lambda: time.time() > expires_at + 0.05, 5)
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        url = restarted.url
        # Then after the restart it is not delivered: the one behind it is
        assert dequeue(url, "jobs", wait=0)["id"] == lasting["id"]
        assert dequeue(url, "jobs", wait=0) is None
        # it failed as expired, without being dead-lettered
        shown = call(url, "GET", f"/tasks/{expiring['id']}")[1]
        assert (shown["status"], shown["error"], shown["attempts"]) == ("failed", EXPIRED_ERROR, 0)
        assert (shown["queue"], shown["dead_lettered_from"]) == ("jobs", None)
        assert call(url, "GET", "/queue/totals?queue=jobs")[1]["expired"] == 1
        assert call(url, "GET", "/queues/jobs.dead")[1]["pending"] == 0


def test_sqlite_a_last_lease_running_out_after_a_kill_dead_letters_the_task(tmp_path: Path):
    with sqlite_server(tmp_path) as server:
        # Given a task on its last attempt, leased for a second when the server is killed
        configure(server.url, "jobs", {"dead_letter_queue": "jobs.dead"})
        task = enqueue(server.url, "jobs", max_attempts=1)
        assert dequeue(server.url, "jobs", wait=0, lease=1)["id"] == task["id"]
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        url = restarted.url

        def moved() -> bool:
            return call(url, "GET", f"/tasks/{task['id']}")[1]["queue"] == "jobs.dead"

        # Then once the lease runs out after the restart, the task moves to the dead letters
        assert wait_until(moved, 5)
        shown = call(url, "GET", f"/tasks/{task['id']}")[1]
        assert (shown["status"], shown["attempts"], shown["error"]) == (
            "pending",
            0,
            "lease expired",
        )
        assert shown["dead_lettered_from"] == "jobs"
        assert dequeue(url, "jobs", wait=0) is None
        assert dequeue(url, "jobs.dead", wait=0)["id"] == task["id"]
