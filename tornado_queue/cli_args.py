"""Command-line arguments shared by the worker runner and the client commands."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from .client.endpoint import DEFAULT_URL
from .validation import QUEUE_NAME


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """`--url` and `--token`, defaulting to `TQ_URL` and `TQ_TOKEN`."""
    parser.add_argument(
        "--url",
        default=os.environ.get("TQ_URL") or DEFAULT_URL,
        help=f"the server (env TQ_URL, default {DEFAULT_URL})",
    )
    parser.add_argument(
        "--token",
        default=os.environ.get("TQ_TOKEN") or None,
        help="sent as Authorization: Bearer TOKEN (env TQ_TOKEN)",
    )


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of `kind` within [low, high]."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not low <= value <= high:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be from {low:g} to {high:g}, got {text}")
        return value

    return parse


def queue_name(text: str) -> str:
    """An argparse type: a queue name the server accepts."""
    if not QUEUE_NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(f"queue names are 1-64 of A-Z a-z 0-9 _ . -, got {text!r}")
    return text
