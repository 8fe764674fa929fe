"""HTTP benchmark: the real server against a floor app, alternated within one invocation.

(Not `bench/http.py`: a module of that name in bench/ would shadow the standard library's `http`
package for every script run from this directory, floor.py and stores.py included.)

    .venv/bin/python bench/http_bench.py [--seconds 3] [--rounds 3] [--connections 1,16,64]
                                   [--workloads enqueue,lifecycle,...] [--server-flags "..."]
    .venv/bin/python bench/http_bench.py --smoke      (about 15 s, for CI: fails only on errors)

For each workload and connection count it starts a fresh floor (`bench/floor.py`: the same routes,
the same JSON parsing and response shapes, no queue) and a fresh server (`main.py`, memory
backend, default flags: it logs every request as a user's server does; pass `--server-flags
"--log-level warning"` to see what the access log costs), prefills both through the batch
endpoint when the workload dequeues, then runs `wrk` on the floor and right after on the server.
The machine drifts 15-20 % between runs, so only these back-to-back ratios are worth
comparing. Fresh processes per run keep one run's queue and heap out of the next. The whole
grid is run `--rounds` times (rounds outermost); the table shows medians, and each ratio is the
median of the per-round ratios. The defaults (3 s runs, 3 rounds, 5 workloads, 3 connection
counts, 500 long-polls) take about 7 minutes.

wrk runs with ONE thread (`-t1`): the machine has two cores, and the Python server uses one, so
wrk gets the other. When `taskset` is there the apps are pinned to CPU 0 and wrk (and this
runner) to CPU 1, so that wrk and the app never share a core (`--no-pin` to let the scheduler
decide). A 1-thread wrk does ~30k+ requests/s with these scripts, far above the server: the load
generator is not the bottleneck.

Workloads (one Lua script each in bench/wrk/; see bench/wrk/common.lua for what they report):
  enqueue                 POST /tasks
  dequeue_complete        POST /tasks/dequeue, then PUT /tasks/{id}/complete?lease_id=
  lifecycle               enqueue, dequeue, complete (every task goes through all three)
  batch_enqueue           POST /tasks/batch, 100 tasks per request
  batch_dequeue_complete  POST /tasks/dequeue/batch?count=100, then POST /tasks/complete/batch

Then the long-poll wake-up: a consumer parks `POST /tasks/dequeue?wait=5` on one connection,
and once it is parked a producer sends `POST /tasks` on another; the time from just before the
enqueue is written to the socket until the consumer has read the whole 200 with that task is
one sample (raw sockets and `selectors` here, so no HTTP library sits in between; each response
is timestamped as soon as it is complete). The producer's own 201 is timed too, as the floor
the wake-up can be compared with.

It prints a table and writes bench/results/http.json (http-smoke.json with --smoke, or
`--output FILE`). Targets
are reported, never asserted, and judged at 16 connections: single-task
workloads >= 0.9x the floor's req/s with a p99 <= 1.5x the floor's, batch enqueue >= 50,000
tasks/s, batch dequeue + complete >= 25,000 tasks/s, long-poll wake-up p99 <= 5 ms.
Exit status 1 only when a run failed: a wrk error, a non-2xx or unexpected answer, a dequeue
that found the queue empty (prefill too small), or no requests at all.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import re
import selectors
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
RESULTS = BENCH / "results"
SCRIPTS = BENCH / "wrk"
LISTENING = re.compile(r"listening on (http://\S+)")
BENCH_LINE = re.compile(r"^BENCH_JSON (\{.*\})$", re.MULTILINE)
PAYLOAD = {"job": "send_email", "to": "user@example.com"}
PREFILL_BATCH = 1000
TARGET_CONNECTIONS = 16


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    single_task: bool
    """A single-task workload is held to the floor's req/s and p99 (see the module docstring)."""
    min_tasks_per_second: float | None = None
    prefill_rate: float = 0.0
    """Tasks per second the first run is prefilled for (0: the workload does not dequeue)."""

    @property
    def script(self) -> Path:
        return SCRIPTS / f"{self.name}.lua"


