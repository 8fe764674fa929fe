"""The client commands: `python -m tornado_queue
enqueue|get|stats|queues|workers|retry|queue|schedule|tail`.

Output is for people (tables, one sentence) unless `--json` is given: then it is exactly the
server's JSON, one document per line, for scripts. Exit codes: 0 done, 1 the server refused
or could not be reached, or a purge was declined (the reason on stderr), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson

from tornado_queue.arguments import bounded, choice, queue_name
from tornado_queue.cli.output import emit, table
from tornado_queue.cli.schedules import add_schedule_actions, schedule
from tornado_queue.client import Client, ConnectionFailed, Task, TaskQueueError
from tornado_queue.client.arguments import add_server_arguments
from tornado_queue.config import OneLineParser
from tornado_queue.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MAX_DELAY_SECONDS,
    MAX_EXPIRY_SECONDS,
    MAX_GROUP_CHARS,
    MAX_LEASE_SECONDS,
    MAX_PARENTS,
    MAX_PROCESSING,
    MAX_RATE_SECONDS,
    MAX_RATE_TASKS,
    MAX_WAIT_SECONDS,
    MIN_EXPIRY_SECONDS,
    MIN_LEASE_SECONDS,
    WORKER_SEEN_SECONDS,
)
from tornado_queue.models import PURGEABLE
from tornado_queue.validation import BATCH_REFERENCE, GROUP, PARENT_ID

STATES = ("pending", "processing", "completed", "failed", "scheduled", "waiting")
EVENTS = ("enqueued", "completed", "failed", "lease_expired", "dead_lettered", "expired")
Command = Callable[[Client, argparse.Namespace], None]


class Declined(Exception):
    """The person at the terminal answered no: nothing was done."""


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
        group=args.group,
        expires_in=args.expires_in,
        after=args.after,
    )
    if args.json:
        emit({"id": task_id})
    else:
        print(f"enqueued {task_id} on queue '{args.queue or 'default'}'")


def get(client: Client, args: argparse.Namespace) -> None:
    # With --wait: the task once finished, or as it is when the wait ends.
    show_task(client.get(args.id, wait=args.wait), args.json)


def retry(client: Client, args: argparse.Namespace) -> None:
    task = client.retry(args.id)
    if args.json:
        emit(task.to_document())
    else:
        print(f"task {task.id} is {task.status} again, attempts reset")


def queue(client: Client, args: argparse.Namespace) -> None:
    """`queue show|pause|resume|retry|set|purge NAME`."""
    QUEUE_ACTIONS[args.action](client, args)


def queue_show(client: Client, args: argparse.Namespace) -> None:
    show_queue(client.queue(args.name), args.json)


def queue_pause(client: Client, args: argparse.Namespace) -> None:
    show_queue(client.pause(args.name), args.json)


def queue_resume(client: Client, args: argparse.Namespace) -> None:
    show_queue(client.resume(args.name), args.json)


def queue_set(client: Client, args: argparse.Namespace) -> None:
    show_queue(client.configure_queue(args.name, **settings_changes(args)), args.json)


def settings_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The settings `queue set` was given, with None for each one to `--clear`."""
    changes = {name: getattr(args, name) for name in SETTABLE if getattr(args, name) is not None}
    return changes | dict.fromkeys(args.clear)


def queue_retry(client: Client, args: argparse.Namespace) -> None:
    retried = client.retry_queue(args.name)
    if args.json:
        emit({"retried": retried})
    else:
        print(f"{_tasks(retried, 'failed')} of queue '{args.name}' back to pending")


def queue_purge(client: Client, args: argparse.Namespace) -> None:
    if not args.yes and sys.stdin.isatty():
        _confirm_purge(client.stats(args.name)[args.status], args)
    deleted = client.purge_queue(args.name, args.status)
    if args.json:
        emit({"deleted": deleted})
    else:
        print(f"deleted {_tasks(deleted, args.status)} of queue '{args.name}'")


def _confirm_purge(found: int, args: argparse.Namespace) -> None:
    if found == 0:
        return  # nothing to lose: no question to ask
    # The question goes to stderr, so that stdout holds only the outcome (or the JSON).
    question = f"Delete {_tasks(found, args.status)} of queue '{args.name}'? [y/N] "
    print(question, end="", file=sys.stderr, flush=True)
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        raise Declined("not confirmed: nothing deleted")


def _tasks(count: int, status: str) -> str:
    return f"{count} {status} task{'' if count == 1 else 's'}"


