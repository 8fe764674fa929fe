"""Occurrences of a schedule: the first run after a PUT, the next after a firing, one catch-up
for many missed occurrences, cron times in their timezone across daylight saving, and a firing
that never repeats an occurrence or enqueues into a full queue."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

import pytest

from tornado_queue.errors import QueueFull
from tornado_queue.models import NewTask
from tornado_queue.schedules import (
    Firing,
    Schedule,
    check_cron,
    cron_after,
    cron_latest,
    fire,
    firing,
    first_run,
)

T0 = 1_790_000_000.0


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def every(seconds: float, **fields: object) -> Schedule:
    return Schedule("s", "q", b"{}", every=seconds, **fields)  # type: ignore[arg-type]


def cron(expression: str, timezone: str = "UTC", **fields: object) -> Schedule:
    return Schedule("s", "q", b"{}", cron=expression, timezone=timezone, **fields)  # type: ignore[arg-type]


def test_an_every_schedule_first_runs_one_interval_after_it_is_placed():
    assert first_run(every(60), T0) == T0 + 60
    assert every(60).placed(T0).next_run_at == T0 + 60


def test_a_paused_schedule_is_placed_with_no_next_run():
    assert every(60, paused=True).placed(T0).next_run_at is None


def test_a_cron_first_runs_at_its_next_time_strictly_after_now():
    hourly = cron("0 * * * *")

    assert first_run(hourly, at("2026-06-01T10:00:00+00:00")) == at("2026-06-01T11:00:00+00:00")
    assert first_run(hourly, at("2026-06-01T10:59:59.5+00:00")) == at("2026-06-01T11:00:00+00:00")


def test_the_latest_cron_time_includes_now_itself():
    five = cron("*/5 * * * *")

    assert cron_latest(five, at("2026-06-01T10:10:00+00:00")) == at("2026-06-01T10:10:00+00:00")
    assert cron_latest(five, at("2026-06-01T10:14:59.9+00:00")) == at("2026-06-01T10:10:00+00:00")


def test_an_on_time_firing_fires_its_occurrence_and_waits_one_interval():
    due = every(10, next_run_at=T0)

    assert firing(due, T0) == Firing(T0, T0 + 10)
    assert firing(due, T0 + 0.5) == Firing(T0, T0 + 10)


def test_many_missed_every_occurrences_fire_once_for_the_latest():
    assert firing(every(10, next_run_at=T0), T0 + 95) == Firing(T0 + 90, T0 + 100)


def test_many_missed_cron_times_fire_once_for_the_latest():
    due = cron("*/5 * * * *", next_run_at=at("2026-06-01T10:05:00+00:00"))

    step = firing(due, at("2026-06-01T11:17:00+00:00"))

    assert step == Firing(at("2026-06-01T11:15:00+00:00"), at("2026-06-01T11:20:00+00:00"))


def test_a_cron_is_read_in_its_timezone():
    berlin = cron("0 6 * * *", "Europe/Berlin")

    assert cron_after(berlin, at("2026-01-10T00:00:00+00:00")) == at("2026-01-10T05:00:00+00:00")
    assert cron_after(berlin, at("2026-07-10T00:00:00+00:00")) == at("2026-07-10T04:00:00+00:00")


@pytest.mark.parametrize(
    ("zone", "after", "expected"),
    [
        # 2026-03-29 02:00 CET becomes 03:00 CEST: 02:30 fires once, at 03:00 CEST
        ("Europe/Berlin", "2026-03-28T12:00:00+00:00", "2026-03-29T01:00:00+00:00"),
        ("Europe/Berlin", "2026-03-29T01:00:00+00:00", "2026-03-30T00:30:00+00:00"),
        # 2026-10-25 03:00 CEST becomes 02:00 CET: 02:30 comes twice and fires the first time
        ("Europe/Berlin", "2026-10-24T12:00:00+00:00", "2026-10-25T00:30:00+00:00"),
        ("Europe/Berlin", "2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"),
        # New York springs forward on 2026-03-08 at 02:00
        ("America/New_York", "2026-03-07T12:00:00+00:00", "2026-03-08T07:00:00+00:00"),
    ],
)
def test_a_daily_time_across_daylight_saving_follows_debian_crons_rules(zone, after, expected):
    assert cron_after(cron("30 2 * * *", zone), at(after)) == at(expected)


def test_check_cron_says_why_an_expression_is_refused():
    check_cron("*/5 * * * *", "UTC")
    with pytest.raises(ValueError, match="minute"):
        check_cron("61 * * * *", "UTC")
    with pytest.raises(ValueError, match="fields"):
        check_cron("every day", "UTC")


def test_fire_enqueues_the_occurrence_with_its_schedule_and_fire_time():
    enqueued: list[NewTask] = []

    def enqueue(new_task: NewTask) -> str:
        enqueued.append(new_task)
        return "task-1"

    due = every(10, next_run_at=T0, priority=3, max_attempts=2)
    after, fired = fire(due, T0 + 1, enqueue)

    assert (after.next_run_at, after.last_run_at) == (T0 + 10, T0)
    assert fired is not None and (fired.task_id, fired.fire_time, fired.error) == (
        "task-1",
        T0,
        None,
    )
    (task,) = enqueued
    assert (task.schedule, task.fire_time, task.queue) == ("s", T0, "q")
    assert (task.priority, task.max_attempts) == (3, 2)


def test_fire_never_enqueues_an_occurrence_at_or_before_the_last_run():
    def enqueue(_new_task: NewTask) -> str:
        raise AssertionError("enqueued again")

    after, fired = fire(every(10, next_run_at=T0, last_run_at=T0), T0, enqueue)

    assert fired is None
    assert after.next_run_at == T0 + 10


def test_an_occurrence_that_finds_the_queue_full_is_skipped_and_the_schedule_goes_on():
    def enqueue(_new_task: NewTask) -> str:
        raise QueueFull("queue 'q' is full")

    after, fired = fire(every(10, next_run_at=T0), T0, enqueue)

    assert fired is not None and fired.task_id is None and "full" in str(fired.error)
    assert after == replace(every(10, next_run_at=T0), next_run_at=T0 + 10)
