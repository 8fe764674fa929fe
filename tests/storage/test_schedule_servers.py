"""Schedules against real server processes: two servers on one Redis firing a one-second
schedule enqueue every occurrence exactly once, consecutively; a SQLite server killed with
SIGKILL and restarted after missing several occurrences never enqueues one twice and catches up
once, with the latest it missed."""

from __future__ import annotations

import time
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

from tests.storage.test_redis_servers import start_pair
from tests.support import call, wait_until
from tornado_queue.testing import ServerProcess

TICK = {"queue": "ticks", "payload": {"tick": True}, "every": 1}
FIRES_WANTED = 5
"""Occurrences each test waits for (about a second apart)."""


def epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp).timestamp()


def put_tick(url: str) -> dict[str, Any]:
    status, schedule = call(url, "PUT", "/schedules/tick", TICK)
    assert status == 201, schedule
    return schedule


def fire_times(url: str) -> list[float]:
    """The fire times of the tasks the schedule enqueued, as stored (in enqueue order)."""
    status, tasks = call(url, "GET", "/queue/view?queue=ticks&limit=10000")
    assert status == 200, tasks
    assert {task["schedule"] for task in tasks} <= {"tick"}
    return [epoch(task["fire_time"]) for task in tasks]


def gaps(times: list[float]) -> list[float]:
    return [round(later - earlier, 6) for earlier, later in pairwise(times)]


def test_two_servers_on_one_redis_enqueue_each_occurrence_exactly_once(
    tmp_path: Path, redis_url: str
):
    a, b = start_pair(tmp_path, redis_url)
    with a, b:
        # Given a one-second schedule put through one server, both servers firing
        put_tick(a.url)

        # When a few seconds of occurrences have passed
        assert wait_until(lambda: len(fire_times(b.url)) >= FIRES_WANTED, timeout=15)
        assert call(b.url, "DELETE", "/schedules/tick")[0] == 204

        # Then every occurrence is one task, and none was missed or repeated
        times = fire_times(a.url)
        assert len(times) == len(set(times))
        assert gaps(times) == [1.0] * (len(times) - 1), times
        status, tasks = call(a.url, "GET", "/queue/view?queue=ticks&limit=10000")
        assert status == 200
        assert [task["payload"] for task in tasks] == [{"tick": True}] * len(times)


def test_a_sqlite_server_killed_past_several_occurrences_catches_up_once(tmp_path: Path):
    db = str(tmp_path / "q.db")
    server = ServerProcess(tmp_path / "first.log", "--backend", "sqlite", "--db", db)
    with server:
        put_tick(server.url)
        assert wait_until(lambda: len(fire_times(server.url)) >= 2, timeout=15)
        # When the server is killed mid-run and stays down past several occurrences
        server.kill()
        killed_at = time.time()
        time.sleep(3.5)  # the outage itself: nothing to wait for but time
        restarted_at = time.time()
        restarted = server.restart(tmp_path / "second.log")
    with restarted:
        before = len(fire_times(restarted.url))
        assert wait_until(lambda: len(fire_times(restarted.url)) >= before + 3, timeout=15)
        assert call(restarted.url, "DELETE", "/schedules/tick")[0] == 204
        times = fire_times(restarted.url)

    # Then no occurrence was enqueued twice,
    assert len(times) == len(set(times))
    assert times == sorted(times)
    # the occurrences missed while it was down are one task, the latest of them (the restarted
    # server looked after `restarted_at`, and occurrences are a second apart),
    missed = [at for at in times if killed_at < at <= restarted_at]
    assert len(missed) <= 1, times
    caught_up = next(at for at in times if at > killed_at)
    assert caught_up >= restarted_at - 1.0, (caught_up, restarted_at)
    # and every other step is one interval: one gap spans the outage
    steps = gaps(times)
    assert sorted(steps)[:-1] == [1.0] * (len(steps) - 1), times
    assert max(steps) >= 3.0