def show_queue(shown: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(shown)
        return
    settings = shown.pop("settings")
    rows = [("queue", shown.pop("name")), *((state, shown[state]) for state in STATES)]
    rows.extend((name, _setting_cell(name, value)) for name, value in settings.items())
    print(table(("field", "value"), rows))


def _setting_cell(name: str, value: Any) -> str:
    if value is None:
        return "-"
    if name == "rate_limit":  # as --rate-limit takes it: TASKS/SECONDS
        return f"{value['tasks']}/{_number_text(value['seconds'])}"
    if name == "push":  # the servers deliver its tasks there
        return f"{value['url']} (timeout {_number_text(value['timeout_seconds'])} s)"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_text(value)
    return _json_text(value)


def _number_text(value: float) -> str:
    """1.0 as 1, 0.5 as 0.5: as people write it."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def show_task(task: Task, as_json: bool) -> None:
    document = task.to_document()
    if as_json:
        emit(document)
        return
    history = document.pop("history", None)
    print(table(("field", "value"), [(name, _cell(name, v)) for name, v in document.items()]))
    if task.error and "\n" in task.error:
        print("\nerror:\n  " + task.error.rstrip().replace("\n", "\n  "))
    if history:
        print("\nhistory:")
        shown = table(HISTORY_COLUMNS, [_history_row(entry) for entry in history])
        print("  " + shown.replace("\n", "\n  "))


HISTORY_COLUMNS = ("at", "event", "worker", "lease_id", "error")


def _history_row(entry: dict[str, Any]) -> tuple[str, ...]:
    error = entry.get("error")
    return (
        entry["at"],
        entry["event"],
        entry.get("worker") or "-",
        entry.get("lease_id") or "-",
        error.partition("\n")[0] if error else "-",
    )


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return "-"
    if name in ("payload", "result", "progress"):
        return _json_text(value)
    if name in ("after", "dependents"):
        return ", ".join(value) or "-"
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


def workers(client: Client, args: argparse.Namespace) -> None:
    listing = client.workers()
    if args.json:
        emit([worker.to_document() for worker in listing])
    elif not listing:
        print(
            f"no workers seen in the last {WORKER_SEEN_SECONDS} s: a worker shows here once it "
            "calls with a worker id (the worker runner always sends one)"
        )
    else:
        rows = [
            (
                worker.id,
                worker.to_document()["last_seen"],
                len(worker.tasks),
                worker.completed,
                worker.failed,
                ", ".join(worker.tasks) or "-",
            )
            for worker in listing
        ]
        print(table(("worker", "last_seen", "holding", "completed", "failed", "tasks"), rows))


def tail(client: Client, args: argparse.Namespace) -> None:
    """Follow a queue (or all): every `--interval` seconds read its counts and event totals,
    and print a line when either changed, until Ctrl-C. Each line has the time, the counts
    by state, and what happened since the line before (+enqueued, +completed, +failed,
    +lease_expired, +dead_lettered, +expired) with the completion rate."""
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


def group_text(text: str) -> str:
    """A task's group as the server accepts it."""
    if not GROUP.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"must be 1 to {MAX_GROUP_CHARS} characters without control characters, "
            f"got {text[:40]!r}"
        )
    return text


def task_id(text: str) -> str:
    """A task id as the server writes them, for `--after`."""
    if not PARENT_ID.fullmatch(text) or BATCH_REFERENCE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"must be a task id, got {text[:80]!r}")
    return text


RATE_TASKS = bounded(int, 1, MAX_RATE_TASKS)
RATE_SECONDS = bounded(float, 0, MAX_RATE_SECONDS)


def rate_limit(text: str) -> dict[str, Any]:
    """`TASKS/SECONDS`, e.g. `10/1`: at most 10 deliveries in any second."""
    tasks, slash, seconds = text.partition("/")
    if not slash:
        raise argparse.ArgumentTypeError(
            f"expected TASKS/SECONDS, like 10/1 for 10 tasks a second, got {text!r}"
        )
    window = _rate_part(RATE_SECONDS, seconds, "SECONDS")
    if window <= 0:
        raise argparse.ArgumentTypeError(f"SECONDS: must be more than 0, got {seconds}")
    return {"tasks": _rate_part(RATE_TASKS, tasks, "TASKS"), "seconds": window}


