"""Schedules over HTTP, on every store, on the fake clock: create, replace, read, list and
delete; every bad input is a 400 naming its field and changes nothing; `every` and cron
schedules fire on time with `schedule` and `fire_time` on their task, catch up at most once,
never fire while paused, follow daylight saving in their timezone, and obey the queue's
settings and limits."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import FakeClock
from tests.server.handlers.helpers import (
    assert_json,
    assert_problem,
    assert_task_document,
    parse_timestamp,
    request,
)
from tornado_queue.codec import format_time
from tornado_queue.storage import memory, redis, sqlite

EVERY = {"queue": "pings", "payload": {"ping": True}, "every": 60}
CRON = {"queue": "reports", "payload": {"report": "daily"}, "cron": "*/5 * * * *"}


async def call(client, base_url: str, method: str, path: str, body: Any = None) -> Any:
    """A request that must succeed; its document (None for an empty answer)."""
    response = await request(client, base_url, method, path, body)
    assert response.code in (200, 201, 204), response.body
    return assert_json(response, response.code) if response.body else None


async def put(client, base_url: str, name: str, body: dict[str, Any]) -> tuple[int, Any]:
    response = await request(client, base_url, "PUT", f"/schedules/{name}", body)
    assert response.code in (200, 201), response.body
    return response.code, assert_json(response, response.code)


async def fire(app) -> list[Any]:
    """One pass of the server's scheduler, as its loop makes after a wake-up."""
    return await app.services.scheduler.fire_due()


async def queued(client, base_url: str, queue: str) -> list[dict[str, Any]]:
    """The queue's pending tasks in dequeue order, every document checked."""
    tasks = await call(client, base_url, "GET", f"/queue/view?queue={queue}")
    return [assert_task_document(task) for task in tasks]


