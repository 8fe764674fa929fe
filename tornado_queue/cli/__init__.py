"""`tornado-queue COMMAND [ARGS]` (or `python -m tornado_queue`): the server, the worker runner
and the client commands in one entry point."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tornado_queue.cli import commands
from tornado_queue.server import serve
from tornado_queue.worker import runner

USAGE = """usage: tornado-queue COMMAND [ARGS...]   (COMMAND --help for its arguments;
       python -m tornado_queue is the same)

  serve [FLAGS]                 run the server (the same as python main.py FLAGS)
  worker MODULE:FUNCTION        run FUNCTION on every task of a queue
  enqueue PAYLOAD               put a task on a queue
  get ID                        show one task
  stats                         tasks per state
  queues                        every queue with its counts
  workers                       the workers seen lately, with the tasks they hold
  retry ID                      put a failed task back in its queue
  queue show|pause|resume|retry|set|purge NAME
                                a queue's counts and settings; stop or restart its delivery;
                                put all its failed tasks back; change its settings; delete
                                its tasks in one state
  schedule set|show|list|delete cron and interval schedules: create or replace one (a task
                                on a queue at each cron time, or every N seconds), read one,
                                list them, remove one
  tail                          follow the counts live, a line per change
"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="", file=sys.stdout if args else sys.stderr)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        return serve.main(rest, prog="tornado-queue serve")
    if command == "worker":
        return runner.main(rest)
    if command in commands.COMMANDS:
        return commands.main(args)
    known = ", ".join(["serve", "worker", *commands.COMMANDS])
    print(
        f"tornado-queue: error: unknown command {command!r}; commands: {known} (see --help)",
        file=sys.stderr,
    )
    return 2
