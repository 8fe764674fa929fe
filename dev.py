"""One entry point that sets itself up: `python3 dev.py serve|test|lint|load-smoke|bench-smoke`.

It needs only Python 3.11+: on first use it creates `.venv`, installs `requirements.txt` there
(again whenever that file changes), and runs the command with the venv's interpreter.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PYTHON = BIN / "python"
REQUIREMENTS = ROOT / "requirements.txt"
STAMP = VENV / "requirements.sha256"

USAGE = """usage: python3 dev.py COMMAND [ARGS...]

  serve [FLAGS]       run the server (flags as in `python main.py --help`)
  test [PYTEST ARGS]  run the whole test suite (installs redis-server and chromium
                      with apt-get when missing and root)
  lint                ruff check and ruff format --check
  load-smoke [SECS]   start a server and run a bounded headless Locust swarm against it
  bench-smoke         a few seconds of each benchmark in bench/ (no thresholds; fails on errors)
"""


def ensure_venv() -> None:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"tornado_queue needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV.name}/ with {sys.executable}", file=sys.stderr)
        venv.create(VENV, with_pip=True, clear=True)
    print("dev.py: installing requirements.txt", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)
    STAMP.write_text(wanted)


SYSTEM_PACKAGES = (
    # (command on PATH, Debian/Ubuntu package, what needs it)
    ("redis-server", "redis-server", "the Redis store's tests start their own redis-server"),
    ("chromium", "chromium", "the dashboard's browser tests drive it through Playwright"),
)


def ensure_system_packages() -> None:
    """Install the programs the tests need that are missing, in one apt-get run, when this
    machine can (root with apt-get, as on Debian/Ubuntu); otherwise say how."""
    missing = [
        (package, why) for command, package, why in SYSTEM_PACKAGES if not shutil.which(command)
    ]
    if not missing:
        return
    packages = [package for package, _ in missing]
    if os.name == "posix" and os.geteuid() == 0 and shutil.which("apt-get"):
        for package, why in missing:
            print(f"dev.py: installing {package} (apt-get): {why}", file=sys.stderr)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", *packages],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
        return
    needs = "; ".join(f"{package} ({why})" for package, why in missing)
    sys.exit(
        f"dev.py: the tests need {needs}. Install them with "
        f"`sudo apt-get install {' '.join(packages)}` (Debian/Ubuntu), or run this as root"
    )


def run(*argv: str) -> int:
    return subprocess.call([str(PYTHON), *argv], cwd=ROOT)


def replace_with(*argv: str) -> None:
    """Become the venv's python running `argv`, so signals (Ctrl-C, SIGTERM) and the exit code
    are the command's own, with no wrapper process in between."""
    os.chdir(ROOT)
    os.execv(PYTHON, [str(PYTHON), *argv])


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command not in ("serve", "test", "lint", "load-smoke", "bench-smoke"):
        print(f"dev.py: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    ensure_venv()
    if command == "lint":
        return run("-m", "ruff", "check", ".") or run("-m", "ruff", "format", "--check", ".")
    if command == "bench-smoke":
        for script in ("bench/store_ops.py", "bench/scale.py", "bench/http_bench.py"):
            code = run(script, "--smoke")
            if code:
                return code
        return 0
    if command == "serve":
        replace_with("main.py", *args)
    if command == "test":
        ensure_system_packages()
        replace_with("-m", "pytest", *args)
    replace_with("load/smoke.py", *args)
    return 1  # not reached: execv does not return


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
