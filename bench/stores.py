"""Store benchmark: each store against memory in one run, and 1 vs 2 servers on one Redis.

    python bench/stores.py [--seconds S]      (inside the venv: .venv/bin/python bench/stores.py)

1. In-process: full lifecycles (enqueue, dequeue, complete) per second, single-threaded, for
   memory, sqlite (full and normal sync) and redis, reported as a ratio to memory.
2. Over HTTP on loopback: lifecycles per second through 1 and through 2 redis-backed server
   processes, driven by client threads for a bounded time, reported as the 2/1 ratio.
It starts its own redis-server on a free port and writes bench/results/stores.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado_queue.models import NewTask
from tornado_queue.storage import MemoryStore, SqliteStore, Store
from tornado_queue.storage.redis import RedisStore
from tornado_queue.testing import RedisServer, ServerProcess

PAYLOAD = b'{"job":"send_email","to":"user@example.com"}'
RESULTS = Path(__file__).resolve().parent / "results"
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def lifecycles_per_second(store: Store, seconds: float) -> float:
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        store.enqueue(NewTask(PAYLOAD))
        task = store.dequeue()
        assert task is not None
        store.complete(task.id, lease_id=task.lease_id)
        done += 1
    return done / (time.perf_counter() - started)


def http_lifecycles_per_second(urls: list[str], seconds: float, clients: int = 8) -> float:
    done = [0] * clients
    deadline = time.monotonic() + seconds

    def call(url: str, method: str, path: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json"} if body else {}
        request = urllib.request.Request(url + path, body, headers, method=method)
        with NO_PROXY.open(request, timeout=10) as response:
            return json.loads(response.read())

    def client(number: int) -> None:
        url = urls[number % len(urls)]
        while time.monotonic() < deadline:
            call(url, "POST", "/tasks", b'{"payload": {"job": "bench"}}')
            task = call(url, "POST", "/tasks/dequeue")
            call(url, "PUT", f"/tasks/{task['id']}/complete?lease_id={task['lease_id']}")
            done[number] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - started)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    seconds = parser.parse_args(argv).seconds
    with tempfile.TemporaryDirectory() as scratch, RedisServer(Path(scratch)) as redis_server:
        stores = {
            "memory": MemoryStore(),
            "sqlite (full)": SqliteStore(Path(scratch) / "full.db"),
            "sqlite (normal)": SqliteStore(Path(scratch) / "normal.db", sync="normal"),
            "redis": RedisStore(redis_server.url, prefix="{bench}"),
        }
        in_process = {name: lifecycles_per_second(store, seconds) for name, store in stores.items()}
        for store in stores.values():
            store.close()
        http = {}
        for count in (1, 2):
            prefix = "{bench-" + uuid.uuid4().hex + "}"
            flags = (
                "--backend",
                "redis",
                "--redis-url",
                redis_server.url,
                "--redis-prefix",
                prefix,
            )
            servers = [
                ServerProcess(Path(scratch) / f"s{count}-{n}.log", "--log-level", "warning", *flags)
                for n in range(count)
            ]
            try:
                http[count] = http_lifecycles_per_second([s.url for s in servers], seconds)
            finally:
                for server in servers:
                    server.kill()
    print(f"{'store (in-process)':<18} {'lifecycles/s':>13} {'÷ memory':>9}")
    for name, rate in in_process.items():
        print(f"{name:<18} {rate:>13,.0f} {rate / in_process['memory']:>9.3f}")
    print(f"\nHTTP on Redis: 1 server {http[1]:,.0f}/s, 2 servers {http[2]:,.0f}/s,"
          f" ratio {http[2] / http[1]:.2f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    report = {"in_process": in_process, "http_redis_servers": http, "seconds": seconds}
    (RESULTS / "stores.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
