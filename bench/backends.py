"""Durable stores against the memory store over HTTP, alternated within one invocation.

    .venv/bin/python bench/backends.py [--seconds 4] [--rounds 2] [--connections 16]
                                       [--workloads enqueue,lifecycle,...]
                                       [--redis-persistence always|everysec|none]
                                       [--long-poll-iterations 200] [--long-poll-only]
                                       [--server-flags "..."] [--no-pin]
    .venv/bin/python bench/backends.py --smoke     (about 25 s: fails only on errors)

(The venv's interpreter: the runner talks to its private Redis with redis-py.)

For each workload it starts a fresh memory-backed server, a fresh SQLite-backed one
(`--backend sqlite --db <tmp>/q.db`, the default `--sqlite-sync full`: every 2xx is on disk) and
a fresh Redis-backed one on a fresh private redis-server, prefills each through the batch
endpoint when the workload dequeues, and runs `wrk` on each in turn. The durability of the
Redis is a flag: by default `--appendonly yes --appendfsync always` (every write fsynced before
Redis answers, as SQLite full does); `--redis-persistence everysec` is the common production
compromise (up to a second of writes lost on a power cut), `none` keeps nothing on disk. The
table says which one ran. Fresh processes and files per run keep one run's data out of the next.
The grid is run `--rounds` times (rounds outermost, the backends' order rotated per round); the
table shows medians, and each ratio to memory is the median of the per-round ratios.

Workloads (the Lua scripts in bench/wrk/, described in bench/http_bench.py): enqueue,
dequeue_complete, lifecycle and batch_enqueue (100 tasks per request), at 16 connections.

Placement, when `taskset` is there and the machine has two CPUs or more: every server on CPU 0;
wrk, redis-server (all its threads) and this runner on CPU 1 (`--no-pin`: the scheduler
decides). With two cores, wrk and redis-server share one: Redis's share of it is small at these
rates (see bench/redis_capacity.py), wrk with one thread does ~30k+ requests/s.

Then the cross-server long-poll wake-up on Redis: two servers A and B on one redis-server; a
consumer parks `POST /tasks/dequeue?wait=5` on B, and once it is parked a producer sends
`POST /tasks` to A. One sample is the time from just before the enqueue is written to the
socket until the consumer has read the whole 200 with that task (raw sockets, as in
bench/http_bench.py). The same with the consumer on A is reported beside it, so the cost of the
pub/sub hop (A publishes, B's subscriber thread hears it, B dequeues) shows as the difference.
Each is also reported as "woken after the 201": the consumer's answer less the producer's, per
sample, which leaves out the enqueue's own round trip (and the noise of the machine in it).

The last line says how much of the machine's CPU time other processes took during the run
(/proc/stat less this runner and its children): pinning keeps this benchmark's processes apart,
not other work on a shared machine, and above 5 % the figures are flagged as noisy.

It prints a table and writes bench/results/backends.json (backends-smoke.json with --smoke, or
`--output FILE`). Targets, reported and never asserted, at 16 connections: redis >= 0.7x and
sqlite >= 0.5x the memory server's req/s on enqueue, dequeue + complete and lifecycle; batch
enqueue >= 20,000 tasks/s on each backend; cross-server wake-up p99 <= 10 ms. The defaults
(4 s runs, 2 rounds, 4 workloads, 3 backends, 200 wake-ups each way) take about 3 minutes.
Exit status 1 only when a run failed: a wrk error, a non-2xx or unexpected answer, a dequeue
that found the queue empty, a process that did not start, or a wake-up that did not come.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from http_bench import (
    PREFILL_BATCH,
    ROOT,
    WORKLOADS_BY_NAME,
    App,
    Pinning,
    Plan,
    Workload,
    ensure_wrk,
    prefill,
    run_facts,
    run_wrk,
    wakeups,
    write_report,
)

sys.path.insert(0, str(ROOT))

from tornado_queue.testing import RedisServer

RESULTS = ROOT / "bench" / "results"
BACKENDS = ("memory", "sqlite", "redis")
DURABLE = ("sqlite", "redis")
WORKLOAD_NAMES = ("enqueue", "dequeue_complete", "lifecycle", "batch_enqueue")
MIN_RATIO = {"sqlite": 0.5, "redis": 0.7}
MIN_BATCH_TASKS_PER_S = 20_000.0
MAX_WAKEUP_P99_MS = 10.0
PERSISTENCE = {
    "always": "--appendonly yes --appendfsync always",
    "everysec": "--appendonly yes --appendfsync everysec",
    "none": "--appendonly no --save ''",
}
PARK_SECONDS = 0.01
"""How long a consumer's dequeue is given to reach the server and park before the enqueue."""