WORKLOADS = (
    Workload("enqueue", "enqueue", single_task=True),
    Workload("dequeue_complete", "dequeue + complete", single_task=True, prefill_rate=4_000),
    Workload("lifecycle", "lifecycle", single_task=True),
    Workload("batch_enqueue", "batch enqueue (100)", single_task=False, min_tasks_per_second=50e3),
    Workload(
        "batch_dequeue_complete",
        "batch deq + batch compl (100)",
        single_task=False,
        min_tasks_per_second=25e3,
        prefill_rate=100_000,  # the memory server does up to ~70k tasks/s here
    ),
)
WORKLOADS_BY_NAME = {workload.name: workload for workload in WORKLOADS}


# --- processes -------------------------------------------------------------------------------


def app_python() -> str:
    """The interpreter for the apps: the project's venv when there is one, so that
    `python3 bench/http_bench.py` works too (this runner itself needs only the standard library)."""
    venv = ROOT / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


@dataclass
class Pinning:
    """Which CPUs the apps and the load generator run on (empty: the scheduler decides)."""

    app: str = ""
    load: str = ""

    def prefix(self, cpus: str) -> list[str]:
        return ["taskset", "-c", cpus] if cpus else []

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        if not enabled or shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
            return cls()
        return cls(app="0", load="1")


class App:
    """`python SCRIPT --port 0 FLAGS…` (main.py or bench/floor.py) logging to a file; its URL is
    read from the "listening on" line both write."""

    def __init__(
        self, kind: str, script: Path, flags: list[str], log_path: Path, pinning: Pinning
    ) -> None:
        self.kind = kind
        self.log_path = log_path
        self._log = log_path.open("w")
        command = [*pinning.prefix(pinning.app), app_python(), str(script), "--port", "0", *flags]
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        self.url = ""

    def wait_until_listening(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            match = LISTENING.search(self.log_path.read_text())
            if match:
                self.url = match.group(1)
                return self.url
            time.sleep(0.02)
        self.stop()
        tail = self.log_path.read_text()[-2000:]
        raise RuntimeError(f"{self.kind} did not start listening:\n{tail}")

    def rss_mib(self) -> float | None:
        """Resident memory, read from /proc (Linux only)."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        match = re.search(r"VmRSS:\s+(\d+) kB", status)
        return int(match.group(1)) / 1024 if match else None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self._log.close()


def start_pair(scratch: Path, label: str, server_flags: list[str], pinning: Pinning) -> list[App]:
    """A fresh floor and a fresh server, started together to halve the waiting."""
    floor = App("floor", BENCH / "floor.py", [], scratch / f"{label}-floor.log", pinning)
    server = App("server", ROOT / "main.py", server_flags, scratch / f"{label}-server.log", pinning)
    try:
        floor.wait_until_listening()
        server.wait_until_listening()
    except Exception:
        floor.stop()
        server.stop()
        raise
    return [floor, server]


def ensure_wrk() -> str:
    """wrk's path, installing Debian's package (with LuaJIT) when missing and we are root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench/http_bench.py: installing wrk (apt-get)", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "wrk"],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
            timeout=600,
        )
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit(
        "bench/http_bench.py needs wrk (the HTTP load generator, with Lua scripting); install it "
        "(Debian/Ubuntu: sudo apt-get install wrk; macOS: brew install wrk)"
    )


# --- load ------------------------------------------------------------------------------------


def prefill(url: str, count: int) -> float:
    """Put `count` pending tasks in the queue through POST /tasks/batch; seconds it took."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    batch = json.dumps({"tasks": [{"payload": PAYLOAD}] * PREFILL_BATCH}).encode()
    started = time.perf_counter()
    try:
        for offset in range(0, count, PREFILL_BATCH):
            size = min(PREFILL_BATCH, count - offset)
            body = (
                batch
                if size == PREFILL_BATCH
                else json.dumps({"tasks": [{"payload": PAYLOAD}] * size}).encode()
            )
            connection.request("POST", "/tasks/batch", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 201:
                raise RuntimeError(f"prefill of {url} answered {response.status}")
    finally:
        connection.close()
    return time.perf_counter() - started


def run_wrk(plan: Plan, workload: Workload, url: str, connections: int) -> dict[str, Any]:
    """One wrk run; the script's BENCH_JSON line plus rates, or {"failure": why}."""
    seconds = plan.seconds
    command = [
        *plan.pinning.prefix(plan.pinning.load),
        *(plan.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s"),
        *("-s", str(workload.script), url),
    ]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 60, check=False
        )
    except subprocess.TimeoutExpired:
        return {"failure": f"wrk did not finish within {seconds + 60} s"}
    match = BENCH_LINE.search(done.stdout)
    if done.returncode != 0 or not match:
        return {"failure": f"wrk exited {done.returncode}: {(done.stderr or done.stdout)[-500:]}"}
    result: dict[str, Any] = json.loads(match.group(1))
    elapsed = result["duration_us"] / 1e6
    result["req_per_s"] = result["requests"] / elapsed
    result["tasks_per_s"] = result["tasks"] / elapsed
    problems = [f"{kind} errors: {n}" for kind, n in result["errors"].items() if n]
    if result["unexpected"]:
        problems.append(f"unexpected answers: {result['unexpected']}")
    if result["empty"]:
        problems.append(f"empty queue on dequeue: {result['empty']} (prefill too small)")
    if result["requests"] == 0:
        problems.append("no requests")
    if problems:
        result["failure"] = "; ".join(problems)
    return result


