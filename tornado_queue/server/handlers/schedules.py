"""Schedule routes: create or replace, read, list and delete cron and interval schedules."""

from __future__ import annotations

from typing import Any

import orjson

from tornado_queue import validation
from tornado_queue.codec import format_time
from tornado_queue.errors import ScheduleNotFound
from tornado_queue.schedules import Schedule
from tornado_queue.server.auth import ADMIN
from tornado_queue.server.handlers.base import ApiHandler


def schedule_document(schedule: Schedule) -> dict[str, Any]:
    """The wire form of a schedule (see docs/api.md, Schedules)."""
    return {
        "name": schedule.name,
        "queue": schedule.queue,
        "payload": orjson.Fragment(schedule.payload),
        "cron": schedule.cron,
        "every": schedule.every,
        "timezone": schedule.timezone,
        "priority": schedule.priority,
        "max_attempts": schedule.max_attempts,
        "paused": schedule.paused,
        "next_run_at": format_time(schedule.next_run_at),
        "last_run_at": format_time(schedule.last_run_at),
    }


def path_schedule(name: str) -> str:
    """The `{name}` of a schedule route: a queue name's rules (a bad one is a 400)."""
    return validation.queue_name(name, "path parameter 'name'")


class SchedulesHandler(ApiHandler):
    """`GET /schedules`: every schedule, sorted by name."""

    roles = ADMIN

    async def get(self) -> None:
        schedules = await self.call_store(self.store.schedules)
        self.write_json([schedule_document(schedule) for schedule in schedules])

    head = get


class ScheduleHandler(ApiHandler):
    """`PUT /schedules/{name}`: create (201) or replace (200) a schedule; `GET`: read it;
    `DELETE`: remove it (204). Tasks it enqueued stay."""

    roles = ADMIN

    async def get(self, name: str) -> None:
        schedule = await self.call_store(self.store.get_schedule, path_schedule(name))
        if schedule is None:
            raise ScheduleNotFound(name)
        self.write_json(schedule_document(schedule))

    head = get

    async def put(self, name: str) -> None:
        wanted = validation.schedule(self.json_body(), path_schedule(name))
        # Safe to apply again: a PUT sets the same definition, whatever happened before.
        stored, created = await self.call_store(
            self.store.put_schedule, wanted, reapply="a PUT sets the same definition again"
        )
        self.services.scheduler.poke()
        self.write_json(schedule_document(stored), 201 if created else 200)

    async def delete(self, name: str) -> None:
        if not await self.call_store(self.store.delete_schedule, path_schedule(name)):
            raise ScheduleNotFound(name)
        self.set_status(204)
        self.clear_header("Content-Type")
        self.finish()