# --- processes -------------------------------------------------------------------------------


def pin_all_threads(pid: int, cpus: str) -> None:
    """Pin every thread of `pid` (redis-server has background I/O threads) to `cpus`."""
    if not cpus:
        return
    wanted = {int(cpu) for cpu in cpus.split(",")}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            os.sched_setaffinity(int(task.name), wanted)
        except (ProcessLookupError, PermissionError):
            continue


def start_redis(directory: Path, persistence: str, cpus: str) -> RedisServer:
    """A private redis-server in `directory` with the persistence asked for, pinned to `cpus`.

    `RedisServer(append_only=True)` is `--appendonly yes --appendfsync always`; the other
    choices are set with CONFIG SET right after the start, before anything is written."""
    directory.mkdir(parents=True, exist_ok=True)
    server = RedisServer(directory, append_only=persistence != "none")
    pin_all_threads(server.process.pid, cpus)
    if persistence == "everysec":
        client = redis.Redis.from_url(server.url)
        try:
            client.config_set("appendfsync", "everysec")
        finally:
            client.close()
    return server


def redis_persistence_in_force(url: str) -> dict[str, str]:
    """What the running Redis says its persistence is (to report what actually ran)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        config: dict[str, str] = {}
        for name in ("appendonly", "appendfsync", "save"):
            config.update(client.config_get(name))
        config["redis_version"] = client.info("server")["redis_version"]
        return config
    finally:
        client.close()


def backend_flags(backend: str, directory: Path, redis_url: str, prefix: str) -> list[str]:
    if backend == "sqlite":
        return ["--backend", "sqlite", "--db", str(directory / "q.db")]
    if backend == "redis":
        return ["--backend", "redis", "--redis-url", redis_url, "--redis-prefix", prefix]
    return []


class MachineShare:
    """How much of the machine other processes took while this runner ran: the CPU time every
    CPU spent busy (/proc/stat) less this runner's and its finished children's (every server,
    redis-server and wrk it started is waited for), over the CPU time there was. Linux only;
    the benchmarks cannot stop other work on a shared machine, only say how much there was."""

    def __init__(self) -> None:
        self._started = self._counters()

    @staticmethod
    def _counters() -> dict[str, float] | None:
        try:
            fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
        except OSError:
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(value) / tick for value in fields[:8]
        )
        own = sum(
            getattr(resource.getrusage(who), kind)
            for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
            for kind in ("ru_utime", "ru_stime")
        )
        return {
            "at": time.monotonic(),
            "busy": user + nice + system + irq + softirq,
            "steal": steal,
            "own": own,
        }

    def report(self) -> dict[str, float] | None:
        """Call once every child has been waited for."""
        now, then = self._counters(), self._started
        if now is None or then is None:
            return None
        available = (now["at"] - then["at"]) * (os.cpu_count() or 1)
        others = max(0.0, (now["busy"] - then["busy"]) - (now["own"] - then["own"]))
        return {
            "cpu_seconds_available": available,
            "cpu_seconds_this_benchmark": now["own"] - then["own"],
            "cpu_seconds_other_processes": others,
            "other_processes_share": others / available if available else 0.0,
            "steal_seconds": now["steal"] - then["steal"],
        }


def machine_line(share: dict[str, float] | None, load: tuple[float, float, float]) -> str:
    if share is None:
        return f"machine: load average {load[0]:.1f} at the start"
    noisy = share["other_processes_share"] > 0.05 or share["steal_seconds"] > 1
    return (
        f"machine: other processes used {100 * share['other_processes_share']:.0f}% of the "
        f"{os.cpu_count()} CPUs during the run, {share['steal_seconds']:.1f} s stolen by the "
        f"host (load average {load[0]:.1f} at the start)"
        + ("; the figures are NOISY" if noisy else "")
    )


# --- throughput ------------------------------------------------------------------------------


@dataclass
class Settings:
    plan: Plan
    """http_bench's plan: wrk, seconds and pinning are what run_wrk reads from it."""
    connections: int
    persistence: str
    redis_cpus: str
    prefill_rates: dict[tuple[str, str], float] = field(default_factory=dict)