@dataclass
class Pair:
    """One round of one workload at one connection count: a floor run, then a server run."""

    floor: dict[str, Any]
    server: dict[str, Any]
    prefill_tasks: int = 0
    server_rss_mib: float | None = None

    @property
    def failure(self) -> str | None:
        for kind, result in (("floor", self.floor), ("server", self.server)):
            if "failure" in result:
                return f"{kind}: {result['failure']}"
        return None

    def as_json(self) -> dict[str, Any]:
        return {
            "prefill_tasks": self.prefill_tasks,
            "floor": self.floor,
            "server": self.server,
            "server_rss_mib_after": self.server_rss_mib,
        }


@dataclass
class Row:
    """A workload at one connection count over every round: medians, and ratios taken within
    each round (floor and server back to back) before the median, so drift between rounds
    cancels out."""

    workload: Workload
    connections: int
    rounds: list[Pair] = field(default_factory=list)

    @property
    def failure(self) -> str | None:
        return next((pair.failure for pair in self.rounds if pair.failure), None)

    def median(self, app: str, *keys: str) -> float:
        values = []
        for pair in self.rounds:
            value: Any = getattr(pair, app)
            for key in keys:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    def ratio(self) -> float:
        return statistics.median(
            pair.server["req_per_s"] / pair.floor["req_per_s"] for pair in self.rounds
        )

    def p99_ratio(self) -> float:
        return statistics.median(
            pair.server["latency_us"]["p99"] / max(pair.floor["latency_us"]["p99"], 1)
            for pair in self.rounds
        )

    def target(self) -> dict[str, Any] | None:
        """What the targets ask of this row, and whether it was met; None if it asks nothing."""
        if self.connections != TARGET_CONNECTIONS or self.failure:
            return None
        if self.workload.single_task:
            met = self.ratio() >= 0.9 and self.p99_ratio() <= 1.5
            return {"wanted": "req/s >= 0.9x floor and p99 <= 1.5x floor", "met": met}
        wanted = self.workload.min_tasks_per_second or 0.0
        met = self.median("server", "tasks_per_s") >= wanted
        return {"wanted": f"tasks/s >= {wanted:,.0f}", "met": met}

    def as_json(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"workload": self.workload.name, "connections": self.connections}
        if self.failure:
            summary["failure"] = self.failure
        else:
            for app in ("floor", "server"):
                summary[app] = {
                    "req_per_s": self.median(app, "req_per_s"),
                    "tasks_per_s": self.median(app, "tasks_per_s"),
                    "p50_us": self.median(app, "latency_us", "p50"),
                    "p99_us": self.median(app, "latency_us", "p99"),
                }
            summary["ratio"] = self.ratio()
            summary["p99_ratio"] = self.p99_ratio()
            summary["target"] = self.target()
        summary["rounds"] = [pair.as_json() for pair in self.rounds]
        return summary


@dataclass
class Plan:
    wrk: str
    seconds: int
    connections: list[int]
    workloads: list[Workload]
    server_flags: list[str]
    pinning: Pinning
    longpoll_iterations: int
    rounds: int
    prefill_rates: dict[str, float] = field(default_factory=dict)


