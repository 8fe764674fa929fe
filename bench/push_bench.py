"""Push delivery benchmark: tasks/s the server pushes to a local receiver, against pulling the
same tasks over HTTP, per store, measured back to back in one invocation.

    .venv/bin/python bench/push_bench.py [--tasks 10000] [--caps 10,50] [--rounds 3]
                                         [--stores memory,sqlite,redis] [--pull-batch 100]
                                         [--deadline 60] [--no-pin] [--output FILE]
    .venv/bin/python bench/push_bench.py --smoke     (a few seconds: 300 tasks, memory only)

(The venv's interpreter: it starts the servers with tornado_queue.testing, and the Redis store
with its own private redis-server, nothing saved to disk.)

For each store, each run on a fresh server (`main.py --port 0 --push-allow 127.0.0.1
--log-level warning`, a fresh SQLite file or redis-server):

  pull      `--tasks` tasks enqueued through POST /tasks/batch (1000 a request), then one
            consumer on one connection takes them with POST /tasks/dequeue/batch?count=100 and
            gives them back with POST /tasks/complete/batch, until none is left: the cheapest
            way to drain a queue over HTTP, the baseline.
  push N    the queue is set `paused` with a `push` setting to the receiver and
            `max_processing` N (10 is what a push queue without a cap gets), the same tasks
            are enqueued, and the clock runs from the PATCH that unpauses it until
            GET /queue/stats?queue= counts them all completed (polled every 20 ms).

The receiver (bench/push_receiver.py, plain asyncio) runs in its own process and answers 200
with an empty body; GET /stats on it says how many POSTs and connections it saw, which checks
that every task arrived and shows whether the pusher reused connections. Each row reports
tasks/s, the ratio to the pull run of the same store and round, the time from the unpause to
the first completion, and the CPU each process spent per task (from /proc: the server; the
receiver, or for pull the consumer loop in this runner; redis-server), which says where the
time goes (counted in clock ticks of 10 ms: rough for runs as short as the smoke's).

Placement, on a machine with two CPUs or more (`--no-pin`: the scheduler decides): the server
(every thread) on CPU 0; the receiver, redis-server and this runner (the pull consumer) on
CPU 1, so each side of a push or a pull has a core of its own.

A run that does not finish within `--deadline` seconds fails loudly (exit status 1, with the
queue's stats at that moment), as does a task that failed, a count the receiver did not see, or
a process that did not start. No thresholds: the figures are reported, never asserted. It
prints a table and writes bench/results/push.json (push-smoke.json with --smoke). The defaults
(3 stores, 10,000 tasks, caps 10 and 50, 3 rounds) take about 2.5 minutes.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backends import pin_all_threads
from http_bench import PAYLOAD, PREFILL_BATCH, ROOT, run_facts, write_report

sys.path.insert(0, str(ROOT))

from tornado_queue.testing import RedisServer, ServerProcess

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
STORES = ("memory", "sqlite", "redis")
QUEUE = "bench"
POLL_SECONDS = 0.02
"""How often a push run reads the queue's stats while it waits for the last completion."""
LISTENING = re.compile(r"listening on (http://\S+)")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- processes -------------------------------------------------------------------------------


def cpus_for(enabled: bool) -> tuple[set[int], set[int]]:
    """(server CPUs, everything else's CPUs); both empty when not pinning."""
    if not enabled or (os.cpu_count() or 1) < 2 or not hasattr(os, "sched_setaffinity"):
        return set(), set()
    return {0}, {1}