def bench_one(
    settings: Settings, scratch: Path, workload: Workload, backend: str, label: str
) -> dict[str, Any]:
    """One fresh server of `backend` (and its redis-server), prefilled if the workload
    dequeues, under one wrk run; wrk's BENCH_JSON plus rates, or with a "failure"."""
    plan = settings.plan
    rate = settings.prefill_rates.get((workload.name, backend), workload.prefill_rate)
    count = math.ceil(rate * (plan.seconds + 1) / PREFILL_BATCH) * PREFILL_BATCH if rate else 0
    directory = scratch / label
    directory.mkdir(parents=True)
    redis_server = None
    app = None
    result: dict[str, Any]
    try:
        redis_url = ""
        if backend == "redis":
            redis_server = start_redis(directory, settings.persistence, settings.redis_cpus)
            redis_url = redis_server.url
        flags = [*plan.server_flags, *backend_flags(backend, directory, redis_url, "{bench}")]
        app = App(backend, ROOT / "main.py", flags, directory / "server.log", plan.pinning)
        app.wait_until_listening()
        prefill_seconds = prefill(app.url, count) if count else 0.0
        result = run_wrk(plan, workload, app.url, settings.connections)
        result["prefill_tasks"] = count
        result["prefill_seconds"] = prefill_seconds
        result["server_rss_mib_after"] = app.rss_mib()
    except (OSError, RuntimeError, redis.RedisError) as error:
        result = {"failure": f"{type(error).__name__}: {error}"}
    finally:
        if app is not None:
            app.stop()
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    if workload.prefill_rate and "tasks_per_s" in result:
        # Enough for the next run at the best rate seen, with margin.
        settings.prefill_rates[(workload.name, backend)] = max(rate, 1.5 * result["tasks_per_s"])
    return result


@dataclass
class Row:
    """One workload over every round: per backend one result per round."""

    workload: Workload
    runs: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {backend: [] for backend in BACKENDS}
    )

    @property
    def failure(self) -> str | None:
        for backend, results in self.runs.items():
            for result in results:
                if "failure" in result:
                    return f"{backend}: {result['failure']}"
        return None

    def median(self, backend: str, *keys: str) -> float:
        values = []
        for result in self.runs[backend]:
            value: Any = result
            for key in keys:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    def ratio(self, backend: str) -> float:
        """Median over rounds of this round's req/s of `backend` / memory's."""
        return statistics.median(
            durable["req_per_s"] / memory["req_per_s"]
            for durable, memory in zip(self.runs[backend], self.runs["memory"], strict=True)
        )

    def targets(self) -> dict[str, dict[str, Any]]:
        if self.failure:
            return {}
        if self.workload.name == "batch_enqueue":
            return {
                backend: {
                    "wanted": f"tasks/s >= {MIN_BATCH_TASKS_PER_S:,.0f}",
                    "met": self.median(backend, "tasks_per_s") >= MIN_BATCH_TASKS_PER_S,
                }
                for backend in BACKENDS
            }
        return {
            backend: {
                "wanted": f"req/s >= {MIN_RATIO[backend]}x memory",
                "met": self.ratio(backend) >= MIN_RATIO[backend],
            }
            for backend in DURABLE
        }

    def as_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"workload": self.workload.name}
        if self.failure:
            summary["failure"] = self.failure
        else:
            for backend in BACKENDS:
                summary[backend] = {
                    "req_per_s": self.median(backend, "req_per_s"),
                    "tasks_per_s": self.median(backend, "tasks_per_s"),
                    "p50_us": self.median(backend, "latency_us", "p50"),
                    "p99_us": self.median(backend, "latency_us", "p99"),
                }
            summary["ratio_to_memory"] = {backend: self.ratio(backend) for backend in DURABLE}
            summary["targets"] = self.targets()
        summary["rounds"] = [
            {backend: self.runs[backend][n] for backend in BACKENDS}
            for n in range(len(self.runs["memory"]))
        ]
        return summary


# --- long-poll wake-up across servers --------------------------------------------------------


