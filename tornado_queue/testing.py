"""Real processes for the tests, the load smoke and the benchmarks: `python main.py` in a child
process (`ServerProcess`) and a private `redis-server` (`RedisServer`).

The server logs to a file (a pipe that nobody drains would stall it once full); its URL is read
from the start-up line, so `--port 0` works.
"""

from __future__ import annotations

import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (https?://\S+)")
STOPPED = re.compile(r"stopped cleanly: ([a-z]+=\d+(?:, [a-z]+=\d+)*)")


class ServerProcess:
    """`python main.py --port 0 FLAGS…`, started at once; use as a context manager or `stop()`."""

    def __init__(self, log_path: Path, *flags: str, start_timeout: float = 30.0) -> None:
        self.log_path = log_path
        self.flags = flags
        self._log_file = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "main.py", "--port", "0", *flags],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stderr=self._log_file,
        )
        self.url = self._wait_for_url(start_timeout)

    def log(self) -> str:
        return self.log_path.read_text()

    @property
    def port(self) -> int:
        """The port it listens on (the one `--port 0` picked, too)."""
        port = urlsplit(self.url).port
        assert port is not None  # the start-up line always names one
        return port

    def restart(self, log_path: Path, timeout: float = 30.0) -> ServerProcess:
        """Kill this process (SIGKILL, if still running) and start a new one with the same
        flags on the same port, logging to `log_path`: clients keep their URL."""
        port = str(self.port)
        self.kill()
        # A later --port wins over the --port 0 in front.
        restarted = ServerProcess(log_path, *self.flags, "--port", port, start_timeout=timeout)
        restarted.flags = self.flags  # so that restarts do not pile up --port flags
        return restarted

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Send `signum` and wait for the exit; return the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signum)
        try:
            return self.process.wait(timeout)
        finally:
            self._log_file.close()

    def final_counts(self) -> dict[str, int] | None:
        """The task counts from the clean-stop line, or None if the server never logged one."""
        stopped = STOPPED.search(self.log())
        if not stopped:
            return None
        pairs = (item.split("=") for item in stopped.group(1).split(", "))
        return {status: int(count) for status, count in pairs}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()

    def _wait_for_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            match = LISTENING.search(self.log())
            if match:
                return match.group(1)
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"server did not start listening:\n{self.log()[-2000:]}")


INSTALL_HINT = (
    "redis-server is not installed; install it (Debian/Ubuntu: apt-get install redis-server, "
    "macOS: brew install redis) or run `bash .ci/run`, which installs it"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """`redis-server` in the foreground on a free port, nothing saved to disk.

    With `append_only`, every write is in the append-only file (fsynced before Redis answers)
    under `directory`; `kill()` then `start()` brings back the same data on the same port,
    as a Redis that crashed and was restarted would.
    """

    def __init__(
        self, directory: Path, *, port: int | None = None, append_only: bool = False
    ) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(INSTALL_HINT)
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        persistence = ["yes", "--appendfsync", "always"] if append_only else ["no"]
        self._command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            *persistence,
            "--dir",
            str(directory),
        ]
        self.process: subprocess.Popen[bytes]
        self.start()

    def start(self) -> None:
        """Start (again, after `kill()` or `stop()`) and wait until it answers PING."""
        self.process = subprocess.Popen(
            self._command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self._wait_until_ready()

    def kill(self) -> None:
        """SIGKILL, as a crash: whatever was not yet in the append-only file is gone."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def _wait_until_ready(self, timeout: float = 10.0) -> None:
        import redis  # noqa: PLC0415 - only the Redis store needs redis-py

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def __enter__(self) -> RedisServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