def pin(pid: int, cpus: set[int]) -> None:
    """Pin every thread of `pid` to `cpus` (threads it starts later inherit it)."""
    pin_all_threads(pid, ",".join(str(cpu) for cpu in sorted(cpus)))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Receiver:
    """bench/push_receiver.py in its own process."""

    def __init__(self, log_path: Path, cpus: set[int]) -> None:
        self._log = log_path.open("w")
        self.log_path = log_path
        self.process = subprocess.Popen(
            [sys.executable, str(BENCH / "push_receiver.py"), "--port", "0"],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 15
        self.url = ""
        while time.monotonic() < deadline and self.process.poll() is None:
            match = LISTENING.search(log_path.read_text())
            if match:
                self.url = match.group(1)
                break
            time.sleep(0.02)
        if not self.url:
            self.stop()
            raise RuntimeError(f"the receiver did not start:\n{log_path.read_text()[-2000:]}")
        pin(self.process.pid, cpus)

    def stats(self) -> dict[str, int]:
        status, body = request(self.url, "GET", "/stats")
        if status != 200:
            raise RuntimeError(f"the receiver's /stats answered {status}")
        return body

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


# --- HTTP ------------------------------------------------------------------------------------


class Client:
    """One keep-alive connection to a server, JSON in and out."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=timeout)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        self.connection.request(method, path, data, headers)
        response = self.connection.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)

    def expect(self, status: int, method: str, path: str, body: Any = None) -> Any:
        got, answer = self.call(method, path, body)
        if got != status:
            raise RuntimeError(f"{method} {path} answered {got}, not {status}: {answer}")
        return answer

    def close(self) -> None:
        self.connection.close()


def request(url: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    client = Client(url)
    try:
        return client.call(method, path, body)
    finally:
        client.close()


def enqueue(client: Client, count: int) -> None:
    """`count` tasks into the bench queue, 1000 a request."""
    for offset in range(0, count, PREFILL_BATCH):
        size = min(PREFILL_BATCH, count - offset)
        items = [{"payload": PAYLOAD, "queue": QUEUE}] * size
        client.expect(201, "POST", "/tasks/batch", {"tasks": items})


class Overdue(RuntimeError):
    """A run did not finish within its deadline."""


# --- runs ------------------------------------------------------------------------------------


@dataclass
class Plan:
    tasks: int
    caps: list[int]
    stores: list[str]
    rounds: int
    pull_batch: int
    deadline: float
    server_cpus: set[int]
    other_cpus: set[int]


@dataclass
class Store:
    """A store for one run: the server flags that select it, and its redis-server if any."""

    name: str
    flags: list[str]
    redis: RedisServer | None = None

    def stop(self) -> None:
        if self.redis is not None:
            self.redis.stop()


def fresh_store(name: str, scratch: Path, label: str, cpus: set[int]) -> Store:
    if name == "memory":
        return Store(name, ["--backend", "memory"])
    if name == "sqlite":
        return Store(name, ["--backend", "sqlite", "--db", str(scratch / f"{label}.db")])
    directory = scratch / f"{label}-redis"
    directory.mkdir()
    redis = RedisServer(directory)
    pin(redis.process.pid, cpus)
    return Store(name, ["--backend", "redis", "--redis-url", redis.url], redis)


def start_server(plan: Plan, store: Store, log_path: Path) -> ServerProcess:
    flags = [*store.flags, "--push-allow", "127.0.0.1", "--log-level", "warning"]
    server = ServerProcess(log_path, *flags)
    pin(server.process.pid, plan.server_cpus)
    return server


def wait_for(
    client: Client, count: int, deadline: float, started: float
) -> tuple[float, float | None]:
    """Poll the bench queue's stats until `count` tasks are completed; (seconds to the last,
    seconds to the first completion). Raises Overdue past `deadline`, RuntimeError if any
    failed."""
    first: float | None = None
    while True:
        stats = client.expect(200, "GET", f"/queue/stats?queue={QUEUE}")
        now = time.perf_counter()
        if first is None and stats["completed"]:
            first = now - started
        if stats["failed"]:
            raise RuntimeError(f"{stats['failed']} task(s) failed: {stats}")
        if stats["completed"] >= count:
            return now - started, first
        if time.monotonic() > deadline:
            raise Overdue(f"not done within the deadline: {stats}")
        time.sleep(POLL_SECONDS)


def run_pull(plan: Plan, server: ServerProcess, store: Store) -> dict[str, Any]:
    client = Client(server.url)
    try:
        enqueue(client, plan.tasks)
        deadline = time.monotonic() + plan.deadline
        path = f"/tasks/dequeue/batch?count={plan.pull_batch}&queue={QUEUE}"
        done = 0
        cpu = cpu_marks(server, store)
        started = time.perf_counter()
        while done < plan.tasks:
            if time.monotonic() > deadline:
                raise Overdue(f"pulled {done} of {plan.tasks} within the deadline")
            tasks = client.expect(200, "POST", path)["tasks"]
            if not tasks:
                raise RuntimeError(f"the queue ran dry after {done} of {plan.tasks} tasks")
            items = [{"id": task["id"], "lease_id": task["lease_id"]} for task in tasks]
            results = client.expect(200, "POST", "/tasks/complete/batch", {"tasks": items})
            refused = [item for item in results["results"] if item["status"] != 200]
            if refused:
                raise RuntimeError(f"completions refused: {refused[:3]}")
            done += len(tasks)
        seconds = time.perf_counter() - started
        cpu = cpu_spent(cpu, server, store, consumer=True)
        stats = client.expect(200, "GET", f"/queue/stats?queue={QUEUE}")
    finally:
        client.close()
    if stats["completed"] != plan.tasks:
        raise RuntimeError(f"pulled {done} tasks but the stats say {stats}")
    return {"mode": "pull", "seconds": seconds, **per_task(cpu, plan.tasks, seconds)}


def run_push(
    plan: Plan, server: ServerProcess, store: Store, receiver: Receiver, cap: int
) -> dict[str, Any]:
    client = Client(server.url)
    try:
        push = {"url": f"{receiver.url}/hook", "timeout_seconds": 30}
        client.expect(
            200,
            "PATCH",
            f"/queues/{QUEUE}",
            {"paused": True, "max_processing": cap, "push": push},
        )
        enqueue(client, plan.tasks)
        received_before = receiver.stats()
        cpu = cpu_marks(server, store, receiver)
        deadline = time.monotonic() + plan.deadline
        started = time.perf_counter()
        client.expect(200, "PATCH", f"/queues/{QUEUE}", {"paused": False})
        seconds, first = wait_for(client, plan.tasks, deadline, started)
        cpu = cpu_spent(cpu, server, store, receiver=receiver)
        status = client.expect(200, "GET", f"/queues/{QUEUE}")["push_status"]
    finally:
        client.close()
    received = receiver.stats()
    posts = received["requests"] - received_before["requests"]
    connections = received["connections"] - received_before["connections"]
    if posts < plan.tasks or status["pushed"] < plan.tasks or status["failed"]:
        raise RuntimeError(
            f"{plan.tasks} tasks: the receiver saw {posts} POSTs, push_status {status}"
        )
    return {
        "mode": f"push {cap}",
        "cap": cap,
        "seconds": seconds,
        "first_completion_ms": None if first is None else 1000 * first,
        "receiver_posts": posts,
        "receiver_connections": connections,
        **per_task(cpu, plan.tasks, seconds),
    }


def cpu_marks(
    server: ServerProcess, store: Store, receiver: Receiver | None = None
) -> dict[str, float]:
    marks = {"server": cpu_seconds(server.process.pid), "runner": own_cpu_seconds()}
    if receiver is not None:
        marks["receiver"] = cpu_seconds(receiver.process.pid)
    if store.redis is not None:
        marks["redis"] = cpu_seconds(store.redis.process.pid)
    return marks


def cpu_spent(
    before: dict[str, float],
    server: ServerProcess,
    store: Store,
    *,
    receiver: Receiver | None = None,
    consumer: bool = False,
) -> dict[str, float]:
    """CPU seconds spent since `before` by the server, the other side (the receiver, or the
    consumer loop in this runner) and redis-server."""
    after = cpu_marks(server, store, receiver)
    spent = {"server": after["server"] - before["server"]}
    if consumer:
        spent["client"] = after["runner"] - before["runner"]
    if receiver is not None:
        spent["client"] = after["receiver"] - before["receiver"]
    if "redis" in after:
        spent["redis"] = after["redis"] - before["redis"]
    return spent


def per_task(cpu: dict[str, float], tasks: int, seconds: float) -> dict[str, Any]:
    return {
        "tasks": tasks,
        "tasks_per_s": tasks / seconds,
        "cpu_us_per_task": {name: 1e6 * value / tasks for name, value in cpu.items()},
        "server_busy": cpu["server"] / seconds,
    }


def one_run(
    plan: Plan, scratch: Path, label: str, store_name: str, receiver: Receiver, *, cap: int | None
) -> dict[str, Any]:
    """One measurement on a fresh server and store: pull when `cap` is None, else push."""
    store = fresh_store(store_name, scratch, label, plan.other_cpus)
    try:
        server = start_server(plan, store, scratch / f"{label}-server.log")
        try:
            if cap is None:
                return run_pull(plan, server, store)
            return run_push(plan, server, store, receiver, cap)
        except Exception as error:
            tail = server.log()[-1500:]
            raise RuntimeError(f"{label}: {type(error).__name__}: {error}\n{tail}") from error
        finally:
            server.kill()
    finally:
        store.stop()


@dataclass
class Row:
    """One store and mode over every round; push rows carry their ratio to the same round's
    pull run."""

    store: str
    mode: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    ratios: list[float] = field(default_factory=list)
    failure: str | None = None

    def median(self, *keys: str) -> float | None:
        values = []
        for run in self.runs:
            value: Any = run
            for key in keys:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                values.append(value)
        return statistics.median(values) if values else None

    def as_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"store": self.store, "mode": self.mode, "runs": self.runs}
        if self.failure:
            summary["failure"] = self.failure
        if self.ratios:
            summary["ratio_to_pull"] = statistics.median(self.ratios)
        return summary


def bench(plan: Plan, scratch: Path) -> list[Row]:
    modes: list[int | None] = [None, *plan.caps]
    rows = {
        (store, cap): Row(store, "pull" if cap is None else f"push {cap}")
        for store in plan.stores
        for cap in modes
    }
    receiver = Receiver(scratch / "receiver.log", plan.other_cpus)
    try:
        for number in range(plan.rounds):
            for store in plan.stores:
                pull_rate: float | None = None
                for cap in modes:
                    row = rows[(store, cap)]
                    label = f"r{number}-{store}-{'pull' if cap is None else cap}"
                    try:
                        result = one_run(plan, scratch, label, store, receiver, cap=cap)
                    except Exception as error:
                        row.failure = str(error)
                        print(f"  {label}: FAILED: {error}", file=sys.stderr, flush=True)
                        continue
                    row.runs.append(result)
                    if cap is None:
                        pull_rate = result["tasks_per_s"]
                    elif pull_rate:
                        row.ratios.append(result["tasks_per_s"] / pull_rate)
                    print(
                        f"  round {number + 1}/{plan.rounds}: {store} {row.mode}: "
                        f"{result['tasks_per_s']:,.0f} tasks/s",
                        file=sys.stderr,
                        flush=True,
                    )
    finally:
        receiver.stop()
    return list(rows.values())


# --- report ----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    header = (
        f"{'store':<7} {'mode':<8} {'tasks/s':>8} {'push/pull':>9} {'1st done ms':>11} "
        f"{'server busy':>11} {'CPU µs/task: server':>19} {'client':>7} {'redis':>6} "
        f"{'conns/task':>10}"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        first = f"{row.store:<7} {row.mode:<8}"
        if row.failure:
            lines.append(f"{first} FAILED ({row.failure.splitlines()[0]})")
            continue

        def number(value: float | None, width: int, spec: str = ",.0f") -> str:
            return f"{'':>{width}}" if value is None else f"{value:>{width}{spec}}"

        ratio = statistics.median(row.ratios) if row.ratios else None
        connections = row.median("receiver_connections")
        posts = row.median("receiver_posts")
        per_post = None if connections is None or not posts else connections / posts
        lines.append(
            f"{first} {number(row.median('tasks_per_s'), 8)} {number(ratio, 9, '.2f')} "
            f"{number(row.median('first_completion_ms'), 11)} "
            f"{number(row.median('server_busy'), 11, '.0%')} "
            f"{number(row.median('cpu_us_per_task', 'server'), 19)} "
            f"{number(row.median('cpu_us_per_task', 'client'), 7)} "
            f"{number(row.median('cpu_us_per_task', 'redis'), 6)} "
            f"{number(per_post, 10, '.2f')}"
        )
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks per run")
    parser.add_argument(
        "--caps", default="10,50", help="comma-separated max_processing of the push runs"
    )
    parser.add_argument("--stores", default=",".join(STORES), help="comma-separated")
    parser.add_argument("--rounds", type=int, default=3, help="runs per row (medians)")
    parser.add_argument(
        "--pull-batch", type=int, default=100, help="tasks per batch dequeue (1-1000)"
    )
    parser.add_argument(
        "--deadline", type=float, default=60.0, help="seconds a run may take before it fails"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON (default bench/results/push.json, push-smoke.json "
        "with --smoke)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI smoke: 300 tasks, memory only, caps 10 and 50; fails only on errors",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.tasks, args.stores, args.rounds, args.caps, args.deadline = (
            300,
            "memory",
            1,
            "10,50",
            20.0,
        )
    unknown = set(args.stores.split(",")) - set(STORES)
    if unknown:
        parser.error(f"unknown stores: {', '.join(sorted(unknown))}")
    if args.tasks < 1 or args.rounds < 1:
        parser.error("--tasks and --rounds must be at least 1")
    if not 1 <= args.pull_batch <= 1000:
        parser.error("--pull-batch must be from 1 to 1000")
    try:
        caps = [int(cap) for cap in args.caps.split(",")]
    except ValueError:
        parser.error("--caps must be comma-separated integers")
    if any(not 1 <= cap <= 100_000 for cap in caps):
        parser.error("--caps must be from 1 to 100000 (max_processing's range)")
    args.caps = caps
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    server_cpus, other_cpus = cpus_for(not args.no_pin)
    plan = Plan(
        tasks=args.tasks,
        caps=args.caps,
        stores=args.stores.split(","),
        rounds=args.rounds,
        pull_batch=args.pull_batch,
        deadline=args.deadline,
        server_cpus=server_cpus,
        other_cpus=other_cpus,
    )
    if other_cpus:
        os.sched_setaffinity(0, other_cpus)  # the runner is the pull consumer
    started = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="tq-push-bench-") as scratch:
        rows = bench(plan, Path(scratch))
    print(table(rows))
    report = {
        "meta": {
            "date": datetime.now(UTC).isoformat(),
            "smoke": args.smoke,
            "tasks_per_run": plan.tasks,
            "caps": plan.caps,
            "rounds": plan.rounds,
            "pull_batch": plan.pull_batch,
            "deadline_seconds": plan.deadline,
            "pinning": {
                "server_cpus": sorted(plan.server_cpus),
                "receiver_redis_runner_cpus": sorted(plan.other_cpus),
            },
            **run_facts(load_before, started),
        },
        "rows": [row.as_json() for row in rows],
    }
    out: Path = args.output or RESULTS / ("push-smoke.json" if args.smoke else "push.json")
    return write_report(report, out, started, sum(1 for row in rows if row.failure))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