def bench_long_poll(settings: Settings, scratch: Path, iterations: int) -> dict[str, Any]:
    """Two Redis-backed servers on one redis-server: the wake-up across them, and on one."""
    plan = settings.plan
    directory = scratch / "long-poll"
    directory.mkdir(parents=True)
    redis_server = None
    apps: list[App] = []
    try:
        redis_server = start_redis(directory, settings.persistence, settings.redis_cpus)
        flags = [*plan.server_flags, *backend_flags("redis", directory, redis_server.url, "{lp}")]
        apps = [
            App(name, ROOT / "main.py", flags, directory / f"{name}.log", plan.pinning)
            for name in ("server-a", "server-b")
        ]
        server_a, server_b = (app.wait_until_listening() for app in apps)
        # the first waits subscribe to Redis: not kept
        cross = wakeups(server_a, server_b, iterations, warmup=5, park_seconds=PARK_SECONDS)
        same = wakeups(server_a, server_a, iterations, warmup=5, park_seconds=PARK_SECONDS)
    except (OSError, RuntimeError, ValueError, KeyError, redis.RedisError) as error:
        return {"failure": f"{type(error).__name__}: {error}"}
    finally:
        for app in apps:
            app.stop()
        if redis_server is not None:
            redis_server.stop()
        shutil.rmtree(directory, ignore_errors=True)
    met = cross["wakeup"]["p99_ms"] <= MAX_WAKEUP_P99_MS
    return {
        "cross_server": cross,
        "same_server": same,
        "target": {"wanted": f"cross-server wake-up p99 <= {MAX_WAKEUP_P99_MS:g} ms", "met": met},
    }


# --- report ----------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def table(rows: list[Row], persistence: str, connections: int) -> str:
    header = (
        f"{'workload':<22} {'memory':>9} {'sqlite':>9} {'redis':>9} "
        f"{'sqlite/mem':>10} {'redis/mem':>9}  target"
    )
    lines = [
        f"req/s at {connections} connections (medians); sqlite: synchronous=FULL; "
        f"redis: {PERSISTENCE[persistence]}",
        header,
        "-" * len(header),
    ]
    for row in rows:
        first = f"{row.workload.title:<22}"
        if row.failure:
            lines.append(f"{first} FAILED ({row.failure})")
            continue
        rates = " ".join(f"{row.median(backend, 'req_per_s'):>9,.0f}" for backend in BACKENDS)
        ratios = f"{row.ratio('sqlite'):>10.2f} {row.ratio('redis'):>9.2f}"
        targets = row.targets()
        if row.workload.name == "batch_enqueue":
            tasks = ", ".join(
                f"{backend} {row.median(backend, 'tasks_per_s'):,.0f}" for backend in BACKENDS
            )
            met = all(target["met"] for target in targets.values())
            note = f"tasks/s: {tasks} (>= 20,000 each: {verdict(met)})"
        else:
            note = ", ".join(
                f"{backend} >= {MIN_RATIO[backend]}x: {verdict(targets[backend]['met'])}"
                for backend in DURABLE
            )
        lines.append(f"{first} {rates} {ratios}  {note}")
    lines.append("")
    header = f"{'latency p50 / p99 ms':<22} " + " ".join(f"{b:>15}" for b in BACKENDS)
    lines += [header, "-" * len(header)]
    for row in rows:
        if row.failure:
            continue
        cells = " ".join(
            f"{row.median(b, 'latency_us', 'p50') / 1000:>6.1f} / "
            f"{row.median(b, 'latency_us', 'p99') / 1000:>6.1f}"
            for b in BACKENDS
        )
        lines.append(f"{row.workload.title:<22} {cells}")
    return "\n".join(lines)


