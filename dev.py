"""One entry point that sets itself up: `python3 dev.py serve|test|lint|...`.

It needs only Python 3.11+: on first use it creates `.venv`, installs the pinned requirements
there (again whenever they change), and runs the command with the venv's interpreter. `serve`
installs only what serving needs (`requirements-serve.txt`); every other command the whole set
(`requirements.txt`: the tests, lint and load tools too).
"""

from __future__ import annotations

import hashlib
import json
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
SERVE_REQUIREMENTS = ROOT / "requirements-serve.txt"
STAMP = VENV / "requirements.json"

USAGE = """usage: python3 dev.py COMMAND [ARGS...]

  serve [FLAGS]       run the server (flags as in `python main.py --help`)
  test [PYTEST ARGS]  run the whole test suite (installs redis-server and chromium
                      with apt-get when missing and root)
  lint                ruff check and ruff format --check
  load-smoke [SECS]   start a server and run a bounded headless Locust swarm against it
  bench-smoke         a few seconds of each benchmark in bench/ (no thresholds; fails on errors)
  wheel-smoke         build the wheel, install it in a fresh venv outside the repo, and
                      serve, enqueue and complete with the installed package
"""


def ensure_venv(everything: bool = True) -> None:
    """The venv with `requirements.txt` (everything) or only `requirements-serve.txt` in it,
    installed again when the file (or what it includes) changed since."""
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py may be run by an older python3
        sys.exit(f"tornado_queue needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    serve = hashlib.sha256(SERVE_REQUIREMENTS.read_bytes()).hexdigest()
    full = hashlib.sha256(REQUIREMENTS.read_bytes() + serve.encode()).hexdigest()
    kind, wanted, requirements = (
        ("full", full, REQUIREMENTS) if everything else ("serve", serve, SERVE_REQUIREMENTS)
    )
    installed = _installed()
    if installed.get(kind) == wanted and PYTHON.exists():
        return
    if not PYTHON.exists():
        print(f"dev.py: creating {VENV.name}/ with {sys.executable}", file=sys.stderr)
        venv.create(VENV, with_pip=True, clear=True)
        installed = {}
    print(f"dev.py: installing {requirements.name}", file=sys.stderr)
    pip = [str(PYTHON), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "-r", str(requirements)], check=True)
    # The package itself, editable: `tornado-queue` and `import tornado_queue` work in the venv
    # from any directory (the examples, a worker's own module) and follow this checkout.
    subprocess.run([*pip, "--no-deps", "-e", str(ROOT)], check=True)
    # The full set includes what serving needs.
    installed = {"serve": serve, "full": full} if everything else {**installed, "serve": serve}
    STAMP.write_text(json.dumps(installed))


def _installed() -> dict[str, str]:
    try:
        return json.loads(STAMP.read_text())
    except (OSError, ValueError):
        return {}


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


def lint(_args: list[str]) -> int:
    return run("-m", "ruff", "check", ".") or run("-m", "ruff", "format", "--check", ".")


def bench_smoke(_args: list[str]) -> int:
    for script in (
        "bench/store_ops.py",
        "bench/scale.py",
        "bench/http_bench.py",
        "bench/push_bench.py",
    ):
        code = run(script, "--smoke")
        if code:
            return code
    return 0


def wheel_smoke(args: list[str]) -> int:
    return run(".ci/wheel_smoke.py", *args)


def serve(args: list[str]) -> int:
    replace_with("main.py", *args)
    return 1  # not reached: execv does not return


def test(args: list[str]) -> int:
    ensure_system_packages()
    replace_with("-m", "pytest", *args)
    return 1


def load_smoke(args: list[str]) -> int:
    replace_with("load/smoke.py", *args)
    return 1


COMMANDS = {
    "serve": serve,
    "test": test,
    "lint": lint,
    "load-smoke": load_smoke,
    "bench-smoke": bench_smoke,
    "wheel-smoke": wheel_smoke,
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, args = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"dev.py: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    ensure_venv(everything=command != "serve")
    return COMMANDS[command](args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
