"""What the chaos checker's verdicts share: reading the servers' times, and counting what was
held at once (see bench/chaos.py and bench/chaos_push.py)."""

from __future__ import annotations

from datetime import datetime

EXPIRY_TOLERANCE = 0.005
"""Seconds a redelivery may start before the previous lease's end and still count as after it:
times travel rounded to the microsecond, and two servers read their own clocks."""


def epoch(value: str) -> float:
    """A time as the server writes it, in epoch seconds."""
    return datetime.fromisoformat(value).timestamp()


def most_at_once(
    held: list[tuple[float, float, str]], cap: int, what: str
) -> tuple[int, list[str]]:
    """The most of `held` (start, end, lease id: each surely held in between) at once, and each
    that took them over `cap` (0: none), said as "3 {what} at <time>, lease L the last"."""
    steps: list[tuple[float, int, str]] = []
    for start, end, lease_id in held:
        if end > start:
            steps += [(start, 1, lease_id), (end, -1, lease_id)]
    steps.sort(key=lambda step: step[:2])  # at one moment, one ends before one starts
    holding = most = 0
    over: list[str] = []
    for at, step, lease_id in steps:
        holding += step
        most = max(most, holding)
        if step == 1 and cap and holding > cap:
            clock = datetime.fromtimestamp(at).isoformat(timespec="microseconds")
            over.append(f"{holding} {what} at {clock}, lease {lease_id} the last")
    return most, over
