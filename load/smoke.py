"""A bounded Locust smoke run: start a server, swarm it headless, stop it, fail on any error.

    python load/smoke.py [SECONDS]       (default 10; dev.py load-smoke runs this in the venv)

The server runs with worker threads too, so HTTP consumers and in-process workers compete for
the same tasks. It fails if Locust saw any failed request, or if the server did not exit 0 on
SIGTERM with nothing left processing.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (http://\S+)")
STOPPED = re.compile(r"stopped cleanly: (.*)")


def start_server(log: IO[str]) -> tuple[subprocess.Popen[str], str]:
    """Start a server logging to `log` (a file: a full pipe could stall it); return its URL."""
    server = subprocess.Popen(
        [sys.executable, "main.py", "--port", "0", "--workers", "2", "--work-seconds", "0.01"],
        cwd=ROOT,
        stderr=log,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        match = LISTENING.search(Path(log.name).read_text())
        if match:
            return server, match.group(1)
        time.sleep(0.05)
    server.kill()
    raise SystemExit(f"server did not start listening:\n{Path(log.name).read_text()[-2000:]}")


def main(argv: list[str]) -> int:
    seconds = int(argv[0]) if argv else 10
    with tempfile.NamedTemporaryFile("w", suffix=".log") as log_file:
        return swarm(seconds, log_file)


def swarm(seconds: int, log_file: IO[str]) -> int:
    server, url = start_server(log_file)
    try:
        locust = subprocess.run(
            [
                *(sys.executable, "-m", "locust", "-f", "load/locustfile.py", "--host", url),
                *("--headless", "--users", "20", "--spawn-rate", "20", "--run-time", f"{seconds}s"),
                *("--stop-timeout", "5", "--only-summary", "--exit-code-on-error", "1"),
            ],
            cwd=ROOT,
            timeout=seconds + 60,
            check=False,
        )
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    log = Path(log_file.name).read_text()
    stopped = STOPPED.search(log)
    print(f"server exit code {server.returncode}; final counts: {stopped and stopped.group(1)}")
    if locust.returncode != 0:
        print("load smoke FAILED: Locust reported failed requests", file=sys.stderr)
        return 1
    if server.returncode != 0 or not stopped or "processing=0" not in stopped.group(1):
        print(f"load smoke FAILED: unclean server shutdown\n{log[-2000:]}", file=sys.stderr)
        return 1
    print("load smoke passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
