"""Schedules for the SQLite store: one row per schedule, statements run in the caller's
transaction. Due schedules are read through the `schedule_runs` index on `next_run_at`, so a
round never scans the table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tornado_queue.schedules import Schedule
from tornado_queue.storage.sqlite_control import Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS schedules (
    name TEXT PRIMARY KEY,
    queue TEXT NOT NULL,
    payload BLOB NOT NULL,
    cron TEXT,
    every REAL,
    timezone TEXT NOT NULL,
    priority INTEGER NOT NULL,
    max_attempts INTEGER,
    paused INTEGER NOT NULL,
    next_run_at REAL,
    last_run_at REAL,
    revision INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS schedule_runs ON schedules (next_run_at)
    WHERE next_run_at IS NOT NULL;
"""
"""`next_run_at` is NULL while a schedule is paused, so the index holds only those that run."""

COLUMNS = (
    "name, queue, payload, cron, every, timezone, priority, max_attempts, paused, "
    "next_run_at, last_run_at, revision"
)


def get(tx: Transaction, name: str) -> Schedule | None:
    row = tx.execute(f"SELECT {COLUMNS} FROM schedules WHERE name = ?", (name,)).fetchone()
    return None if row is None else _schedule(row)


def count(tx: Transaction) -> int:
    return int(tx.execute("SELECT count(*) FROM schedules").fetchone()[0])


def listing(tx: Transaction) -> list[Schedule]:
    rows = tx.execute(f"SELECT {COLUMNS} FROM schedules ORDER BY name")
    return [_schedule(row) for row in rows]


def write(tx: Transaction, schedule: Schedule) -> None:
    """Insert the schedule, or replace the row of the same name."""
    tx.execute(
        f"INSERT OR REPLACE INTO schedules ({COLUMNS}) VALUES ({', '.join('?' * 12)})",
        (
            schedule.name,
            schedule.queue,
            schedule.payload,
            schedule.cron,
            schedule.every,
            schedule.timezone,
            schedule.priority,
            schedule.max_attempts,
            int(schedule.paused),
            schedule.next_run_at,
            schedule.last_run_at,
            schedule.revision,
        ),
    )


def delete(tx: Transaction, name: str) -> bool:
    return tx.execute("DELETE FROM schedules WHERE name = ?", (name,)).rowcount > 0


def due(tx: Transaction, now: float, limit: int) -> list[Schedule]:
    """Up to `limit` schedules whose next run has come, earliest first (by the index)."""
    rows = tx.execute(
        f"SELECT {COLUMNS} FROM schedules WHERE next_run_at IS NOT NULL AND next_run_at <= ? "
        "ORDER BY next_run_at LIMIT ?",
        (now, limit),
    )
    return [_schedule(row) for row in rows]


def advance(tx: Transaction, schedule: Schedule) -> None:
    """Store what a firing changed: the next run and the last run."""
    tx.execute(
        "UPDATE schedules SET next_run_at = ?, last_run_at = ? WHERE name = ?",
        (schedule.next_run_at, schedule.last_run_at, schedule.name),
    )


def next_due(tx: Transaction) -> float | None:
    row = tx.execute(
        "SELECT min(next_run_at) FROM schedules WHERE next_run_at IS NOT NULL"
    ).fetchone()
    return None if row[0] is None else float(row[0])


def _schedule(row: Sequence[Any]) -> Schedule:
    (name, queue, payload, cron, every, timezone, priority, max_attempts, paused,
     next_run_at, last_run_at, revision) = row  # fmt: skip
    return Schedule(
        name=name,
        queue=queue,
        payload=bytes(payload),
        cron=cron,
        every=every,
        timezone=timezone,
        priority=priority,
        max_attempts=max_attempts,
        paused=bool(paused),
        next_run_at=next_run_at,
        last_run_at=last_run_at,
        revision=revision,
    )
