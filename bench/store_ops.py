"""Memory store micro-benchmark: operations per second in-process, one thread and four.

    .venv/bin/python bench/store_ops.py [--seconds S] [--smoke]

For each operation (enqueue, dequeue, complete, and a full lifecycle of the three; then the
lifecycle of a task in one of 64 ordered groups, and of a task of a queue with a concurrency
cap and a rate limit that never bind, to show what each rule costs) it reports
operations per second single-threaded and with 4 threads contending for the store's lock, and
the 4-thread / 1-thread ratio (CPython runs one thread at a time, so the ratio shows what the
lock and thread switches cost, not parallel speed-up). Dequeue and complete runs are given
enough tasks beforehand (a thread that runs out stops there, counted exactly); times are
wall clock over the run. Results go to
bench/results/store_ops.json. Target: >= 100,000 full lifecycles/s single-threaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado_queue.models import NewTask, RateLimit
from tornado_queue.storage import MemoryStore

PAYLOAD = b'{"job":"send_email","to":"user@example.com"}'
RESULTS = Path(__file__).resolve().parent / "results"
LIFECYCLE_TARGET = 100_000
CHUNK = 1000  # operations between clock reads


def enqueue_op(store: MemoryStore) -> Callable[[], None]:
    task = NewTask(PAYLOAD)

    def run() -> None:
        store.enqueue_many([task])

    return run


class OutOfStock(Exception):
    """The tasks prepared for a dequeue or complete run are used up: the worker stops there."""


def dequeue_op(store: MemoryStore) -> Callable[[], None]:
    def run() -> None:
        if not store.dequeue_many(1):
            raise OutOfStock

    return run


def complete_op(store: MemoryStore, leased: list) -> Callable[[], None]:
    # list.pop is atomic under the GIL, so threads never complete the same task.
    def run() -> None:
        try:
            task = leased.pop()
        except IndexError:
            raise OutOfStock from None
        store.complete(task.id, lease_id=task.lease_id)

    return run


def lifecycle_op(store: MemoryStore) -> Callable[[], None]:
    task = NewTask(PAYLOAD)

    def run() -> None:
        # A thread may dequeue another thread's task: any task will do, each is completed once.
        store.enqueue_many([task])
        leased = store.dequeue_many(1)[0]
        store.complete(leased.id, lease_id=leased.lease_id)

    return run


def grouped_lifecycle_op(store: MemoryStore) -> Callable[[], None]:
    tasks = [NewTask(PAYLOAD, group=f"customer-{number}") for number in range(64)]
    turn = [0]

    def run() -> None:
        turn[0] = (turn[0] + 1) % len(tasks)
        store.enqueue_many([tasks[turn[0]]])
        # With several threads every ready task may be behind a group's head that another
        # thread holds: that thread completes it in a moment.
        while not (leased := store.dequeue_many(1)):
            pass
        store.complete(leased[0].id, lease_id=leased[0].lease_id)

    return run


def limited(store: MemoryStore) -> None:
    """A cap and a rate limit high enough never to turn a consumer away here: their cost only."""
    store.configure("default", {"max_processing": 1000, "rate_limit": RateLimit(10_000, 0.01)})


def measure(make: Callable[[MemoryStore], Callable[[], None]], threads: int, seconds: float,
            prepare: Callable[[MemoryStore], None] | None = None) -> float:  # fmt: skip
    """Operations per second of `make(store)` run by `threads` threads for `seconds`."""
    store = MemoryStore()
    if prepare is not None:
        prepare(store)
    operation = make(store)
    counts = [0] * threads
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def worker(number: int) -> None:
        start.wait()
        done = 0
        try:
            while time.perf_counter() < stop_at[0]:
                for done_in_chunk in range(CHUNK):  # noqa: B007 - read when out of stock
                    operation()
                done += CHUNK
        except OutOfStock:
            done += done_in_chunk
        counts[number] = done

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each run")
    parser.add_argument("--smoke", action="store_true", help="0.2 s runs, for CI")
    args = parser.parse_args(argv)
    seconds = 0.2 if args.smoke else args.seconds
    # Enough tasks for the fastest dequeue/complete rate seen (about 400,000/s), times the run,
    # with margin; a run that still runs out stops early and reports the rate until then.
    stock = int(1_000_000 * seconds) + CHUNK * 8

    def filled(store: MemoryStore) -> None:
        store.enqueue_many([NewTask(PAYLOAD)] * stock)

    leased: list = []

    def filled_and_leased(store: MemoryStore) -> None:
        filled(store)
        leased[:] = store.dequeue_many(stock)

    operations = {
        "enqueue": (enqueue_op, None),
        "dequeue": (dequeue_op, filled),
        "complete": (lambda store: complete_op(store, leased), filled_and_leased),
        "lifecycle": (lifecycle_op, None),
        "grouped": (grouped_lifecycle_op, None),
        "limited": (lifecycle_op, limited),
    }
    rows = []
    for name, (make, prepare) in operations.items():
        one = measure(make, 1, seconds, prepare)
        four = measure(make, 4, seconds, prepare)
        rows.append({"operation": name, "ops_1_thread": one, "ops_4_threads": four})
    print(f"{'operation':<10} {'1 thread ops/s':>15} {'4 threads ops/s':>16} {'4/1':>6}")
    for row in rows:
        ratio = row["ops_4_threads"] / row["ops_1_thread"]
        print(
            f"{row['operation']:<10} {row['ops_1_thread']:>15,.0f} "
            f"{row['ops_4_threads']:>16,.0f} {ratio:>6.2f}"
        )
    lifecycles = next(row["ops_1_thread"] for row in rows if row["operation"] == "lifecycle")
    verdict = "met" if lifecycles >= LIFECYCLE_TARGET else "NOT met"
    print(f"target >= {LIFECYCLE_TARGET:,} lifecycles/s single-threaded: {verdict}")
    RESULTS.mkdir(exist_ok=True)
    document = {"seconds": seconds, "rows": rows, "lifecycle_target": LIFECYCLE_TARGET}
    (RESULTS / "store_ops.json").write_text(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
