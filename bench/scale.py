"""Scale check of the memory store: memory per pending task, and whether stats and dequeue
stay as fast with a million tasks waiting as with a thousand.

    .venv/bin/python bench/scale.py [--sizes 1000,100000,1000000] [--smoke]

Each size runs in a fresh child process (so RSS is that size's alone): it fills a store with
`size` pending tasks whose payload is {"job": "send_email", "to": "user@example.com"} (a
distinct bytes object per task, as tasks arriving over HTTP have), reports RSS and bytes per
task over the empty store's RSS, then times `stats()` and `dequeue()` (median and p99 of
single calls, in µs). Results go to bench/results/scale.json. Targets: 1M pending
tasks in <= 500 MB RSS; stats and dequeue latency at 1M within 1.2x of at 1k.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado_queue.models import NewTask
from tornado_queue.storage import MemoryStore

RESULTS = Path(__file__).resolve().parent / "results"
PAYLOAD = b'{"job":"send_email","to":"user@example.com"}'
CALLS = 20_000
BATCH = 10_000
RSS_TARGET_MB = 500
LATENCY_RATIO_TARGET = 1.2


def rss_bytes() -> int:
    """Resident set size of this process, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def timed_calls(call, count: int) -> dict[str, float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - started)
    samples.sort()
    return {
        "p50_us": statistics.median(samples) / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
    }


def child(size: int) -> dict[str, float]:
    """Fill one store with `size` tasks and measure it (runs in its own process)."""
    store = MemoryStore()
    gc.collect()
    empty = rss_bytes()
    for start in range(0, size, BATCH):
        count = min(BATCH, size - start)
        # bytes(bytearray(...)) makes a distinct payload object per task, as HTTP requests do.
        store.enqueue_many([NewTask(bytes(bytearray(PAYLOAD))) for _ in range(count)])
    gc.collect()
    filled = rss_bytes()
    stats = timed_calls(store.stats, CALLS)
    calls = min(CALLS, size)
    dequeue = timed_calls(store.dequeue, calls)
    return {
        "size": size,
        "rss_mb": filled / 2**20,
        "bytes_per_task": (filled - empty) / size,
        "stats_p50_us": stats["p50_us"],
        "stats_p99_us": stats["p99_us"],
        "dequeue_p50_us": dequeue["p50_us"],
        "dequeue_p99_us": dequeue["p99_us"],
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--smoke", action="store_true", help="1k and 10k tasks, for CI")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child)))
        return 0
    sizes = [1000, 10_000] if args.smoke else [int(size) for size in args.sizes.split(",")]
    rows = []
    for size in sizes:
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(size)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
        rows.append(json.loads(output))
    print(
        f"{'pending':>10} {'RSS MB':>8} {'bytes/task':>11} {'stats p50/p99 µs':>18} "
        f"{'dequeue p50/p99 µs':>20}"
    )
    for row in rows:
        print(
            f"{row['size']:>10,} {row['rss_mb']:>8.0f} {row['bytes_per_task']:>11.0f} "
            f"{row['stats_p50_us']:>8.2f} / {row['stats_p99_us']:<7.2f} "
            f"{row['dequeue_p50_us']:>9.2f} / {row['dequeue_p99_us']:<7.2f}"
        )
    smallest, largest = rows[0], rows[-1]
    verdicts = {}
    if largest["size"] >= 1_000_000:
        verdicts["rss_1m_mb"] = largest["rss_mb"] <= RSS_TARGET_MB
    for name in ("stats_p50_us", "dequeue_p50_us"):
        ratio = largest[name] / smallest[name]
        verdicts[f"{name}_ratio"] = ratio <= LATENCY_RATIO_TARGET
        print(f"{name} at {largest['size']:,} / at {smallest['size']:,}: {ratio:.2f}")
    for name, met in verdicts.items():
        print(f"target {name}: {'met' if met else 'NOT met'}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps({"rows": rows, "met": verdicts}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
