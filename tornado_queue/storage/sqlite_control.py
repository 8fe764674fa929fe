"""Queue control for the SQLite store: ordered groups and the rate limit, as statements run in
the caller's transaction (see `sqlite.SCHEMA` for the `groups`, `deliveries` and `wakeups`
tables). Each statement is a primary-key or index lookup: nothing here scans a queue."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from tornado_queue.models import RateLimit, Task


class Transaction(Protocol):
    """What these functions need of the store's transaction."""

    now: float

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> sqlite3.Cursor: ...

    def became_ready(self, queue: str) -> None: ...


# -- ordered groups ---------------------------------------------------------------------------


def takes_turn(tx: Transaction, task: Task) -> bool:
    """A task of a group became ready: True when it is the group's turn now (it became the
    head, or it is the head already, back from a retry); False when it must wait (`blocked`)."""
    row = tx.execute(
        "SELECT head FROM groups WHERE queue = ? AND grp = ?", (task.queue, task.group)
    ).fetchone()
    if row is None:
        tx.execute("INSERT INTO groups VALUES (?, ?, ?)", (task.queue, task.group, task.id))
        return True
    return bool(row[0] == task.id)


def end_turn(tx: Transaction, task: Task) -> None:
    """The task left its group's head (completed, dead, dead-lettered, expired, deleted):
    the next waiting task of the group, oldest first, becomes the head and deliverable. A task
    that was waiting, not the head, changes nothing here (its row changes or goes)."""
    if task.group is None:
        return
    row = tx.execute(
        "SELECT head FROM groups WHERE queue = ? AND grp = ?", (task.queue, task.group)
    ).fetchone()
    if row is None or row[0] != task.id:
        return
    following = tx.execute(
        "SELECT id FROM tasks WHERE queue = ? AND grp = ? AND blocked = 1 ORDER BY seq LIMIT 1",
        (task.queue, task.group),
    ).fetchone()
    if following is None:
        tx.execute("DELETE FROM groups WHERE queue = ? AND grp = ?", (task.queue, task.group))
        return
    tx.execute("UPDATE tasks SET blocked = NULL WHERE id = ?", following)
    tx.execute(
        "UPDATE groups SET head = ? WHERE queue = ? AND grp = ?",
        (following[0], task.queue, task.group),
    )
    tx.became_ready(task.queue)


# -- the rate limit ---------------------------------------------------------------------------


def rate_allowance(tx: Transaction, queue: str, rate: RateLimit, wanted: int) -> int:
    """How many of `wanted` deliveries the queue's rate limit allows now (a sliding window).

    The j-th delivery from now is allowed when the delivery `rate.tasks` before it (number
    `last + j - tasks`, perhaps one of this call's own) is outside the window, or was never
    made (or not kept: a limit raised since). Delivery times only grow with their number, so
    the first refusal ends the count.
    When some are refused, the queue's wake-up is set to when the window next opens."""
    last = _last_delivery(tx, queue)
    first, final = last + 1 - rate.tasks, last + wanted - rate.tasks
    times = dict(
        tx.execute(
            "SELECT n, at FROM deliveries WHERE queue = ? AND n BETWEEN ? AND ?",
            (queue, first, final),
        ).fetchall()
    )
    opens = tx.now - rate.seconds
    for allowed in range(wanted):
        number = first + allowed
        # A later number than `last` is a delivery of this very call: made now.
        at = tx.now if number > last else times.get(number)
        if at is not None and at > opens:
            tx.execute(
                "INSERT INTO wakeups VALUES (?, ?) ON CONFLICT (queue) DO UPDATE SET at = ?",
                (queue, at + rate.seconds, at + rate.seconds),
            )
            return allowed
    return wanted


def note_deliveries(tx: Transaction, queue: str, rate: RateLimit, count: int) -> None:
    """Number `count` deliveries made now, keeping only the last `rate.tasks`."""
    if not count:
        return
    last = _last_delivery(tx, queue)
    for n in range(last + 1, last + count + 1):
        tx.execute("INSERT INTO deliveries VALUES (?, ?, ?)", (queue, n, tx.now))
    tx.execute(
        "DELETE FROM deliveries WHERE queue = ? AND n <= ?", (queue, last + count - rate.tasks)
    )


def forget_deliveries(tx: Transaction, queue: str) -> None:
    """The queue has no rate limit any more: its delivery log and wake-up go."""
    tx.execute("DELETE FROM deliveries WHERE queue = ?", (queue,))
    tx.execute("DELETE FROM wakeups WHERE queue = ?", (queue,))


def windows_opened(tx: Transaction) -> list[str]:
    """The queues whose rate window opened for a consumer it turned away (their wake-ups
    are used up)."""
    queues = [row[0] for row in tx.execute("SELECT queue FROM wakeups WHERE at <= ?", (tx.now,))]
    if queues:
        tx.execute("DELETE FROM wakeups WHERE at <= ?", (tx.now,))
    return queues


def _last_delivery(tx: Transaction, queue: str) -> int:
    row = tx.execute("SELECT max(n) FROM deliveries WHERE queue = ?", (queue,)).fetchone()
    return int(row[0] or 0)