def when(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


# -- create, replace, read, list, delete --------------------------------------------------


@pytest.mark.gen_test
async def test_a_schedule_is_created_read_listed_replaced_and_deleted(
    http_client, base_url, clock: FakeClock, store
):
    code, created = await put(http_client, base_url, "minutely", EVERY)

    assert code == 201
    assert created == {
        "name": "minutely",
        "queue": "pings",
        "payload": {"ping": True},
        "cron": None,
        "every": 60.0,
        "timezone": "UTC",
        "priority": 0,
        "max_attempts": None,
        "paused": False,
        "next_run_at": format_time(clock.now + 60),
        "last_run_at": None,
    }
    assert await call(http_client, base_url, "GET", "/schedules/minutely") == created

    changed = {**CRON, "timezone": "Europe/Berlin", "priority": 5, "max_attempts": 2}
    code, replaced = await put(http_client, base_url, "minutely", changed)

    assert code == 200
    assert replaced["cron"] == "*/5 * * * *"
    assert replaced["every"] is None
    assert (replaced["timezone"], replaced["priority"], replaced["max_attempts"]) == (
        "Europe/Berlin",
        5,
        2,
    )
    await put(http_client, base_url, "a-first", EVERY)
    listing = await call(http_client, base_url, "GET", "/schedules")
    assert [schedule["name"] for schedule in listing] == ["a-first", "minutely"]
    assert listing[1] == replaced

    assert await call(http_client, base_url, "DELETE", "/schedules/minutely") is None
    gone = await request(http_client, base_url, "GET", "/schedules/minutely")
    assert "minutely" in assert_problem(gone, 404)["detail"]
    again = await request(http_client, base_url, "DELETE", "/schedules/minutely")
    assert_problem(again, 404)
    assert [s["name"] for s in await call(http_client, base_url, "GET", "/schedules")] == [
        "a-first"
    ]


@pytest.mark.gen_test
async def test_a_cron_schedule_runs_next_at_the_crons_next_time(
    http_client, base_url, clock: FakeClock, store
):
    clock.now = when("2026-06-01T10:02:30+00:00")

    _, created = await put(http_client, base_url, "reports", CRON)

    assert parse_timestamp(created["next_run_at"]) == datetime(2026, 6, 1, 10, 5, tzinfo=UTC)


# -- bad input ------------------------------------------------------------------------------


BAD_BODIES = [
    ({**EVERY, "colour": "red"}, "colour"),
    ({"payload": {}, "every": 5}, "queue"),
    ({"queue": "q", "every": 5}, "payload"),
    ({**EVERY, "payload": [1]}, "payload"),
    ({**EVERY, "queue": "no spaces"}, "queue"),
    ({**EVERY, "every": 0}, "every"),
    ({**EVERY, "every": 0.5}, "every"),
    ({**EVERY, "every": "60"}, "every"),
    ({**EVERY, "every": True}, "every"),
    ({**CRON, "cron": "every day"}, "cron"),
    ({**CRON, "cron": "61 * * * *"}, "cron"),
    ({**CRON, "cron": 5}, "cron"),
    ({**CRON, "cron": "* " * 200}, "cron"),
    ({**CRON, "timezone": "Mars/Olympus"}, "timezone"),
    ({**CRON, "timezone": 1}, "timezone"),
    ({**EVERY, "cron": "* * * * *"}, "cron"),
    ({"queue": "q", "payload": {}}, "every"),
    ({**EVERY, "priority": 2**31}, "priority"),
    ({**EVERY, "priority": 1.5}, "priority"),
    ({**EVERY, "max_attempts": 0}, "max_attempts"),
    ({**EVERY, "paused": "yes"}, "paused"),
]


@pytest.mark.gen_test
@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
async def test_a_bad_definition_is_a_400_naming_the_field_and_changes_nothing(
    http_client, base_url, store, body, field
):
    _, before = await put(http_client, base_url, "kept", EVERY)

    for name in ("kept", "new-one"):
        response = await request(http_client, base_url, "PUT", f"/schedules/{name}", body)
        assert field in assert_problem(response, 400)["detail"]

    assert await call(http_client, base_url, "GET", "/schedules") == [before]


@pytest.mark.gen_test
@pytest.mark.parametrize("body", [b"", b"[]", b"{", b"null"])
async def test_a_body_that_is_not_a_definition_is_a_400(http_client, base_url, store, body):
    response = await request(http_client, base_url, "PUT", "/schedules/x", body)

    assert_problem(response, 400)
    assert await call(http_client, base_url, "GET", "/schedules") == []


@pytest.mark.gen_test
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_a_name_that_breaks_the_queue_name_rules_is_a_400(
    http_client, base_url, store, method
):
    body = EVERY if method == "PUT" else None
    response = await request(http_client, base_url, method, "/schedules/bad%20name", body)

    assert "name" in assert_problem(response, 400)["detail"]
    assert await call(http_client, base_url, "GET", "/schedules") == []


@pytest.mark.gen_test
async def test_past_the_most_schedules_a_new_one_is_a_409_and_replacing_still_works(
    http_client, base_url, store, monkeypatch
):
    for module in (memory, sqlite, redis):
        monkeypatch.setattr(module, "MAX_SCHEDULES", 2)
    await put(http_client, base_url, "one", EVERY)
    await put(http_client, base_url, "two", EVERY)

    response = await request(http_client, base_url, "PUT", "/schedules/three", EVERY)

    assert "2" in assert_problem(response, 409)["detail"]
    assert (await put(http_client, base_url, "two", CRON))[0] == 200
    names = [s["name"] for s in await call(http_client, base_url, "GET", "/schedules")]
    assert names == ["one", "two"]


# -- firing ---------------------------------------------------------------------------------


@pytest.mark.gen_test
async def test_an_every_schedule_fires_one_interval_after_it_is_put_and_on_from_there(
    http_client, base_url, clock: FakeClock, store, app
):
    start = clock.now
    await put(http_client, base_url, "minutely", EVERY)
    clock.advance(59.5)
    assert await fire(app) == []

    clock.advance(0.5)
    fired = await fire(app)
    clock.advance(60)
    fired += await fire(app)

    tasks = await queued(http_client, base_url, "pings")
    assert [(task["schedule"], task["fire_time"]) for task in tasks] == [
        ("minutely", format_time(start + 60)),
        ("minutely", format_time(start + 120)),
    ]
    assert [outcome.task_id for outcome in fired] == [task["id"] for task in tasks]
    assert tasks[0]["payload"] == {"ping": True}
    read = await call(http_client, base_url, "GET", f"/tasks/{tasks[0]['id']}")
    assert read["schedule"] == "minutely"
    shown = await call(http_client, base_url, "GET", "/schedules/minutely")
    assert shown["last_run_at"] == format_time(start + 120)
    assert shown["next_run_at"] == format_time(start + 180)


@pytest.mark.gen_test
async def test_a_task_not_from_a_schedule_shows_null_schedule_and_fire_time(
    http_client, base_url, store
):
    task = await call(http_client, base_url, "POST", "/tasks", {"payload": {}})

    assert (task["schedule"], task["fire_time"]) == (None, None)


@pytest.mark.gen_test
async def test_a_cron_schedule_fires_at_each_matching_time(
    http_client, base_url, clock: FakeClock, store, app
):
    clock.now = when("2026-06-01T10:02:30+00:00")
    await put(http_client, base_url, "reports", {**CRON, "priority": 3, "max_attempts": 4})

    clock.now = when("2026-06-01T10:05:00+00:00")
    await fire(app)
    clock.now = when("2026-06-01T10:09:59+00:00")
    await fire(app)
    clock.now = when("2026-06-01T10:10:00.250+00:00")
    await fire(app)

    tasks = await queued(http_client, base_url, "reports")
    assert [task["fire_time"] for task in tasks] == [
        "2026-06-01T10:05:00Z",
        "2026-06-01T10:10:00Z",
    ]
    assert {(task["priority"], task["max_attempts"]) for task in tasks} == {(3, 4)}


@pytest.mark.gen_test
async def test_after_missing_many_occurrences_one_catch_up_fires_for_the_latest(
    http_client, base_url, clock: FakeClock, store, app
):
    start = clock.now
    await put(http_client, base_url, "every-10", {**EVERY, "every": 10})
    clock.now = start + 95  # nine occurrences passed unfired

    fired = await fire(app)
    fired += await fire(app)

    assert [outcome.fire_time for outcome in fired] == [start + 90]
    tasks = await queued(http_client, base_url, "pings")
    assert [task["fire_time"] for task in tasks] == [format_time(start + 90)]
    shown = await call(http_client, base_url, "GET", "/schedules/every-10")
    assert shown["next_run_at"] == format_time(start + 100)

    clock.now = start + 100
    await fire(app)
    assert len(await queued(http_client, base_url, "pings")) == 2


@pytest.mark.gen_test
async def test_a_cron_schedule_catches_up_once_with_the_latest_missed_time(
    http_client, base_url, clock: FakeClock, store, app
):
    clock.now = when("2026-06-01T10:02:30+00:00")
    await put(http_client, base_url, "reports", CRON)

    clock.now = when("2026-06-01T11:17:00+00:00")
    await fire(app)

    tasks = await queued(http_client, base_url, "reports")
    assert [task["fire_time"] for task in tasks] == ["2026-06-01T11:15:00Z"]
    shown = await call(http_client, base_url, "GET", "/schedules/reports")
    assert shown["next_run_at"] == "2026-06-01T11:20:00Z"


@pytest.mark.gen_test
async def test_a_paused_schedule_never_fires_and_resumes_from_the_next_occurrence(
    http_client, base_url, clock: FakeClock, store, app
):
    _, paused = await put(http_client, base_url, "minutely", {**EVERY, "paused": True})
    assert paused["next_run_at"] is None

    clock.advance(3600)
    assert await fire(app) == []
    assert await queued(http_client, base_url, "pings") == []

    resumed_at = clock.now
    _, resumed = await put(http_client, base_url, "minutely", EVERY)
    assert resumed["next_run_at"] == format_time(resumed_at + 60)
    assert await fire(app) == []  # no burst for the hour it was paused
    clock.advance(60)
    await fire(app)
    tasks = await queued(http_client, base_url, "pings")
    assert [task["fire_time"] for task in tasks] == [format_time(resumed_at + 60)]


@pytest.mark.gen_test
async def test_a_deleted_schedule_stops_firing_and_its_tasks_stay(
    http_client, base_url, clock: FakeClock, store, app
):
    await put(http_client, base_url, "minutely", EVERY)
    clock.advance(60)
    await fire(app)
    await call(http_client, base_url, "DELETE", "/schedules/minutely")

    clock.advance(600)
    assert await fire(app) == []
    assert len(await queued(http_client, base_url, "pings")) == 1


@pytest.mark.gen_test
async def test_replacing_a_schedule_sets_its_next_run_afresh_and_keeps_its_last_run(
    http_client, base_url, clock: FakeClock, store, app
):
    start = clock.now
    await put(http_client, base_url, "minutely", EVERY)
    clock.advance(60)
    await fire(app)
    clock.advance(30)

    _, replaced = await put(http_client, base_url, "minutely", {**EVERY, "every": 600})

    assert replaced["last_run_at"] == format_time(start + 60)
    assert replaced["next_run_at"] == format_time(start + 690)


@pytest.mark.gen_test
async def test_a_fired_task_takes_its_queues_settings(
    http_client, base_url, clock: FakeClock, store, app
):
    settings = {"max_attempts": 7, "ttl_seconds": 120}
    await call(http_client, base_url, "PATCH", "/queues/pings", settings)
    await put(http_client, base_url, "minutely", EVERY)
    clock.advance(60)

    await fire(app)

    (task,) = await queued(http_client, base_url, "pings")
    assert task["max_attempts"] == 7
    assert parse_timestamp(task["expires_at"]).timestamp() == clock.now + 120


@pytest.mark.gen_test
async def test_an_occurrence_that_finds_the_queue_full_is_skipped_and_the_next_one_fires(
    http_client, base_url, clock: FakeClock, store, app
):
    store.policy = replace(store.policy, max_pending=1)
    start = clock.now
    await call(http_client, base_url, "POST", "/tasks", {"payload": {}, "queue": "pings"})
    await put(http_client, base_url, "minutely", EVERY)
    clock.advance(60)

    (skipped,) = await fire(app)

    assert skipped.task_id is None
    assert "full" in skipped.error
    shown = await call(http_client, base_url, "GET", "/schedules/minutely")
    assert (shown["last_run_at"], shown["next_run_at"]) == (None, format_time(start + 120))

    (first,) = await queued(http_client, base_url, "pings")
    await call(http_client, base_url, "DELETE", f"/tasks/{first['id']}")
    clock.advance(60)
    (enqueued,) = await fire(app)
    assert enqueued.fire_time == start + 120
    assert enqueued.task_id is not None


# -- daylight saving ----------------------------------------------------------------------


@pytest.mark.gen_test
async def test_on_a_spring_forward_day_a_skipped_time_fires_once_at_the_first_valid_time(
    http_client, base_url, clock: FakeClock, store, app
):
    # Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST, so 02:30 does not exist that day.
    clock.now = when("2026-03-28T12:00:00+00:00")
    daily = {**CRON, "cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    _, created = await put(http_client, base_url, "daily", daily)
    assert created["next_run_at"] == "2026-03-29T01:00:00Z"  # 03:00 CEST

    for moment in ("2026-03-29T01:00:00", "2026-03-29T12:00:00", "2026-03-30T00:30:00"):
        clock.now = when(moment + "+00:00")
        await fire(app)

    tasks = await queued(http_client, base_url, "reports")
    assert [task["fire_time"] for task in tasks] == [
        "2026-03-29T01:00:00Z",
        "2026-03-30T00:30:00Z",  # 02:30 CEST again
    ]


@pytest.mark.gen_test
async def test_on_a_fall_back_day_a_repeated_time_fires_once(
    http_client, base_url, clock: FakeClock, store, app
):
    # Berlin, 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 comes twice.
    clock.now = when("2026-10-24T12:00:00+00:00")
    daily = {**CRON, "cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    _, created = await put(http_client, base_url, "daily", daily)
    assert created["next_run_at"] == "2026-10-25T00:30:00Z"  # 02:30 CEST

    for moment in ("2026-10-25T00:30:00", "2026-10-25T01:30:00", "2026-10-26T01:30:00"):
        clock.now = when(moment + "+00:00")
        await fire(app)

    tasks = await queued(http_client, base_url, "reports")
    assert [task["fire_time"] for task in tasks] == [
        "2026-10-25T00:30:00Z",
        "2026-10-26T01:30:00Z",  # 02:30 CET: the repeated 02:30 of the 25th did not fire
    ]


@pytest.mark.gen_test
async def test_each_occurrence_fired_is_counted_by_schedule_in_the_metrics(
    http_client, base_url, clock: FakeClock, store, app
):
    await put(http_client, base_url, "minutely", EVERY)
    for _ in range(3):
        clock.advance(60)
        await fire(app)

    response = await request(http_client, base_url, "GET", "/metrics")

    assert response.code == 200
    assert b'taskqueue_schedule_fired_total{schedule="minutely"} 3.0' in response.body
