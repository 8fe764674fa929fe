"""Task dependencies for the SQLite store, as statements run in the caller's transaction.

A task enqueued with `after` keeps its parents' ids (`parents`, JSON text), how many of them
are not completed yet (`waiting_on`) and its delay (`hold`); each parent keeps the ids of its
dependents (`dependents`, JSON text). Every statement is a primary-key lookup: a completion,
failure or deletion touches its own dependents only."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from tornado_queue.models import NewTask, Task
from tornado_queue.storage import base
from tornado_queue.storage.sqlite_control import Transaction


def check_parents(
    tx: Transaction, new_tasks: Sequence[NewTask], stands_for: list[str], creates: list[bool]
) -> list[tuple[str, ...] | None]:
    """`base.check_parents` against the rows of the transaction."""

    def lookup(parent_id: str) -> tuple[bool, int] | None:
        row = tx.execute(
            "SELECT status, json_array_length(coalesce(dependents, '[]')) FROM tasks WHERE id = ?",
            (parent_id,),
        ).fetchone()
        return None if row is None else (row[0] == "failed", int(row[1]))

    return base.check_parents(new_tasks, stands_for, creates, lookup)


def open_parents(tx: Transaction, parents: Sequence[str]) -> int:
    """How many of the tasks named are not completed (each exists: `check_parents` said so,
    or it was made earlier in the same batch)."""
    marks = ", ".join("?" * len(parents))
    row = tx.execute(
        f"SELECT count(*) FROM tasks WHERE id IN ({marks}) AND status != 'completed'",
        tuple(parents),
    ).fetchone()
    return int(row[0])


def link(tx: Transaction, child_id: str, parents: Sequence[str]) -> None:
    """Note the new task among each parent's dependents."""
    for parent_id in parents:
        tx.execute(
            "UPDATE tasks SET dependents = json_insert(coalesce(dependents, '[]'), '$[#]', ?) "
            "WHERE id = ?",
            (child_id, parent_id),
        )


def released(tx: Transaction, parent: Task) -> list[tuple[str, float]]:
    """After the parent completed: its waiting dependents each have one parent less to wait
    for; those left with none, with their delay (`hold`)."""
    assert parent.extras is not None and parent.extras.dependents
    ready = []
    for child_id in parent.extras.dependents:
        row = tx.execute(
            "UPDATE tasks SET waiting_on = waiting_on - 1 WHERE id = ? AND status = 'waiting' "
            "RETURNING waiting_on, hold",
            (child_id,),
        ).fetchone()
        if row is not None and row[0] <= 0:
            ready.append((child_id, float(row[1] or 0.0)))
    return ready


def encode(ids: Sequence[str] | None) -> str | None:
    return None if not ids else orjson.dumps(list(ids)).decode()


def decode(text: str | None) -> list[str] | None:
    return None if text is None else orjson.loads(text)