def bench_pair(plan: Plan, scratch: Path, workload: Workload, connections: int) -> Pair:
    """Floor then server, each fresh, each prefilled alike when the workload dequeues."""
    # Enough for the run at the best rate seen so far for this workload, with margin; the
    # queue running dry shows as "empty" and fails the run rather than skewing it.
    rate = plan.prefill_rates.get(workload.name, workload.prefill_rate)
    count = math.ceil(rate * (plan.seconds + 1) / PREFILL_BATCH) * PREFILL_BATCH if rate else 0
    label = f"{workload.name}-c{connections}"
    floor, server = start_pair(scratch, label, plan.server_flags, plan.pinning)
    try:
        results = []
        for app in (floor, server):
            try:
                if count:
                    prefill(app.url, count)
            except (OSError, RuntimeError, http.client.HTTPException) as error:
                results.append({"failure": f"prefill: {type(error).__name__}: {error}"})
                continue
            results.append(run_wrk(plan, workload, app.url, connections))
        pair = Pair(results[0], results[1], count, server.rss_mib())
    finally:
        floor.stop()
        server.stop()
    if workload.prefill_rate and "tasks_per_s" in pair.server:
        seen = max(pair.server["tasks_per_s"], pair.floor.get("tasks_per_s", 0.0))
        plan.prefill_rates[workload.name] = max(rate, 1.5 * seen)
    return pair


# --- long-poll wake-up -----------------------------------------------------------------------


class RawResponse:
    """Just enough HTTP/1.1 response parsing for Content-Length answers on one socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.status = 0
        self.body = b""
        self.completed_at = 0.0

    def feed(self) -> bool:
        """Read what is there; True once a whole response is in (timestamped then)."""
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk
        head, sep, rest = self.buffer.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        size = int(length.group(1)) if length else 0
        if len(rest) < size:
            return False
        self.completed_at = time.perf_counter()
        self.status = int(head.split(b" ", 2)[1])
        self.body = rest[:size]
        return True


def read_responses(responses: list[RawResponse], timeout: float) -> None:
    """Read every response to its end, each timestamped the moment it completes."""
    with selectors.DefaultSelector() as selector:
        for response in responses:
            selector.register(response.sock, selectors.EVENT_READ, response)
        deadline = time.monotonic() + timeout
        waiting = len(responses)
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no answer within the time limit")
            for key, _ in selector.select(remaining):
                response: RawResponse = key.data
                if response.feed():
                    selector.unregister(response.sock)
                    waiting -= 1


def percentile(samples: list[float], pct: float) -> float:
    """Nearest-rank percentile (the p99 of 500 samples is the 495th smallest)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


