"""`tornado-queue schedule set|show|list|delete`: a server's cron and interval schedules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import orjson

from tornado_queue.arguments import bounded, queue_name
from tornado_queue.cli.output import emit, table
from tornado_queue.client import Client
from tornado_queue.limits import (
    MAX_ATTEMPTS,
    MAX_EVERY_SECONDS,
    MAX_PRIORITY,
    MIN_EVERY_SECONDS,
)

LISTED = ("name", "queue", "runs", "timezone", "next_run_at", "last_run_at")


def add_schedule_actions(
    schedule_parser: argparse.ArgumentParser, common: argparse.ArgumentParser
) -> None:
    actions = schedule_parser.add_subparsers(dest="action", required=True)
    put = actions.add_parser("set", parents=[common], help="create or replace a schedule")
    put.add_argument("name", type=queue_name, help="the schedule (a queue name's rules)")
    put.add_argument("payload", type=payload_object, help="each task's payload, a JSON object")
    put.add_argument("--queue", type=queue_name, required=True, help="where its tasks go")
    when = put.add_mutually_exclusive_group(required=True)
    when.add_argument("--cron", help="a cron expression, e.g. '*/5 * * * *'")
    when.add_argument(
        "--every",
        type=bounded(float, MIN_EVERY_SECONDS, MAX_EVERY_SECONDS),
        metavar="SECONDS",
        help="seconds between runs, the first one interval from now",
    )
    put.add_argument("--timezone", help="the IANA timezone the cron is read in (default UTC)")
    put.add_argument("--priority", type=bounded(int, -MAX_PRIORITY, MAX_PRIORITY))
    put.add_argument("--max-attempts", type=bounded(int, 1, MAX_ATTEMPTS))
    put.add_argument("--paused", action="store_true", help="kept, but not fired until set again")
    for name, summary in (("show", "one schedule"), ("delete", "remove a schedule")):
        action = actions.add_parser(name, parents=[common], help=summary)
        action.add_argument("name", type=queue_name, help="the schedule")
    actions.add_parser("list", parents=[common], help="every schedule")


def payload_object(text: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise argparse.ArgumentTypeError('must be a JSON object, like \'{"report": "daily"}\'')
    return payload


def schedule(client: Client, args: argparse.Namespace) -> None:
    """`schedule set|show|list|delete`."""
    ACTIONS[args.action](client, args)


def schedule_set(client: Client, args: argparse.Namespace) -> None:
    stored = client.put_schedule(
        args.name,
        queue=args.queue,
        payload=args.payload,
        cron=args.cron,
        every=args.every,
        timezone=args.timezone,
        priority=args.priority,
        max_attempts=args.max_attempts,
        paused=args.paused or None,
    )
    show(stored, args.json)


def schedule_show(client: Client, args: argparse.Namespace) -> None:
    show(client.get_schedule(args.name), args.json)


def schedule_list(client: Client, args: argparse.Namespace) -> None:
    listing = client.schedules()
    if args.json:
        emit(listing)
    elif not listing:
        print("no schedules yet: `tornado-queue schedule set` makes one")
    else:
        rows = [[_cell(name, _listed(entry, name)) for name in LISTED] for entry in listing]
        print(table(LISTED, rows))


def schedule_delete(client: Client, args: argparse.Namespace) -> None:
    client.delete_schedule(args.name)
    if args.json:
        emit({"deleted": args.name})
    else:
        print(f"deleted schedule '{args.name}' (the tasks it enqueued stay)")


def show(stored: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(stored)
        return
    print(table(("field", "value"), [(name, _cell(name, value)) for name, value in stored.items()]))


def _listed(entry: dict[str, Any], name: str) -> Any:
    if name == "runs":
        runs = entry["cron"] or f"every {_number(entry['every'])} s"
        return runs + (" (paused)" if entry["paused"] else "")
    return entry[name]


def _cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "payload":
        return orjson.dumps(value).decode()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return _number(value)
    return str(value)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


ACTIONS: dict[str, Callable[[Client, argparse.Namespace], None]] = {
    "set": schedule_set,
    "show": schedule_show,
    "list": schedule_list,
    "delete": schedule_delete,
}