def long_poll_lines(result: dict[str, Any]) -> str:
    if "failure" in result:
        return f"long-poll wake-up on Redis: FAILED: {result['failure']}"
    lines = []
    for key, title in (("cross_server", "B woken by an enqueue on A"), ("same_server", "same")):
        wake, enqueue = result[key]["wakeup"], result[key]["enqueue_round_trip"]
        later = result[key]["wakeup_minus_enqueue_round_trip"]
        lines.append(
            f"long-poll wake-up on Redis, {title} ({result[key]['iterations']} samples): "
            f"p50 {wake['p50_ms']:.2f} ms, p99 {wake['p99_ms']:.2f} ms, "
            f"max {wake['max_ms']:.2f} ms; the enqueue's own round trip p50 "
            f"{enqueue['p50_ms']:.2f} ms, p99 {enqueue['p99_ms']:.2f} ms; woken after the 201: "
            f"p50 {later['p50_ms']:.2f} ms, p99 {later['p99_ms']:.2f} ms"
        )
    lines.append(f"  target {result['target']['wanted']}: {verdict(result['target']['met'])}")
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=4, help="duration of each wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per backend and workload")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOAD_NAMES),
        help=f"comma-separated, from: {', '.join(WORKLOAD_NAMES)}",
    )
    parser.add_argument(
        "--redis-persistence",
        choices=sorted(PERSISTENCE),
        default="always",
        help="always: AOF fsynced before every answer (as SQLite full; default); everysec: "
        "AOF fsynced once a second; none: nothing on disk",
    )
    parser.add_argument(
        "--server-flags",
        default="",
        help='extra flags for every server, e.g. "--log-level warning"',
    )
    parser.add_argument("--long-poll-iterations", type=int, default=200)
    parser.add_argument("--no-long-poll", action="store_true", help="skip the wake-up test")
    parser.add_argument(
        "--long-poll-only", action="store_true", help="only the wake-up test, no wrk runs"
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON (default bench/results/backends.json, "
        "backends-smoke.json with --smoke)",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="1 s runs, one round, 20 wake-ups each way: fails only on errors",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.long_poll_iterations = 1, 1, 20
    unknown = set(args.workloads.split(",")) - set(WORKLOAD_NAMES)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if args.long_poll_only and args.no_long_poll:
        parser.error("--long-poll-only and --no-long-poll exclude each other")
    if args.rounds < 1 or args.seconds < 1 or args.long_poll_iterations < 1:
        parser.error("--rounds, --seconds and --long-poll-iterations must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pinning = Pinning.choose(not args.no_pin)
    plan = Plan(
        wrk=ensure_wrk(),
        seconds=args.seconds,
        connections=[args.connections],
        workloads=[WORKLOADS_BY_NAME[name] for name in args.workloads.split(",")],
        server_flags=shlex.split(args.server_flags),
        pinning=pinning,
        longpoll_iterations=args.long_poll_iterations,
        rounds=args.rounds,
    )
    settings = Settings(plan, args.connections, args.redis_persistence, redis_cpus=pinning.load)
    if pinning.load:
        os.sched_setaffinity(0, {int(pinning.load)})  # the runner is a client too
    started = time.monotonic()
    load_before = os.getloadavg()
    share = MachineShare()
    rows = [] if args.long_poll_only else [Row(workload) for workload in plan.workloads]
    persistence: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="tq-backends-") as scratch_dir:
        scratch = Path(scratch_dir)
        with start_redis(scratch / "probe", args.redis_persistence, "") as probe:
            persistence = redis_persistence_in_force(probe.url)
        for number in range(plan.rounds):
            # Rotate the order, so that no backend always runs first (or right after another).
            order = BACKENDS[number % 3 :] + BACKENDS[: number % 3]
            for row in rows:
                for backend in order:
                    label = f"r{number}-{row.workload.name}-{backend}"
                    row.runs[backend].append(
                        bench_one(settings, scratch, row.workload, backend, label)
                    )
                print(
                    f"  round {number + 1}/{plan.rounds}: {row.workload.name} done",
                    file=sys.stderr,
                    flush=True,
                )
        long_poll: dict[str, Any] = (
            {"skipped": True}
            if args.no_long_poll
            else bench_long_poll(settings, scratch, args.long_poll_iterations)
        )
    machine = share.report()
    if rows:
        print(table(rows, args.redis_persistence, args.connections))
    if "skipped" not in long_poll:
        print(long_poll_lines(long_poll))
    print(machine_line(machine, load_before))
    report = {
        "meta": {
            "date": datetime.now(UTC).isoformat(),
            "smoke": args.smoke,
            "seconds_per_run": plan.seconds,
            "rounds": plan.rounds,
            "connections": args.connections,
            "wrk": f"{plan.wrk} -t1 --timeout 10s",
            "server_flags": plan.server_flags,
            "sqlite": "--sqlite-sync full (synchronous=FULL)",
            "redis_persistence": args.redis_persistence,
            "redis_flags": PERSISTENCE[args.redis_persistence],
            "redis_config_in_force": persistence,
            "pinning": {
                "servers_cpu": pinning.app,
                "wrk_redis_runner_cpu": pinning.load,
            },
            "machine_share": machine,
            **run_facts(load_before, started),
        },
        "rows": [row.as_json() for row in rows],
        "long_poll": long_poll,
    }
    out: Path = args.output or RESULTS / ("backends-smoke.json" if args.smoke else "backends.json")
    failed = [row for row in rows if row.failure] + ([long_poll] if "failure" in long_poll else [])
    return write_report(report, out, started, len(failed))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