def address_of(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def latency_summary(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": 1000 * percentile(samples, 50),
        "p99_ms": 1000 * percentile(samples, 99),
        "max_ms": 1000 * max(samples),
    }


def wakeups(
    producer_url: str,
    consumer_url: str,
    iterations: int,
    *,
    warmup: int = 0,
    park_seconds: float = 0.005,
) -> dict[str, Any]:
    """Park a consumer on `consumer_url`, enqueue on `producer_url` (the same server or
    another), time until the consumer has the task; the first `warmup` samples are not kept.
    `park_seconds`: the time the dequeue is given to reach the server and park."""
    producer_host = "Host: {}:{}\r\n".format(*address_of(producer_url))
    consumer_host = "Host: {}:{}\r\n".format(*address_of(consumer_url))
    park = f"POST /tasks/dequeue?wait=5 HTTP/1.1\r\n{consumer_host}Content-Length: 0\r\n\r\n"
    body = json.dumps({"payload": PAYLOAD}).encode()
    enqueue = (
        f"POST /tasks HTTP/1.1\r\n{producer_host}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    woken_after: list[float] = []
    enqueued_after: list[float] = []
    woken_after_201: list[float] = []
    with (
        socket.create_connection(address_of(consumer_url), timeout=10) as consumer,
        socket.create_connection(address_of(producer_url), timeout=10) as producer,
    ):
        for sock in (consumer, producer):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for number in range(warmup + iterations):
            consumer.sendall(park.encode())
            # Give the server time to read the dequeue and park it; anything readable now
            # would be an answer to a dequeue that did not wait (the queue must be empty).
            with selectors.DefaultSelector() as selector:
                selector.register(consumer, selectors.EVENT_READ)
                if selector.select(park_seconds):
                    raise RuntimeError("the dequeue was answered before any enqueue")
            woken, enqueued = RawResponse(consumer), RawResponse(producer)
            sent = time.perf_counter()
            producer.sendall(enqueue)
            read_responses([woken, enqueued], timeout=10)
            if enqueued.status != 201 or woken.status != 200:
                raise RuntimeError(f"enqueue answered {enqueued.status}, dequeue {woken.status}")
            if json.loads(woken.body)["id"] != json.loads(enqueued.body)["id"]:
                raise RuntimeError("the woken consumer got another task than the one enqueued")
            if number >= warmup:
                woken_after.append(woken.completed_at - sent)
                enqueued_after.append(enqueued.completed_at - sent)
                woken_after_201.append(woken.completed_at - enqueued.completed_at)
    return {
        "iterations": iterations,
        "wakeup": latency_summary(woken_after),
        "enqueue_round_trip": latency_summary(enqueued_after),
        "wakeup_minus_enqueue_round_trip": latency_summary(woken_after_201),
    }


def long_poll_wakeup(url: str, iterations: int) -> dict[str, Any]:
    """The wake-up on one server (see the module docstring), against its target."""
    measured = wakeups(url, url, iterations)
    wake = measured["wakeup"]
    return {
        "iterations": iterations,
        "wakeup": wake,
        "enqueue_round_trip": measured["enqueue_round_trip"],
        "target": {"wanted": "wake-up p99 <= 5 ms", "met": wake["p99_ms"] <= 5.0},
    }


def bench_long_poll(plan: Plan, scratch: Path) -> dict[str, Any]:
    server = App("server", ROOT / "main.py", plan.server_flags, scratch / "lp.log", plan.pinning)
    try:
        server.wait_until_listening()
        return long_poll_wakeup(server.url, plan.longpoll_iterations)
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        return {"failure": f"{type(error).__name__}: {error}"}
    finally:
        server.stop()


# --- report ----------------------------------------------------------------------------------


def table(rows: list[Row]) -> str:
    header = (
        f"{'workload':<30} {'conn':>4} {'floor req/s':>11} {'server req/s':>12} {'ratio':>6} "
        f"{'tasks/s':>9} {'floor p50/p99 ms':>16} {'server p50/p99 ms':>17} {'p99 ratio':>9}"
        "  target"
    )
    lines = [header, "-" * len(header)]
    for row in rows:
        first = f"{row.workload.title:<30} {row.connections:>4}"
        if row.failure:
            lines.append(f"{first} FAILED ({row.failure})")
            continue
        target = row.target()
        verdict = "" if target is None else ("met" if target["met"] else "NOT met")
        floor_ms = f"{row.median('floor', 'latency_us', 'p50') / 1000:.1f} / " + (
            f"{row.median('floor', 'latency_us', 'p99') / 1000:.1f}"
        )
        server_ms = f"{row.median('server', 'latency_us', 'p50') / 1000:.1f} / " + (
            f"{row.median('server', 'latency_us', 'p99') / 1000:.1f}"
        )
        lines.append(
            f"{first} {row.median('floor', 'req_per_s'):>11,.0f} "
            f"{row.median('server', 'req_per_s'):>12,.0f} {row.ratio():>6.2f} "
            f"{row.median('server', 'tasks_per_s'):>9,.0f} {floor_ms:>16} {server_ms:>17} "
            f"{row.p99_ratio():>9.2f}  {verdict}"
        )
    return "\n".join(lines)


def long_poll_line(result: dict[str, Any]) -> str:
    if "failure" in result:
        return f"long-poll wake-up: FAILED: {result['failure']}"
    wake, enqueue = result["wakeup"], result["enqueue_round_trip"]
    verdict = "met" if result["target"]["met"] else "NOT met"
    return (
        f"long-poll wake-up ({result['iterations']} iterations): p50 {wake['p50_ms']:.2f} ms, "
        f"p99 {wake['p99_ms']:.2f} ms, max {wake['max_ms']:.2f} ms (target p99 <= 5 ms: "
        f"{verdict}); the enqueue's own round trip: p50 {enqueue['p50_ms']:.2f} ms, "
        f"p99 {enqueue['p99_ms']:.2f} ms"
    )


def git_commit() -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def tornado_version() -> str:
    done = subprocess.run(
        [app_python(), "-c", "import tornado; print(tornado.version)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return done.stdout.strip()


def run_facts(load_before: tuple[float, ...], started: float) -> dict[str, Any]:
    """What a report's meta says of the machine and the code a run measured."""
    return {
        "cpus": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "python": platform.python_version(),
        "tornado": tornado_version(),
        "commit": git_commit(),
        "wall_seconds": time.monotonic() - started,
    }


def write_report(report: dict[str, Any], out: Path, started: float, failed: int) -> int:
    """Write `report` as JSON to `out` and say so; the exit status: 1 when `failed` runs."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out} in {time.monotonic() - started:.0f} s")
    if failed:
        script = Path(sys.argv[0]).name
        print(f"bench/{script}: {failed} run(s) FAILED (see above)", file=sys.stderr)
        return 1
    return 0


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=3, help="duration of each wrk run")
    parser.add_argument(
        "--rounds", type=int, default=3, help="floor/server pairs per row (medians reported)"
    )
    parser.add_argument("--connections", default="1,16,64", help="comma-separated counts")
    parser.add_argument(
        "--workloads",
        default=",".join(WORKLOADS_BY_NAME),
        help=f"comma-separated, from: {', '.join(WORKLOADS_BY_NAME)}",
    )
    parser.add_argument(
        "--server-flags", default="", help='extra flags for main.py, e.g. "--log-level warning"'
    )
    parser.add_argument(
        "--output",
        type=Path,
        help="where to write the JSON (default bench/results/http.json, "
        "http-smoke.json with --smoke); give partial or A/B runs their own file",
    )
    parser.add_argument("--long-poll-iterations", type=int, default=500)
    parser.add_argument("--no-long-poll", action="store_true", help="skip the wake-up test")
    parser.add_argument("--no-pin", action="store_true", help="do not pin apps and wrk to CPUs")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="CI smoke: 1 s runs at 16 connections, every workload once, 20 long-polls; "
        "fails only on errors",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.seconds, args.rounds, args.connections, args.long_poll_iterations = 1, 1, "16", 20
        args.workloads = ",".join(WORKLOADS_BY_NAME)
    unknown = set(args.workloads.split(",")) - set(WORKLOADS_BY_NAME)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.seconds < 1:
        parser.error("--seconds must be at least 1 (wrk counts whole seconds)")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    plan = Plan(
        wrk=ensure_wrk(),
        seconds=args.seconds,
        connections=[int(count) for count in args.connections.split(",")],
        workloads=[WORKLOADS_BY_NAME[name] for name in args.workloads.split(",")],
        server_flags=shlex.split(args.server_flags),
        pinning=Pinning.choose(not args.no_pin),
        longpoll_iterations=args.long_poll_iterations,
        rounds=args.rounds,
    )
    if plan.pinning.load:
        os.sched_setaffinity(0, {int(plan.pinning.load)})  # the runner is a client too
    started = time.monotonic()
    load_before = os.getloadavg()
    rows = [Row(w, c) for w in plan.workloads for c in plan.connections]
    with tempfile.TemporaryDirectory(prefix="tq-bench-") as scratch:
        # Rounds outermost: a noisy spell (another process, CPU steal) hits one round of many
        # rows rather than every round of one row.
        for number in range(plan.rounds):
            for row in rows:
                row.rounds.append(bench_pair(plan, Path(scratch), row.workload, row.connections))
                print(
                    f"  round {number + 1}/{plan.rounds}: {row.workload.name} "
                    f"c={row.connections} done",
                    file=sys.stderr,
                    flush=True,
                )
        long_poll = {"skipped": True} if args.no_long_poll else bench_long_poll(plan, Path(scratch))
    print(table(rows))
    if "skipped" not in long_poll:
        print(long_poll_line(long_poll))
    report = {
        "meta": {
            "date": datetime.now(UTC).isoformat(),
            "smoke": args.smoke,
            "seconds_per_run": plan.seconds,
            "rounds": plan.rounds,
            "wrk": f"{plan.wrk} -t1 --timeout 10s",
            "server_flags": plan.server_flags,
            "pinning": {"apps_cpu": plan.pinning.app, "wrk_cpu": plan.pinning.load},
            **run_facts(load_before, started),
        },
        "rows": [row.as_json() for row in rows],
        "long_poll": long_poll,
    }
    out: Path = args.output or RESULTS / ("http-smoke.json" if args.smoke else "http.json")
    failed = [row for row in rows if row.failure] + ([long_poll] if "failure" in long_poll else [])
    return write_report(report, out, started, len(failed))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
