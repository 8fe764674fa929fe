"""Random identifiers: task ids (UUID version 4 text), lease ids and request ids."""

from __future__ import annotations

import os

_BATCH = 256
"""Ids made per read of OS randomness: one `os.urandom` call costs as much as formatting
dozens of ids, and one is made per task and per lease."""

# A version 4 UUID has 122 random bits: the version digit (4) and the variant's two top bits
# (10) are fixed, in its third and fourth groups. Set on a whole batch at once: two big-int
# operations per group.
_THIRD_KEEP = int.from_bytes(b"\x0f\xff" * _BATCH)
_THIRD_SET = int.from_bytes(b"\x40\x00" * _BATCH)
_FOURTH_KEEP = int.from_bytes(b"\x3f\xff" * _BATCH)
_FOURTH_SET = int.from_bytes(b"\x80\x00" * _BATCH)

# Ready-made ids, taken with `list.pop` (atomic under the GIL, so threads never share one);
# a thread finding the list empty makes a batch of its own from a fresh read.
_task_ids: list[str] = []
_lease_ids: list[str] = []
_take_task_id = _task_ids.pop
_take_lease_id = _lease_ids.pop
# A forked child must not hand out the ids its parent holds (and may hand out too).
os.register_at_fork(after_in_child=_task_ids.clear)
os.register_at_fork(after_in_child=_lease_ids.clear)


def task_id() -> str:
    """A random UUID4 in its canonical text form, as `str(uuid.uuid4())` gives, from the same
    OS randomness (122 random bits): it is made for every task, so it is made in batches."""
    try:
        return _take_task_id()
    except IndexError:
        return _more_task_ids()


def lease_id() -> str:
    """96 random bits: unguessable, so only the consumer given a lease can act under it."""
    try:
        return _take_lease_id()
    except IndexError:
        return _more_lease_ids()


def request_id() -> str:
    """128 random bits as hex, for requests that came without an X-Request-ID."""
    return os.urandom(16).hex()


def _more_task_ids() -> str:
    # Each group of the canonical text (8-4-4-4-12 hex digits) is cut from its own part of one
    # read and split apart by C code (`bytes.hex` with a separator): a third of the cost of
    # slicing each id in Python.
    random = os.urandom(16 * _BATCH)
    first = random[: 4 * _BATCH].hex(" ", 4).split()
    second = random[4 * _BATCH : 6 * _BATCH].hex(" ", 2).split()
    third = int.from_bytes(random[6 * _BATCH : 8 * _BATCH]) & _THIRD_KEEP | _THIRD_SET
    fourth = int.from_bytes(random[8 * _BATCH : 10 * _BATCH]) & _FOURTH_KEEP | _FOURTH_SET
    last = random[10 * _BATCH :].hex(" ", 6).split()
    groups = zip(
        first,
        second,
        third.to_bytes(2 * _BATCH).hex(" ", 2).split(),
        fourth.to_bytes(2 * _BATCH).hex(" ", 2).split(),
        last,
        strict=True,
    )
    made = list(map("-".join, groups))
    taken = made.pop()
    _task_ids.extend(made)
    return taken


def _more_lease_ids() -> str:
    made = os.urandom(12 * _BATCH).hex(" ", 12).split()
    taken = made.pop()
    _lease_ids.extend(made)
    return taken
