"""Schedules: a task enqueued on a cron expression or every so many seconds.

Occurrences are computed here, once for every store: a store keeps each schedule's
`next_run_at` and fires it atomically (see `Store.fire_due_schedules`). Cron expressions are
read and stepped by cronsim, which follows Debian cron's daylight-saving rules in the
schedule's timezone (see docs/schedules.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from cronsim import CronSim, CronSimError

from tornado_queue.errors import QueueFull
from tornado_queue.models import NewTask

DEFAULT_TIMEZONE = "UTC"


@dataclass(frozen=True, slots=True)
class Schedule:
    """A schedule as the store keeps it. Exactly one of `cron` and `every` is set; `payload` is
    the task's JSON object, serialized. `next_run_at` (epoch seconds) is the occurrence the
    store fires next, None while paused; `last_run_at` the fire time of the last task it
    enqueued. `revision` goes up with every PUT, so a firing decided on an older definition is
    refused."""

    name: str
    queue: str
    payload: bytes
    cron: str | None = None
    every: float | None = None
    timezone: str = DEFAULT_TIMEZONE
    priority: int = 0
    max_attempts: int | None = None
    paused: bool = False
    next_run_at: float | None = None
    last_run_at: float | None = None
    revision: int = 0

    def new_task(self, fire_time: float) -> NewTask:
        """The task one occurrence enqueues (through the normal enqueue rules)."""
        return NewTask(
            payload=self.payload,
            max_attempts=self.max_attempts,
            queue=self.queue,
            priority=self.priority,
            schedule=self.name,
            fire_time=fire_time,
        )

    def placed(self, now: float) -> Schedule:
        """The definition as a PUT at `now` stores it: next_run_at one interval from now, or
        the cron's next time after now; None while paused (it does not run)."""
        return replace(self, next_run_at=None if self.paused else first_run(self, now))


@dataclass(frozen=True, slots=True)
class Firing:
    """What a due schedule does at `now`: enqueue one task for `fire_time` (the latest
    occurrence not after now: at most one catch-up however many were missed), then wait for
    `next_run_at` (the first occurrence after now)."""

    fire_time: float
    next_run_at: float


@dataclass(frozen=True, slots=True)
class Fired:
    """One occurrence a store fired: the task it enqueued, or the error that refused it (a
    full queue or store: the occurrence is skipped, the schedule goes on)."""

    schedule: str
    fire_time: float
    task_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Round:
    """What one `Store.fire_due_schedules` call did: the occurrences fired, whether more were
    due than it fired (call again at once), and when the earliest schedule is due next
    (epoch seconds; None when no schedule runs)."""

    fired: list[Fired]
    more: bool
    next_due: float | None


def fire(
    schedule: Schedule, now: float, enqueue: Callable[[NewTask], str]
) -> tuple[Schedule, Fired | None]:
    """Fire a due schedule at `now` inside a store's atomic step: `enqueue` adds the task
    through the store's normal enqueue rules (and returns its id) or raises `QueueFull`, in
    which case the occurrence is skipped. Returns the schedule as it is after, and what fired
    (None for an occurrence at or before `last_run_at`, which never fires twice: a clock
    that went back)."""
    step = firing(schedule, now)
    after = replace(schedule, next_run_at=step.next_run_at)
    last = schedule.last_run_at
    if last is not None and step.fire_time <= last:
        return after, None
    try:
        task_id = enqueue(schedule.new_task(step.fire_time))
    except QueueFull as full:
        return after, Fired(schedule.name, step.fire_time, error=str(full))
    return replace(after, last_run_at=step.fire_time), Fired(schedule.name, step.fire_time, task_id)


@cache
def timezones() -> frozenset[str]:
    """The IANA timezone names this machine knows (read once: it walks the tz database)."""
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def check_cron(expression: str, timezone: str) -> None:
    """Raise `ValueError` saying why cronsim cannot read `expression`."""
    try:
        CronSim(expression, datetime.now(zone(timezone)))
    except CronSimError as error:
        raise ValueError(str(error)) from None


def first_run(schedule: Schedule, now: float) -> float:
    """The first occurrence after `now` of a schedule (re)defined at `now`."""
    if schedule.every is not None:
        return now + schedule.every
    return cron_after(schedule, now)


def cron_after(schedule: Schedule, after: float) -> float:
    """The cron's first time strictly after `after`, in the schedule's timezone."""
    assert schedule.cron is not None
    start = datetime.fromtimestamp(after, zone(schedule.timezone))
    return next(CronSim(schedule.cron, start)).timestamp()


def cron_latest(schedule: Schedule, at_or_before: float) -> float:
    """The cron's last time at or before `at_or_before` (cronsim steps backwards strictly
    before its start, and works in whole seconds, so it starts a second on)."""
    assert schedule.cron is not None
    start = datetime.fromtimestamp(math.floor(at_or_before) + 1, zone(schedule.timezone))
    return next(CronSim(schedule.cron, start, reverse=True)).timestamp()


def firing(schedule: Schedule, now: float) -> Firing:
    """How a schedule whose `next_run_at` has come fires at `now` (see `Firing`)."""
    due = schedule.next_run_at
    assert due is not None and due <= now
    if schedule.every is not None:
        missed = math.floor((now - due) / schedule.every)
        fire_time = due + missed * schedule.every
        return Firing(fire_time, fire_time + schedule.every)
    fire_time = max(cron_latest(schedule, now), due)
    return Firing(fire_time, cron_after(schedule, now))
