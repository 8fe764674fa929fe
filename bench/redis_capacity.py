"""What one Redis can carry: Redis's own cost per task lifecycle, and the servers it would take.

    .venv/bin/python bench/redis_capacity.py [--seconds 8] [--rounds 2] [--servers 1,2]
                                             [--connections 16]
                                             [--redis-persistence always|everysec|none]
    .venv/bin/python bench/redis_capacity.py --smoke     (about 6 s: fails only on errors)

(The venv's interpreter: the runner reads Redis's INFO with redis-py.)

One private redis-server; for each server count (1, then 2), that many fresh Redis-backed
servers (`python main.py --backend redis`, default flags, a fresh key prefix per run) share it,
and one `wrk -t1` per server drives full lifecycles (bench/wrk/lifecycle.lua: enqueue, dequeue,
complete) at `--connections` each for `--seconds`, all at once, after a 1 s warm-up that is not
counted. Just before and just after the timed run it reads `INFO commandstats` (calls and usec
of FCALL, EVALSHA and EVAL, every operation being one call of the store's Lua code, and of
PUBLISH, the ready message the code sends to the other servers from inside that call) and
`INFO cpu` (redis-server's CPU time, total and of its main thread, which runs every command).
From the differences and wrk's count of completed tasks:

  - µs per script call and script calls per lifecycle (3, plus the servers' periodic reaps);
  - command µs per lifecycle: the store code's time (its publishes included), as Redis's
    commandstats count it (time inside the commands only);
  - CPU µs per lifecycle: redis-server's main-thread CPU time (user + sys) per lifecycle, which
    adds what commandstats leave out (reading requests, writing replies, delivering published
    messages to subscribers, writing the append-only file);
  - projected maximum lifecycles/s of one Redis = 1e6 / µs per lifecycle, for both (the main
    thread is the limit: one core's worth of it is 1e6 µs per second). CPU only: the time the
    main thread waits for fsync (with `--redis-persistence always`) is in neither figure;
  - lifecycles/s with 1 and 2 servers, and how many servers would saturate one Redis:
    projected maximum / the rate of one server.

Placement, when `taskset` is there and the machine has two CPUs or more: redis-server (all its
threads) alone on the last CPU, the servers, wrk and this runner on the others (`--no-pin`: the
scheduler decides). On a 2-core machine that is redis-server on CPU 1 and everything else on
CPU 0, so two servers share one core with wrk: the 2-server rate then shows Redis's cost per
lifecycle with two clients and two subscribers, not twice the throughput, and the servers to
saturate Redis are counted from the rate of one server (the table says this).

The split of script time by operation (enqueue, dequeue, complete, the servers' reap) comes
from SLOWLOG, which logs every command only during the warm-ups. Commandstats and SLOWLOG count
wall time inside a command, so on a CPU that redis-server shares with other processes they
include time it was preempted; the CPU figures do not. The last line says how much of the
machine other processes took during the run (see bench/backends.py): above 5 % the figures are
flagged as noisy.

Redis's durability is a flag, as in bench/backends.py: by default `--appendonly yes
--appendfsync always` (every write on disk before Redis answers). Rounds alternate the server
counts (1, 2, 1, 2, ...); the table shows medians over rounds. It prints a table and writes
bench/results/redis_capacity.json (redis_capacity-smoke.json with --smoke, or `--output FILE`).
The defaults (8 s runs, 2 rounds, 1 and 2 servers) take under a minute. Exit status 1 only when
a run failed (a wrk error or unexpected answer, a process that did not start).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from backends import (
    PERSISTENCE,
    MachineShare,
    backend_flags,
    machine_line,
    redis_persistence_in_force,
    start_redis,
)
from http_bench import (
    ROOT,
    WORKLOADS_BY_NAME,
    App,
    Pinning,
    Plan,
    ensure_wrk,
    run_facts,
    run_wrk,
    write_report,
)

RESULTS = ROOT / "bench" / "results"
LIFECYCLE = WORKLOADS_BY_NAME["lifecycle"]
SCRIPT_COMMANDS = ("cmdstat_fcall", "cmdstat_evalsha", "cmdstat_eval")
PUBLISH = "cmdstat_publish"
WARMUP_SECONDS = 1
SLOWLOG_ENTRIES = 4096
"""The last commands of the warm-up kept for the split of script time by operation."""


def placement(enabled: bool) -> tuple[Pinning, str]:
    """(servers and wrk, redis-server's CPU): redis-server alone on the last CPU."""
    cpus = os.cpu_count() or 1
    if not enabled or shutil.which("taskset") is None or cpus < 2:
        return Pinning(), ""
    others = "0" if cpus == 2 else f"0-{cpus - 2}"
    return Pinning(app=others, load=others), str(cpus - 1)


def snapshot(client: redis.Redis) -> dict[str, Any]:
    """Redis's counters now: commandstats, CPU seconds, forks (AOF rewrites), AOF size."""
    return {
        "at": time.perf_counter(),
        "commandstats": client.info("commandstats"),
        "cpu": client.info("cpu"),
        "forks": client.info("stats").get("total_forks", 0),
        "aof_bytes": client.info("persistence").get("aof_current_size", 0),
    }


def difference(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    commands: dict[str, dict[str, int]] = {}
    for name, stats in after["commandstats"].items():
        old = before["commandstats"].get(name, {"calls": 0, "usec": 0})
        calls, usec = stats["calls"] - old["calls"], stats["usec"] - old["usec"]
        if calls:
            commands[name] = {"calls": calls, "usec": usec}

    def cpu(info: dict[str, Any], suffix: str = "") -> float:
        return float(info[f"used_cpu_user{suffix}"]) + float(info[f"used_cpu_sys{suffix}"])

    main_key = "used_cpu_user_main_thread"
    suffix = "_main_thread" if main_key in after["cpu"] else ""
    return {
        "wall_seconds": after["at"] - before["at"],
        "commands": commands,
        "cpu_seconds": cpu(after["cpu"]) - cpu(before["cpu"]),
        "main_thread_cpu_seconds": cpu(after["cpu"], suffix) - cpu(before["cpu"], suffix),
        "forks": after["forks"] - before["forks"],
        "aof_bytes": after["aof_bytes"] - before["aof_bytes"],
    }


def per_lifecycle(delta: dict[str, Any], lifecycles: int, servers: int, rate: float) -> dict:
    """The figures the table shows, from Redis's counters over one timed run."""
    commands = delta["commands"]
    script_calls = sum(commands.get(name, {}).get("calls", 0) for name in SCRIPT_COMMANDS)
    script_usec = sum(commands.get(name, {}).get("usec", 0) for name in SCRIPT_COMMANDS)
    publishes = commands.get(PUBLISH, {}).get("calls", 0)
    publish_usec = commands.get(PUBLISH, {}).get("usec", 0)
    done = max(lifecycles, 1)
    # a PUBLISH runs inside the script call, so its time is part of the script's already
    command_usec = script_usec / done
    cpu_usec = 1e6 * delta["main_thread_cpu_seconds"] / done
    return {
        "servers": servers,
        "lifecycles": lifecycles,
        "lifecycles_per_s": rate,
        "lifecycles_per_s_per_server": rate / servers,
        "script_calls_per_lifecycle": script_calls / done,
        "usec_per_script_call": script_usec / max(script_calls, 1),
        "publishes_per_lifecycle": publishes / done,
        "usec_per_publish": publish_usec / max(publishes, 1),
        "command_usec_per_lifecycle": command_usec,
        "cpu_usec_per_lifecycle": cpu_usec,
        "process_cpu_usec_per_lifecycle": 1e6 * delta["cpu_seconds"] / done,
        "redis_main_thread_busy": delta["main_thread_cpu_seconds"] / delta["wall_seconds"],
        # Redis may rewrite (shrink) its append-only file during a run: no figure then
        "aof_bytes_per_lifecycle": delta["aof_bytes"] / done if delta["aof_bytes"] >= 0 else None,
        "projected_max_by_commands": 1e6 / command_usec if command_usec else None,
        "projected_max_by_cpu": 1e6 / cpu_usec if cpu_usec else None,
        "forks_during_run": delta["forks"],
    }


def slowlog_on(client: redis.Redis) -> dict[str, str]:
    """Log every command with its duration (for the per-operation split); the old settings."""
    old: dict[str, str] = {}
    for name in ("slowlog-log-slower-than", "slowlog-max-len"):
        old.update(client.config_get(name))
    client.config_set("slowlog-max-len", SLOWLOG_ENTRIES)
    client.config_set("slowlog-log-slower-than", 0)
    client.slowlog_reset()
    return old


def slowlog_split(client: redis.Redis, old: dict[str, str]) -> dict[str, dict[str, float]]:
    """µs per call of each script operation (its first argument) and of PUBLISH, from the
    commands logged since `slowlog_on`; the old settings are put back."""
    entries = client.slowlog_get(SLOWLOG_ENTRIES)
    for name, value in old.items():
        client.config_set(name, value)
    client.slowlog_reset()
    durations: dict[str, list[int]] = {}
    for entry in entries:
        words = entry["command"].split(b" ")
        name = words[0].decode().lower()
        if name in ("fcall", "evalsha", "eval") and len(words) > 4:
            name = words[4].decode()  # FCALL name (EVALSHA sha) numkeys key OP ...
        elif name != "publish":
            continue
        durations.setdefault(name, []).append(int(entry["duration"]))
    return {
        name: {"calls": len(values), "usec_per_call": statistics.fmean(values)}
        for name, values in sorted(durations.items())
    }


def drive(plan: Plan, urls: list[str], connections: int) -> list[dict[str, Any]]:
    """One wrk per server, all at once; their results in the order of `urls`."""
    with ThreadPoolExecutor(len(urls)) as pool:
        return list(pool.map(lambda url: run_wrk(plan, LIFECYCLE, url, connections), urls))


def bench_servers(
    plan: Plan, redis_url: str, scratch: Path, *, servers: int, connections: int, label: str
) -> dict[str, Any]:
    """`servers` fresh servers on the Redis at `redis_url`, warmed up, then one timed run."""
    flags = [*plan.server_flags, *backend_flags("redis", scratch, redis_url, "{" + label + "}")]
    apps = [
        App(f"server-{n}", ROOT / "main.py", flags, scratch / f"{label}-{n}.log", plan.pinning)
        for n in range(servers)
    ]
    client = redis.Redis.from_url(redis_url)
    try:
        urls = [app.wait_until_listening() for app in apps]
        # The warm-up (not counted) also gives the split by operation: logging every command
        # costs Redis a little, so it is off again for the timed run.
        old = slowlog_on(client)
        warmup = drive(replace(plan, seconds=WARMUP_SECONDS), urls, connections)
        by_operation = slowlog_split(client, old)
        failures = [result["failure"] for result in warmup if "failure" in result]
        if failures:
            return {"servers": servers, "failure": f"warm-up: {failures[0]}"}
        before = snapshot(client)
        results = drive(plan, urls, connections)
        after = snapshot(client)
    except (OSError, RuntimeError, redis.RedisError) as error:
        return {"servers": servers, "failure": f"{type(error).__name__}: {error}"}
    finally:
        client.close()
        for app in apps:
            app.stop()
    failures = [result["failure"] for result in results if "failure" in result]
    if failures:
        return {"servers": servers, "failure": failures[0], "wrk": results}
    lifecycles = sum(result["tasks"] for result in results)
    rate = sum(result["tasks_per_s"] for result in results)
    delta = difference(before, after)
    return {
        **per_lifecycle(delta, lifecycles, servers, rate),
        "usec_by_operation_in_warmup": by_operation,
        "redis_delta": delta,
        "wrk": results,
    }


def median_of(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def summarize(by_servers: dict[int, list[dict[str, Any]]]) -> dict[str, Any]:
    """Medians per server count, the projections, and the servers that saturate one Redis."""
    keys = (
        "lifecycles_per_s",
        "lifecycles_per_s_per_server",
        "script_calls_per_lifecycle",
        "usec_per_script_call",
        "publishes_per_lifecycle",
        "usec_per_publish",
        "command_usec_per_lifecycle",
        "cpu_usec_per_lifecycle",
        "process_cpu_usec_per_lifecycle",
        "redis_main_thread_busy",
        "aof_bytes_per_lifecycle",
        "projected_max_by_commands",
        "projected_max_by_cpu",
    )
    medians = {
        servers: {key: median_of(runs, key) for key in keys}
        for servers, runs in by_servers.items()
        if runs and not any("failure" in run for run in runs)
    }
    summary: dict[str, Any] = {"by_servers": medians}
    calls: dict[str, int] = {}
    usec: dict[str, float] = {}
    for runs in by_servers.values():
        for run in runs:
            for name, split in run.get("usec_by_operation_in_warmup", {}).items():
                calls[name] = calls.get(name, 0) + split["calls"]
                usec[name] = usec.get(name, 0.0) + split["calls"] * split["usec_per_call"]
    summary["usec_per_call_by_operation"] = {
        name: usec[name] / calls[name] for name in sorted(calls)
    }
    if 1 in medians:
        one = medians[1]
        per_server = one["lifecycles_per_s"] or 0.0
        # Redis's cost per lifecycle, from every run (it should not depend on the server count).
        every = [run for runs in by_servers.values() for run in runs if "failure" not in run]
        by_commands = median_of(every, "projected_max_by_commands")
        by_cpu = median_of(every, "projected_max_by_cpu")
        summary["one_server_lifecycles_per_s"] = per_server
        summary["projected_max_by_commands"] = by_commands
        summary["projected_max_by_cpu"] = by_cpu
        summary["servers_to_saturate_by_commands"] = (
            by_commands / per_server if by_commands and per_server else None
        )
        summary["servers_to_saturate_by_cpu"] = (
            by_cpu / per_server if by_cpu and per_server else None
        )
    return summary


def table(by_servers: dict[int, list[dict[str, Any]]], summary: dict[str, Any], where: str) -> str:
    header = (
        f"{'servers':>7} {'lifecycles/s':>12} {'per server':>10} {'scripts/lc':>10} "
        f"{'µs/script':>9} {'pub/lc':>6} {'µs/pub':>6} {'cmd µs/lc':>9} {'CPU µs/lc':>9} "
        f"{'Redis busy':>10} {'AOF B/lc':>8}"
    )
    lines = [where, header, "-" * len(header)]
    for servers, runs in by_servers.items():
        failed = next((run["failure"] for run in runs if "failure" in run), None)
        if failed:
            lines.append(f"{servers:>7} FAILED ({failed})")
            continue
        m = summary["by_servers"][servers]
        lines.append(
            f"{servers:>7} {m['lifecycles_per_s']:>12,.0f} "
            f"{m['lifecycles_per_s_per_server']:>10,.0f} "
            f"{m['script_calls_per_lifecycle']:>10.2f} {m['usec_per_script_call']:>9.1f} "
            f"{m['publishes_per_lifecycle']:>6.2f} {m['usec_per_publish']:>6.1f} "
            f"{m['command_usec_per_lifecycle']:>9.1f} {m['cpu_usec_per_lifecycle']:>9.1f} "
            f"{100 * m['redis_main_thread_busy']:>9.0f}% "
            + (f"{aof:>8,.0f}" if (aof := m["aof_bytes_per_lifecycle"]) is not None else "       –")
        )
    split = summary["usec_per_call_by_operation"]
    if split:
        lines += [
            "",
            "µs per call by operation (warm-ups, from SLOWLOG): "
            + ", ".join(f"{name} {value:.1f}" for name, value in split.items()),
        ]
    if summary.get("projected_max_by_cpu"):
        lines += [
            "",
            "one Redis, projected maximum lifecycles/s (1e6 / µs per lifecycle): "
            f"{summary['projected_max_by_commands']:,.0f} by command time "
            "(store code with its publishes), "
            f"{summary['projected_max_by_cpu']:,.0f} by redis-server main-thread CPU",
            f"servers that would saturate it at {summary['one_server_lifecycles_per_s']:,.0f} "
            f"lifecycles/s each (the 1-server rate): "
            f"{summary['servers_to_saturate_by_commands']:.1f} by command time, "
            f"{summary['servers_to_saturate_by_cpu']:.1f} by CPU",
        ]
    return "\n".join(lines)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=8, help="duration of each timed run")
    parser.add_argument("--rounds", type=int, default=2, help="runs per server count")
    parser.add_argument("--servers", default="1,2", help="comma-separated server counts")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections per server")
    parser.add_argument(
        "--redis-persistence",
        choices=sorted(PERSISTENCE),
        default="always",
        help="always: AOF fsynced before every answer (default); everysec; none",
    )
    parser.add_argument(
        "--server-flags",
        default="",
        help='extra flags for every server, e.g. "--log-level warning"',
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to CPUs")
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON (default bench/results/redis_capacity.json, "
        "redis_capacity-smoke.json with --smoke)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="1 s runs, one round: fails only on errors"
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds = 1, 1
    try:
        args.server_counts = [int(count) for count in args.servers.split(",")]
    except ValueError:
        parser.error("--servers takes comma-separated numbers, e.g. 1,2")
    if 1 not in args.server_counts or min(args.server_counts) < 1:
        parser.error("--servers must include 1 (the per-server rate comes from it)")
    if args.rounds < 1 or args.seconds < 1 or args.connections < 1:
        parser.error("--rounds, --seconds and --connections must be at least 1")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    pinning, redis_cpu = placement(not args.no_pin)
    plan = Plan(
        wrk=ensure_wrk(),
        seconds=args.seconds,
        connections=[args.connections],
        workloads=[LIFECYCLE],
        server_flags=shlex.split(args.server_flags),
        pinning=pinning,
        longpoll_iterations=0,
        rounds=args.rounds,
    )
    if pinning.load:
        cpus = {int(cpu) for cpu in range(int(pinning.load.split("-")[-1]) + 1)}
        os.sched_setaffinity(0, cpus)  # the runner off Redis's core
    where = (
        f"redis-server on CPU {redis_cpu}, servers + wrk + runner on CPU {pinning.app}"
        if redis_cpu
        else "not pinned"
    ) + f"; Redis {PERSISTENCE[args.redis_persistence]}; {args.connections} connections/server"
    started = time.monotonic()
    load_before = os.getloadavg()
    share = MachineShare()
    by_servers: dict[int, list[dict[str, Any]]] = {n: [] for n in args.server_counts}
    with tempfile.TemporaryDirectory(prefix="tq-redis-capacity-") as scratch_dir:
        scratch = Path(scratch_dir)
        redis_server = start_redis(scratch / "redis", args.redis_persistence, redis_cpu)
        try:
            config = redis_persistence_in_force(redis_server.url)
            for number in range(args.rounds):
                for servers in args.server_counts:
                    label = f"cap-r{number}-s{servers}"
                    by_servers[servers].append(
                        bench_servers(
                            plan,
                            redis_server.url,
                            scratch,
                            servers=servers,
                            connections=args.connections,
                            label=label,
                        )
                    )
                    print(
                        f"  round {number + 1}/{args.rounds}: {servers} server(s) done",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            redis_server.stop()
    machine = share.report()
    summary = summarize(by_servers)
    print(table(by_servers, summary, where))
    print(machine_line(machine, load_before))
    report = {
        "meta": {
            "date": datetime.now(UTC).isoformat(),
            "smoke": args.smoke,
            "seconds_per_run": args.seconds,
            "warmup_seconds": WARMUP_SECONDS,
            "rounds": args.rounds,
            "connections_per_server": args.connections,
            "wrk": f"{plan.wrk} -t1 --timeout 10s, one per server",
            "server_flags": plan.server_flags,
            "redis_persistence": args.redis_persistence,
            "redis_flags": PERSISTENCE[args.redis_persistence],
            "redis_config_in_force": config,
            "pinning": {
                "redis_cpu": redis_cpu,
                "servers_wrk_runner_cpus": pinning.app,
            },
            "machine_share": machine,
            **run_facts(load_before, started),
        },
        "summary": summary,
        "runs": {str(servers): runs for servers, runs in by_servers.items()},
    }
    out: Path = args.output or RESULTS / (
        "redis_capacity-smoke.json" if args.smoke else "redis_capacity.json"
    )
    failed = [run for runs in by_servers.values() for run in runs if "failure" in run]
    return write_report(report, out, started, len(failed))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
