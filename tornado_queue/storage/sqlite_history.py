"""Task history for the SQLite store, kept in the task's own row.

`history` holds the task's last `HISTORY_LENGTH` changes after its enqueue (as
`Task.history` does: `models.history_of` tells the enqueue from `created_at`) as JSON text: an
array of `[at, event, lease_id, worker, error]`, trailing nulls left out. It is NULL while
there were none, so an enqueue writes nothing more. An entry is appended by the very UPDATE
that makes the change, through the SQL function `add_history` registered on the connection
(`APPEND` is the assignment to put in its SET clause): recording a change costs no statement
of its own, and it commits (or rolls back) with the change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from tornado_queue.models import HISTORY_LENGTH, Happened, HistoryEntry

APPEND = "history = add_history(history, ?, ?, ?, ?, ?)"
"""Appends the entry given as the next five parameters (a `HistoryEntry`, spread)."""

_DELIVERED = Happened.DELIVERED.value


def register(db: sqlite3.Connection) -> None:
    """Make `add_history` known to the connection (each connection needs it)."""
    db.create_function("add_history", 6, _add, deterministic=True)


def _add(  # noqa: PLR0917 - SQLite calls it with its arguments by position
    stored: str | None,
    at: float,
    event: str,
    lease_id: str | None,
    worker: str | None,
    error: str | None,
) -> str:
    entries = [] if stored is None else orjson.loads(stored)
    entries.append(_compact((at, event, lease_id, worker, error)))
    del entries[:-HISTORY_LENGTH]
    return orjson.dumps(entries).decode()


def encode(history: Sequence[HistoryEntry]) -> str:
    """The column's text for the changes of a task that has more than its enqueue at once."""
    return orjson.dumps([_compact(entry) for entry in history[-HISTORY_LENGTH:]]).decode()


def decode(text: str | None) -> tuple[HistoryEntry, ...] | None:
    return None if text is None else tuple(HistoryEntry(*entry) for entry in orjson.loads(text))


def holders(db: sqlite3.Connection) -> Iterator[tuple[str, str, float]]:
    """(worker, task id, delivered at) of every processing task delivered to a named worker:
    what the workers hold, read once when the store opens (through the `lease_expiry` index,
    which holds the processing tasks only)."""
    rows = db.execute(
        "SELECT id, history FROM tasks INDEXED BY lease_expiry "
        "WHERE status = 'processing' AND lease_expires_at IS NOT NULL"
    )
    for task_id, text in rows:
        history = decode(text)
        if history and history[-1].event == _DELIVERED and history[-1].worker is not None:
            yield history[-1].worker, task_id, history[-1].at


def _compact(entry: Sequence[Any]) -> list[Any]:
    """The entry as a list without its trailing Nones (most entries name no error)."""
    values = list(entry)
    while values[-1] is None:
        values.pop()
    return values
