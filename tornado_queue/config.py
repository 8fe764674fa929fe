"""Settings: command-line flags, each also readable from a `TQ_<NAME>` environment variable.

Precedence: a flag on the command line, then the environment variable, then the default.
An environment variable set to the empty string counts as unset.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, NoReturn

from tornado_queue.arguments import bounded, choice, queue_list
from tornado_queue.errors import TokenError
from tornado_queue.limits import (
    MAX_ATTEMPTS,
    MAX_BACKOFF_SECONDS,
    MAX_LEASE_SECONDS,
    MIN_LEASE_SECONDS,
)
from tornado_queue.push_allow import PushAllow
from tornado_queue.validation import check_token

BACKENDS = ("memory", "sqlite", "redis")
LOG_LEVELS = ("debug", "info", "warning", "error")
SQLITE_SYNC = ("full", "normal")
LOG_FORMATS = ("text", "json")
ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


@dataclass(frozen=True)
class Settings:
    """Everything the server is configured with; the field defaults are the flags' defaults."""

    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "memory"
    db: str = "tornado_queue.db"
    sqlite_sync: str = "full"
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_prefix: str = "{tq}"
    workers: int = 0
    work_seconds: float = 0.5
    worker_queues: tuple[str, ...] = ()
    fail_rate: float = 0.0
    lease_seconds: float = 30.0
    max_attempts: int = 3
    retry_backoff: float = 1.0
    retention_seconds: float = 3600.0
    max_body_bytes: int = 1 << 20
    max_pending: int = 0
    max_tasks: int = 0
    max_queues: int = 0
    log_level: str = "info"
    log_format: str = "text"
    max_waiters: int = 10_000
    max_header_bytes: int = 65_536
    rate_limit: float = 0.0
    cors_origin: str = ""
    certfile: str = ""
    keyfile: str = ""
    idle_timeout: float = 60.0
    body_timeout: float = 30.0
    # Kept out of repr: a Settings printed anywhere must never show a token.
    auth_token: str = field(default="", repr=False)
    tokens_file: str = ""
    push_allow: str = ""

    @classmethod
    def from_args(
        cls,
        argv: Sequence[str] | None = None,
        environ: Mapping[str, str] | None = None,
        prog: str = "python main.py",
    ) -> Settings:
        """Parse flags and `TQ_*` variables; exits with status 2 and a message on a bad value.
        `prog` is how the server was started, as usage and errors name it."""
        environ = os.environ if environ is None else environ
        parser = build_parser(prog)
        given = vars(parser.parse_args(argv))
        values: dict[str, Any] = {}
        for option in OPTIONS:
            if given[option.name] is not None:
                values[option.name] = given[option.name]
            elif environ.get(option.env):
                try:
                    values[option.name] = option.parse(environ[option.env])
                except argparse.ArgumentTypeError as exc:
                    parser.error(f"environment variable {option.env}: {exc}")
        if bool(values.get("certfile")) != bool(values.get("keyfile")):
            parser.error("--certfile and --keyfile go together: give both to serve HTTPS")
        return cls(**values)


def _token(text: str) -> str:
    try:
        check_token(text, "the token")
    except TokenError as exc:
        # ArgumentTypeError: argparse then prints this message alone, not the value given.
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _push_allow(text: str) -> str:
    """The --push-allow list, checked entry by entry at start-up (kept as given)."""
    try:
        PushAllow.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _origin(text: str) -> str:
    """A browser origin: scheme, host and optional port, nothing else."""
    if not ORIGIN.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"expected one origin like https://app.example.com or http://localhost:3000, "
            f"got {text!r}"
        )
    return text


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that reports a bad argument in one line that points at --help,
    instead of printing the whole usage block first (the error is what the reader needs)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


@dataclass(frozen=True)
class Option:
    """One setting: its name (a `Settings` field), how to parse it, its help text and the
    `GROUPS` title it is listed under in --help."""

    name: str
    parse: Callable[[str], Any]
    help: str
    group: str = ""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return "TQ_" + self.name.upper()

    @property
    def default(self) -> Any:
        return SETTINGS_DEFAULTS[self.name]


SETTINGS_DEFAULTS = {field.name: field.default for field in fields(Settings)}

GROUPS = {
    "server": "where the server listens",
    "store": "where tasks are kept",
    "leases and retries": "how long a consumer holds a task, and what happens when it fails",
    "limits": "bounds on what clients may send and hold, so one cannot starve the rest",
    "security": "who may call the API, from which site, and over HTTPS",
    "push": "push delivery: which URLs the servers may deliver push queues' tasks to",
    "logging": "what the server logs, and how",
    "simulation": "demo worker threads inside the server (--workers), for trying it out",
}
"""The --help sections, in order: each option's `group` is one of these titles."""


def grouped(group: str, *options: Option) -> tuple[Option, ...]:
    return tuple(replace(option, group=group) for option in options)


