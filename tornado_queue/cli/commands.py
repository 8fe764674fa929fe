"""The client commands: `python -m tornado_queue enqueue|get|stats|queues|retry|tail`.

Output is for people (tables, one sentence) unless `--json` is given: then it is exactly the
server's JSON, one document per line, for scripts. Exit codes: 0 done, 1 the server refused
or could not be reached (the reason on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from tornado_queue.arguments import bounded, queue_name
from tornado_queue.client import Client, ConnectionFailed, Task, TaskQueueError
from tornado_queue.client.arguments import add_server_arguments
from tornado_queue.config import OneLineParser
from tornado_queue.limits import MAX_ATTEMPTS, MAX_DELAY_SECONDS

STATES = ("pending", "processing", "completed", "failed", "scheduled")
EVENTS = ("enqueued", "completed", "failed", "lease_expired")
Command = Callable[[Client, argparse.Namespace], None]


def emit(document: Any) -> None:
    sys.stdout.write(orjson.dumps(document).decode() + "\n")
    sys.stdout.flush()


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [list(map(str, headers))] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    numeric = [all(isinstance(row[column], int) for row in rows) for column in range(len(headers))]
    lines = []
    for row in cells:
        padded = [
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


# --- the commands ----------------------------------------------------------------------------


def enqueue(client: Client, args: argparse.Namespace) -> None:
    payload = orjson.loads(sys.stdin.read() if args.payload == "-" else args.payload)
    task_id = client.enqueue(
        payload,
        queue=args.queue,
        priority=args.priority,
        delay=args.delay,
        max_attempts=args.max_attempts,
        idempotency_key=args.key,
    )
    if args.json:
        emit({"id": task_id})
    else:
        print(f"enqueued {task_id} on queue '{args.queue or 'default'}'")


def get(client: Client, args: argparse.Namespace) -> None:
    show_task(client.get(args.id), args.json)


def retry(client: Client, args: argparse.Namespace) -> None:
    task = client.retry(args.id)
    if args.json:
        emit(task.to_document())
    else:
        print(f"task {task.id} is {task.status} again, attempts reset")


def queue(client: Client, args: argparse.Namespace) -> None:
    """`queue show|pause|resume|retry NAME`."""
    if args.action == "retry":
        retried = client.retry_queue(args.name)
        if args.json:
            emit({"retried": retried})
        else:
            plural = "s" if retried != 1 else ""
            print(f"{retried} failed task{plural} of queue '{args.name}' back to pending")
        return
    if args.action == "pause":
        shown = client.pause(args.name)
    elif args.action == "resume":
        shown = client.resume(args.name)
    else:
        shown = client.queue(args.name)
    if args.json:
        emit(shown)
        return
    settings = shown.pop("settings")
    rows = [("queue", shown.pop("name")), *((state, shown[state]) for state in STATES)]
    for name, value in settings.items():
        rows.append((name, "-" if value is None else _json_text(value)))
    print(table(("field", "value"), rows))


def show_task(task: Task, as_json: bool) -> None:
    document = task.to_document()
    if as_json:
        emit(document)
        return
    print(table(("field", "value"), [(name, _cell(name, v)) for name, v in document.items()]))
    if task.error and "\n" in task.error:
        print("\nerror:\n  " + task.error.rstrip().replace("\n", "\n  "))


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return "-"
    if name in ("payload", "result"):
        return _json_text(value)
    if name == "error":
        return value.partition("\n")[0]  # the whole text follows the table
    return value


def stats(client: Client, args: argparse.Namespace) -> None:
    counts = client.stats(args.queue)
    if args.json:
        emit(counts)
    else:
        print(table(("state", "tasks"), [(state, counts.get(state, 0)) for state in STATES]))


def queues(client: Client, args: argparse.Namespace) -> None:
    listing = client.queues()
    if args.json:
        emit(listing)
    elif not listing:
        print("no queues yet: a queue appears with its first task")
    else:
        rows = [(entry["name"], *(entry.get(state, 0) for state in STATES)) for entry in listing]
        print(table(("queue", *STATES), rows))


def tail(client: Client, args: argparse.Namespace) -> None:
    """Follow a queue (or all): every `--interval` seconds read its counts and event totals,
    and print a line when either changed, until Ctrl-C. Each line has the time, the counts
    by state, and what happened since the line before (+enqueued, +completed, +failed,
    +lease_expired) with the completion rate."""
    last: tuple[dict[str, int], dict[str, int]] | None = None
    last_time = time.monotonic()
    unreachable = False
    while True:
        try:
            reading = (client.stats(args.queue), client.totals(args.queue))
        except ConnectionFailed as exc:
            if not unreachable:
                print(f"{_now()} server unreachable: {exc.detail}", file=sys.stderr, flush=True)
            unreachable = True
        else:
            unreachable = False
            now = time.monotonic()
            if reading != last:
                _tail_line(reading, last, now - last_time, args.json)
                last, last_time = reading, now
        time.sleep(args.interval)


def _tail_line(
    reading: tuple[dict[str, int], dict[str, int]],
    last: tuple[dict[str, int], dict[str, int]] | None,
    elapsed: float,
    as_json: bool,
) -> None:
    counts, totals = reading
    previous = last[1] if last else totals
    change = {event: totals.get(event, 0) - previous.get(event, 0) for event in EVENTS}
    if as_json:
        emit({"time": _now(), "stats": counts, "totals": totals, "change": change})
        return
    line = " ".join(f"{state}={counts.get(state, 0)}" for state in STATES)
    if last is not None:
        happened = ", ".join(f"+{n} {event}" for event, n in change.items() if n)
        rate = change["completed"] / elapsed if elapsed > 0 else 0.0
        line += f"  | {happened or 'no new events'}, {rate:.1f} completed/s"
    print(f"{_now()} {line}", flush=True)


def _now() -> str:
    return datetime.now().astimezone().strftime("%H:%M:%S")


# --- arguments ---------------------------------------------------------------------------


COMMANDS: dict[str, Command] = {
    "enqueue": enqueue,
    "get": get,
    "stats": stats,
    "queues": queues,
    "retry": retry,
    "queue": queue,
    "tail": tail,
}


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    add_server_arguments(common)
    common.add_argument("--json", action="store_true", help="print the server's JSON")
    parser = OneLineParser(prog="tornado-queue")
    commands = parser.add_subparsers(dest="command", required=True)

    add = commands.add_parser("enqueue", parents=[common], help="put a task on a queue")
    add.add_argument("payload", help="the payload, a JSON object ('-' reads it from stdin)")
    add.add_argument("--queue", type=queue_name)
    add.add_argument("--priority", type=int, help="higher first (default 0)")
    add.add_argument("--delay", type=bounded(float, 0, MAX_DELAY_SECONDS), help="seconds to wait")
    add.add_argument("--max-attempts", type=bounded(int, 1, MAX_ATTEMPTS))
    add.add_argument("--key", help="idempotency key: the same key gives the same task")

    for name, summary in (("get", "show one task"), ("retry", "put a failed task back")):
        command = commands.add_parser(name, parents=[common], help=summary)
        command.add_argument("id", help="the task id")

    for name, summary in (("stats", "tasks per state"), ("tail", "follow the counts live")):
        command = commands.add_parser(name, parents=[common], help=summary)
        command.add_argument("--queue", type=queue_name, help="one queue (default: all summed)")
    commands.choices["tail"].add_argument(
        "--interval", type=bounded(float, 0.1, 3600), default=1.0, help="seconds (default 1)"
    )
    commands.add_parser("queues", parents=[common], help="every queue with its counts")
    actions = commands.add_parser("queue", help="act on one queue").add_subparsers(
        dest="action", required=True
    )
    for name, summary in (
        ("show", "a queue's counts and settings"),
        ("pause", "stop delivering a queue's tasks (new ones are still taken)"),
        ("resume", "deliver a queue's tasks again"),
        ("retry", "put every failed task of a queue back to pending"),
    ):
        action = actions.add_parser(name, parents=[common], help=summary)
        action.add_argument("name", type=queue_name, help="the queue")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "enqueue" and args.payload != "-":
        _check_payload(parser, args.payload)
    try:
        with Client(args.url, args.token) as client:
            COMMANDS[args.command](client, args)
    except ConnectionFailed as exc:
        print(f"error: cannot reach {args.url}: {exc.detail}", file=sys.stderr)
        return 1
    except TaskQueueError as exc:
        print(f"error: {exc.detail} (HTTP {exc.status})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # how `tail` ends
        return 0
    return 0


def _check_payload(parser: argparse.ArgumentParser, text: str) -> None:
    try:
        payload = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        parser.error(f"payload is not JSON: {exc}")
    if not isinstance(payload, dict):
        parser.error('payload must be a JSON object, like \'{"to": "a@example.com"}\'')
