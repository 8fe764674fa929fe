"""Argument types for every command line (the server's flags, the worker runner, the client
commands): each parses one value or raises `argparse.ArgumentTypeError` with a sentence saying
what was expected."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from tornado_queue.validation import QUEUE_NAME, number_text

QUEUE_NAME_RULE = "queue names are 1-64 of A-Z a-z 0-9 _ . -"


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """A number of `kind` within [low, high]."""
    noun = "an integer" if kind is int else "a number"
    bounds = f"{number_text(low)} to {number_text(high)}"

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not low <= value <= high:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be from {bounds}, got {text}")
        return value

    parse.bounds = bounds  # type: ignore[attr-defined]  # shown by --help
    return parse


def queue_name(text: str) -> str:
    """A queue name the server accepts."""
    if not QUEUE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{QUEUE_NAME_RULE}, got {text!r}")
    return text


def queue_list(text: str) -> tuple[str, ...]:
    """Comma-separated queue names."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    for name in names:
        queue_name(name)
    return names


def choice(options: Sequence[str]) -> Callable[[str], str]:
    """One of `options`."""

    def parse(text: str) -> str:
        if text not in options:
            raise argparse.ArgumentTypeError(f"must be one of {', '.join(options)}, got {text!r}")
        return text

    return parse