OPTIONS = (
    *grouped(
        "server",
        Option("host", str, "address to listen on"),
        Option("port", bounded(int, 0, 65_535), "port to listen on; 0 picks a free one"),
    ),
    *grouped(
        "store",
        Option("backend", choice(BACKENDS), f"where tasks are kept: {', '.join(BACKENDS)}"),
        Option("db", str, "the SQLite database file, with --backend sqlite"),
        Option(
            "sqlite_sync",
            choice(SQLITE_SYNC),
            "SQLite durability: full (every 2xx on disk) or normal (faster; a power cut may "
            "lose the last tasks, a crash never does)",
        ),
        Option("redis_url", str, "the Redis server (5.0 or later), with --backend redis"),
        Option(
            "redis_prefix",
            str,
            "prefix of every Redis key (a Cluster hash tag keeps them in one slot); servers "
            "sharing a queue use the same one",
        ),
    ),
    *grouped(
        "leases and retries",
        Option(
            "lease_seconds",
            bounded(float, MIN_LEASE_SECONDS, MAX_LEASE_SECONDS),
            "how long a dequeued task stays leased before it is handed out again",
        ),
        Option(
            "max_attempts",
            bounded(int, 1, MAX_ATTEMPTS),
            "deliveries a task gets before it is failed for good (per task: max_attempts)",
        ),
        Option(
            "retry_backoff",
            bounded(float, 0, MAX_BACKOFF_SECONDS),
            "seconds before the first retry of a failed task; doubles per attempt, capped at 1 h",
        ),
        Option(
            "retention_seconds",
            bounded(float, 0, 10 * 365 * 86400),
            "how long completed and failed tasks are kept before they are forgotten",
        ),
    ),
    *grouped(
        "limits",
        Option(
            "max_body_bytes",
            bounded(int, 1, 1 << 30),
            "largest request body accepted; larger ones get 413",
        ),
        Option(
            "max_pending",
            bounded(int, 0, 1 << 40),
            "most tasks waiting (pending or scheduled) in one queue; more get 503 with "
            "Retry-After (0: no limit)",
        ),
        Option(
            "max_tasks",
            bounded(int, 0, 1 << 40),
            "most tasks held in all states (finished ones until forgotten); more get 503 with "
            "Retry-After (0: no limit)",
        ),
        Option(
            "max_queues",
            bounded(int, 0, 1_000_000),
            "most queues holding tasks at once; an enqueue that would start one more gets 503 "
            "(0: no limit)",
        ),
        Option(
            "max_waiters",
            bounded(int, 0, 1_000_000),
            "most consumers long-polling at once, and apart from them most requests waiting for "
            "a result; one more gets 503 with Retry-After (0: no limit)",
        ),
        Option(
            "max_header_bytes",
            bounded(int, 1024, 1 << 20),
            "largest request line plus headers; larger closes the connection",
        ),
        Option(
            "rate_limit",
            bounded(float, 0, 1e6),
            "requests per second allowed per token (per client address with auth off), in "
            "bursts of up to a second's worth; more get 429 with Retry-After (0: no limit)",
        ),
        Option(
            "idle_timeout",
            bounded(float, 0.1, 3600),
            "seconds a connection may wait for (the rest of) a request's headers, between "
            "requests or before the first, before it is closed",
        ),
        Option(
            "body_timeout",
            bounded(float, 0.1, 3600),
            "seconds a client may take to send a request body before the connection is closed",
        ),
    ),
    *grouped(
        "security",
        Option(
            "auth_token",
            _token,
            "a bearer token with the admin role; with it (or --tokens-file) every data route "
            "needs 'Authorization: Bearer TOKEN'",
        ),
        Option(
            "tokens_file",
            str,
            "a file of lines 'ROLE TOKEN' (roles: producer, consumer, admin; # comments); "
            "read at start-up",
        ),
        Option("certfile", str, "PEM certificate (chain) to serve HTTPS with; needs --keyfile"),
        Option("keyfile", str, "PEM private key of --certfile"),
        Option(
            "cors_origin",
            _origin,
            "the one browser origin (e.g. https://app.example.com) allowed to call the API "
            "from another site; none by default",
        ),
    ),
    *grouped(
        "push",
        Option(
            "push_allow",
            _push_allow,
            "comma-separated host names, host:port, IP addresses or CIDR networks that push "
            "URLs may target; push delivery is off without it (see docs/push.md)",
        ),
    ),
    *grouped(
        "logging",
        Option("log_level", choice(LOG_LEVELS), f"log verbosity: {', '.join(LOG_LEVELS)}"),
        Option("log_format", choice(LOG_FORMATS), "text lines, or one JSON object per line"),
    ),
    *grouped(
        "simulation",
        Option("workers", bounded(int, 0, 256), "background worker threads that process tasks"),
        Option(
            "work_seconds",
            bounded(float, 0, 3600),
            "simulated work per task for --workers (each run varies by ±50%%)",
        ),
        Option(
            "worker_queues",
            queue_list,
            "comma-separated queues the workers consume (default: all queues)",
        ),
        Option(
            "fail_rate",
            bounded(float, 0, 1),
            "probability that a worker's simulated task fails (and is retried or dies)",
        ),
    ),
)


def build_parser(prog: str = "python main.py") -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog=prog,
        description="tornado_queue: an HTTP task queue server. Every flag can also be set "
        "with an environment variable TQ_<NAME> (e.g. TQ_PORT=9000); a flag wins over it.",
    )
    sections = {
        title: parser.add_argument_group(title, description)
        for title, description in GROUPS.items()
    }
    for option in OPTIONS:
        sections[option.group].add_argument(
            option.flag,
            dest=option.name,
            type=option.parse,
            metavar=option.name.split("_")[-1].upper(),
            help=f"{option.help} ({_details(option)})",
        )
    return parser


def _details(option: Option) -> str:
    """What --help shows after an option's text: its range, default and variable."""
    bounds = getattr(option.parse, "bounds", None)  # set by arguments.bounded
    parts = [bounds] if bounds else []
    return "; ".join([*parts, f"default {_shown(option.default)}", f"env {option.env}"])


def _shown(default: Any) -> str:
    if isinstance(default, tuple):
        return ",".join(default) or "all"
    return str(default) if default != "" else "none"
