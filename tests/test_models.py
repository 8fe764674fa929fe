"""The task model: wire values of the states and snapshots that copy every slot."""

from __future__ import annotations

import dataclasses

import pytest

from tornado_queue.models import (
    HISTORY_LENGTH,
    Extras,
    HistoryEntry,
    NewTask,
    Task,
    TaskStatus,
    add_history,
    history_of,
    holder,
)


def test_task_status_values_are_the_wire_strings():
    assert {status.value for status in TaskStatus} == {
        "pending",
        "scheduled",
        "waiting",
        "processing",
        "completed",
        "failed",
    }
    assert TaskStatus("processing") is TaskStatus.PROCESSING
    assert TaskStatus.COMPLETED == "completed"
    assert f"{TaskStatus.FAILED}" == "failed"


def test_a_new_task_starts_pending_in_the_default_queue():
    task = Task("id-1", b'{"a":1}', 1_790_000_000.0)

    assert task.status is TaskStatus.PENDING
    assert task.queue == "default"
    assert task.priority == 0
    assert task.attempts == 0
    assert task.max_attempts == 3
    assert task.created_at == task.available_at == 1_790_000_000.0
    for name in ("lease_id", "lease_expires_at", "started_at", "finished_at", "result", "error"):
        assert getattr(task, name) is None, name


def test_snapshot_copies_every_slot():
    # Given a task whose every slot holds a distinct, non-default value
    task = Task("id-1", b'{"a":1}', 100.0)
    values = {
        "id": "id-2",
        "queue": "emails",
        "payload": b'{"b":2}',
        "status": TaskStatus.PROCESSING,
        "priority": 5,
        "attempts": 2,
        "max_attempts": 7,
        "created_at": 101.0,
        "available_at": 102.0,
        "lease_id": "lease-1",
        "lease_expires_at": 103.0,
        "started_at": 104.0,
        "finished_at": 105.0,
        "result": b'{"ok":true}',
        "error": "boom",
        "seq": 9,
        "lease_deadline": 106.0,
        "due": 107.0,
        "forget_at": 108.0,
        "closed_lease": "lease-0",
        "group": "customer-7",
        "expires_at": 109.0,
        "history": (HistoryEntry(101.0, "delivered", "lease-0", "w1"),),
        "backoff": 2.5,
        "expiry": 110.0,
        "extras": Extras(
            after=("parent-1",),
            dependents=["child-1"],
            waiting_on=1,
            hold=3.0,
            progress=b'{"done":3}',
            schedule="nightly",
            fire_time=99.0,
            dead_lettered_from="emails-in",
        ),
    }
    assert set(values) == set(Task.__slots__)
    for name, value in values.items():
        setattr(task, name, value)

    # When it is snapshotted
    copy = task.snapshot()

    # Then the copy is a distinct object with the same value in every slot
    assert copy is not task
    assert type(copy) is Task
    assert {name: getattr(copy, name) for name in Task.__slots__} == values


def test_a_snapshot_is_independent_of_the_original():
    task = Task("id-1", b"{}", 100.0)
    copy = task.snapshot()

    task.status = TaskStatus.COMPLETED
    task.attempts = 3
    copy.error = "only on the copy"

    assert copy.status is TaskStatus.PENDING
    assert copy.attempts == 0
    assert task.error is None


def test_a_snapshot_has_its_own_extras():
    task = Task("id-1", b"{}", 100.0)
    task.extras = Extras(dependents=["child-1"])
    copy = task.snapshot()

    task.extras.dependents.append("child-2")
    task.extras.waiting_on = 4

    assert copy.extras == Extras(dependents=["child-1"])


def test_rare_fields_live_in_extras_made_on_first_write():
    task = Task("id-1", b"{}", 100.0)
    task.progress = None
    assert task.extras is None and task.schedule is None

    task.progress = b"[1]"
    task.schedule = "nightly"

    assert task.extras == Extras(progress=b"[1]", schedule="nightly")
    assert (task.progress, task.fire_time) == (b"[1]", None)


def test_a_task_has_no_attribute_dict():
    task = Task("id-1", b"{}", 100.0)

    with pytest.raises(AttributeError):
        task.unexpected = 1  # type: ignore[attr-defined]


def test_repr_names_the_id_and_status():
    assert repr(Task("abc", b"{}", 0.0)) == "Task(id='abc', status='pending')"


def test_a_new_task_holds_only_its_fields():
    new = NewTask(payload=b"{}")

    with pytest.raises(AttributeError):
        new.unexpected = 1  # type: ignore[attr-defined]
    assert dataclasses.replace(new, queue="emails") == NewTask(payload=b"{}", queue="emails")


def test_history_begins_with_the_enqueue_told_from_created_at():
    task = Task("id-1", b"{}", 100.0)
    assert history_of(task) == [HistoryEntry(100.0, "enqueued")]

    add_history(task, HistoryEntry(101.0, "delivered", "lease-1", "w1"))
    assert [entry.event for entry in history_of(task)] == ["enqueued", "delivered"]
    assert holder(task) == "w1"


def test_history_keeps_the_last_entries_and_snapshots_keep_theirs():
    task = Task("id-1", b"{}", 100.0)
    for n in range(HISTORY_LENGTH + 5):
        add_history(task, HistoryEntry(101.0 + n, "lease_expired"))
        if n == 0:
            copy = task.snapshot()

    shown = history_of(task)
    assert len(shown) == HISTORY_LENGTH
    assert shown[0].at == 101.0 + 5 and shown[-1].at == 101.0 + HISTORY_LENGTH + 4
    assert [entry.event for entry in history_of(copy)] == ["enqueued", "lease_expired"]
