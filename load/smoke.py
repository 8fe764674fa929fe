"""A bounded Locust smoke run: start a server, swarm it headless, stop it, fail on any error.

    python load/smoke.py [SECONDS]       (default 10; dev.py load-smoke runs this in the venv)

The server runs with worker threads too, so HTTP consumers and in-process workers compete for
the same tasks. It fails if Locust made no requests or saw a failed one, or if the server did not
exit 0 on SIGTERM with nothing left processing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado_queue.testing import ROOT, ServerProcess


def main(argv: list[str]) -> int:
    if len(argv) > 1 or (argv and not argv[0].isdigit()):
        print("usage: python load/smoke.py [SECONDS]", file=sys.stderr)
        return 2
    seconds = int(argv[0]) if argv else 10
    with tempfile.TemporaryDirectory() as scratch:
        server = ServerProcess(
            Path(scratch) / "server.log", "--workers", "2", "--work-seconds", "0.01"
        )
        try:
            requests = swarm(server.url, seconds, Path(scratch) / "stats.json")
        finally:
            code = server.stop()
        counts = server.final_counts()
        log_tail = server.log()[-2000:]
    print(f"{requests} requests; server exit code {code}; final counts: {counts}")
    if requests is None or requests == 0:
        print("load smoke FAILED: Locust failed or made no requests", file=sys.stderr)
        return 1
    if code != 0 or counts is None or counts["processing"] != 0:
        print(f"load smoke FAILED: unclean server shutdown\n{log_tail}", file=sys.stderr)
        return 1
    print("load smoke passed")
    return 0


def swarm(url: str, seconds: int, stats_path: Path) -> int | None:
    """Run Locust headless for `seconds`; the number of requests made, or None if any failed."""
    command = [
        *(sys.executable, "-m", "locust", "-f", "load/locustfile.py", "--host", url),
        *("--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{seconds}s"),
        *("--stop-timeout", "5", "--only-summary", "--exit-code-on-error", "1"),
        *("--json-file", str(stats_path.with_suffix(""))),
    ]
    locust = subprocess.run(command, cwd=ROOT, timeout=seconds + 60, check=False)
    if locust.returncode != 0:
        return None
    stats = json.loads(stats_path.read_text())
    return sum(entry["num_requests"] for entry in stats)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
