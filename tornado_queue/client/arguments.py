"""The arguments every client-side command line takes (the worker runner, the client
commands): which server, and which token."""

from __future__ import annotations

import argparse
import os

from tornado_queue.client.endpoint import DEFAULT_URL


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
