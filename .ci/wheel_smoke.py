"""Build the wheel, install it into a fresh venv outside the repository, start the installed
`tornado-queue serve`, and enqueue, dequeue and complete a task with the installed client.

Proves that `pip install` of the package gives a working server, client and console script
with nothing from the repository (the venv's interpreter runs in a temporary directory). Also
checks that the wheel holds only the `tornado_queue` package, with its static files and Lua.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LISTENING = re.compile(r"listening on (http://\S+)")
NEEDED_FILES = (
    "tornado_queue/server/static/dashboard/index.html",
    "tornado_queue/server/static/docs/swagger-init.js",
    "tornado_queue/storage/lua/store.lua",
)
CLIENT_SCRIPT = """
import sys
from tornado_queue.client import Client

client = Client(sys.argv[1])
task_id = client.enqueue({"to": "user@example.com"}, queue="emails")
task = client.dequeue(queue="emails", wait=5)
assert task is not None and task.id == task_id, task
done = client.complete(task, result={"sent": True})
assert (done.status, done.result) == ("completed", {"sent": True}), done
print("enqueued, dequeued and completed", task_id)
"""


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="tq-wheel-") as scratch:
        place = Path(scratch)
        wheel = build_wheel(place / "dist")
        check_contents(wheel)
        python = install(wheel, place / "venv")
        return serve_and_use(python, place)


def build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)],
        check=True,
    )
    (wheel,) = out.glob("tornado_queue-*.whl")
    print(f"wheel-smoke: built {wheel.name}")
    return wheel


def check_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    stray = {top for top in tops if top != "tornado_queue" and not top.endswith(".dist-info")}
    if stray:
        sys.exit(f"wheel-smoke: the wheel holds more than the package: {sorted(stray)}")
    missing = [name for name in NEEDED_FILES if name not in names]
    if missing:
        sys.exit(f"wheel-smoke: the wheel lacks {missing}")
    metadata = next(name for name in names if name.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    if "Provides-Extra: redis" not in text:
        sys.exit("wheel-smoke: the wheel has no 'redis' extra")
    print(f"wheel-smoke: {len(names)} files, only tornado_queue/ and its metadata")


def install(wheel: Path, where: Path) -> Path:
    venv.create(where, with_pip=True)
    python = where / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, str(wheel)], check=True)
    print(f"wheel-smoke: installed into {where}")
    return python


def serve_and_use(python: Path, place: Path) -> int:
    script = python.parent / "tornado-queue"
    log_path = place / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(script), "serve", "--port", "0"],
            cwd=place,  # nothing of the repository on the path
            stdin=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        url = wait_for_url(log_path, server)
        subprocess.run([str(python), "-c", CLIENT_SCRIPT, url], cwd=place, check=True)
    finally:
        server.terminate()
        code = server.wait(timeout=30)
    if code != 0:
        sys.exit(f"wheel-smoke: the server exited with {code}:\n{log_path.read_text()}")
    print("wheel-smoke: the installed server stopped cleanly")
    return 0


def wait_for_url(log_path: Path, server: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        found = LISTENING.search(log_path.read_text())
        if found:
            return found.group(1)
        time.sleep(0.05)
    sys.exit(f"wheel-smoke: the installed server did not start:\n{log_path.read_text()}")


if __name__ == "__main__":
    sys.exit(main())
