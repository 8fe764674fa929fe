"""`BatchItem`: one task of an `enqueue_many` with fields of its own, such as the tasks it waits
for, so that one batch can carry a whole workflow."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class BatchItem:
    """A task of a batch. `after` names the tasks it waits for (it is `waiting` until each is
    completed): their ids, or `"#k"` for item k of the same batch, an earlier one. The other
    fields, when given, win over the ones the `enqueue_many` call gives every item."""

    payload: dict[str, Any]
    after: Sequence[str] | None = None
    queue: str | None = None
    priority: int | None = None
    delay: float | None = None
    max_attempts: int | None = None
    group: str | None = None
    expires_in: float | None = None

    def given(self) -> dict[str, Any]:
        """Its fields other than the payload that are set."""
        values = {field.name: getattr(self, field.name) for field in fields(self)}
        del values["payload"]
        return {name: value for name, value in values.items() if value is not None}