def _rate_part(parse: Callable[[str], Any], text: str, part: str) -> Any:
    try:
        return parse(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{part}: {exc}") from None


SETTING_OPTIONS: tuple[tuple[str, Callable[[str], Any], str, str], ...] = (
    (
        "max_processing",
        bounded(int, 1, MAX_PROCESSING),
        "N",
        "at most N of its tasks processing at once",
    ),
    ("rate_limit", rate_limit, "N/S", "at most N deliveries in any S seconds (10/1: 10 a second)"),
    (
        "lease_seconds",
        bounded(float, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
        "S",
        "the lease of a dequeue that names none",
    ),
    (
        "max_attempts",
        bounded(int, 1, MAX_ATTEMPTS),
        "N",
        "the attempts of a task enqueued without --max-attempts",
    ),
    (
        "retry_backoff",
        bounded(float, 0, MAX_BACKOFF_SECONDS),
        "S",
        "the backoff base of tasks enqueued from now on, doubled per attempt",
    ),
    (
        "dead_letter_queue",
        queue_name,
        "Q",
        "where a task that would fail goes instead, as pending",
    ),
    (
        "ttl_seconds",
        bounded(float, MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS),
        "S",
        "the --expires-in of tasks enqueued from now on without one",
    ),
)
"""`queue set`'s options: the setting, how its value is parsed, its metavar and help."""
SETTABLE = tuple(name for name, *_ in SETTING_OPTIONS)
PURGE_STATES = tuple(status.value for status in PURGEABLE)


def setting_name(text: str) -> str:
    """A setting `queue set` can clear, as `queue show` names it (or with `-` for `_`)."""
    return choice(SETTABLE)(text.replace("-", "_"))


def purge_status(text: str) -> str:
    """A state `queue purge` deletes in; processing is refused with the reason."""
    if text == "processing":
        raise argparse.ArgumentTypeError(
            "processing tasks are never purged: each is held by a consumer"
        )
    return choice(PURGE_STATES)(text)


def _flag(setting: str) -> str:
    return "--" + setting.replace("_", "-")


QUEUE_ACTIONS: dict[str, Command] = {
    "show": queue_show,
    "pause": queue_pause,
    "resume": queue_resume,
    "retry": queue_retry,
    "set": queue_set,
    "purge": queue_purge,
}

COMMANDS: dict[str, Command] = {
    "enqueue": enqueue,
    "get": get,
    "stats": stats,
    "queues": queues,
    "workers": workers,
    "retry": retry,
    "queue": queue,
    "tail": tail,
    "schedule": schedule,
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
    add.add_argument(
        "--group", type=group_text, help="one task of a group at a time, in enqueue order"
    )
    add.add_argument(
        "--expires-in",
        type=bounded(float, MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS),
        help="seconds after which it is never delivered (default: the queue's ttl_seconds)",
    )
    add.add_argument(
        "--after",
        action="append",
        type=task_id,
        metavar="ID",
        help=f"wait until this task is completed (repeat for up to {MAX_PARENTS} tasks)",
    )

    for name, summary in (("get", "show one task"), ("retry", "put a failed task back")):
        command = commands.add_parser(name, parents=[common], help=summary)
        command.add_argument("id", help="the task id")
    commands.choices["get"].add_argument(
        "--wait",
        type=bounded(float, 0, MAX_WAIT_SECONDS),
        help=f"seconds (up to {MAX_WAIT_SECONDS}) to wait for the task to be completed or failed",
    )

    for name, summary in (("stats", "tasks per state"), ("tail", "follow the counts live")):
        command = commands.add_parser(name, parents=[common], help=summary)
        command.add_argument("--queue", type=queue_name, help="one queue (default: all summed)")
    commands.choices["tail"].add_argument(
        "--interval", type=bounded(float, 0.1, 3600), default=1.0, help="seconds (default 1)"
    )
    commands.add_parser("queues", parents=[common], help="every queue with its counts")
    commands.add_parser(
        "workers", parents=[common], help="the workers seen lately, with the tasks they hold"
    )
    add_queue_actions(commands.add_parser("queue", help="act on one queue"), common)
    add_schedule_actions(
        commands.add_parser("schedule", help="cron and interval schedules"), common
    )
    return parser


def add_queue_actions(
    queue_parser: argparse.ArgumentParser, common: argparse.ArgumentParser
) -> None:
    actions = queue_parser.add_subparsers(dest="action", required=True)
    for name, summary in (
        ("show", "a queue's counts and settings"),
        ("pause", "stop delivering a queue's tasks (new ones are still taken)"),
        ("resume", "deliver a queue's tasks again"),
        ("retry", "put every failed task of a queue back to pending"),
        ("set", "change a queue's settings (the others stay as they are)"),
        ("purge", "delete every task of a queue in one state"),
    ):
        action = actions.add_parser(name, parents=[common], help=summary)
        action.add_argument("name", type=queue_name, help="the queue")
    add_setting_options(actions.choices["set"])
    purge = actions.choices["purge"]
    purge.add_argument("--status", type=purge_status, required=True, help="|".join(PURGE_STATES))
    purge.add_argument("--yes", "-y", action="store_true", help="do not ask on a terminal")


def add_setting_options(parser: argparse.ArgumentParser) -> None:
    for setting, parse, metavar, summary in SETTING_OPTIONS:
        bounds = getattr(parse, "bounds", None)  # set by arguments.bounded
        shown = f"{summary} ({bounds})" if bounds else summary
        parser.add_argument(_flag(setting), type=parse, metavar=metavar, help=shown)
    parser.add_argument(
        "--clear",
        type=setting_name,
        nargs="+",
        action="extend",
        default=[],
        metavar="SETTING",
        help=f"unset these (the server's default applies): {', '.join(SETTABLE)}",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "enqueue" and args.payload != "-":
        _check_payload(parser, args.payload)
    if args.command == "queue" and args.action == "set":
        _check_settings(parser, args)
    try:
        with Client(args.url, args.token) as client:
            COMMANDS[args.command](client, args)
    except Declined as exc:
        print(exc, file=sys.stderr)
        return 1
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


def _check_settings(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    given = [name for name in SETTABLE if getattr(args, name) is not None]
    if not given and not args.clear:
        parser.error("nothing to change: give a setting (such as --max-processing 10) or --clear")
    for name in given:
        if name in args.clear:
            parser.error(f"{_flag(name)} and --clear {name} contradict each other")
    if args.dead_letter_queue == args.name:
        parser.error(f"--dead-letter-queue must name another queue, not '{args.name}' itself")
