"""A store that cannot start stops the server at once with one line naming the flag and the
cause (exit status 1), instead of a traceback or a server whose every request fails."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from tornado_queue.errors import StoreUnavailable
from tornado_queue.models import NewTask
from tornado_queue.server import serve
from tornado_queue.storage import MemoryStore, SqliteStore
from tornado_queue.storage.redis import RedisStore, check_version
from tornado_queue.testing import ROOT, RedisServer, free_port

SQLITE_WRITE_VERSION_OFFSET = 18
"""Byte of the SQLite file header holding its write version: above 2, SQLite opens the file
read-only, for every process including root (which ignores file permissions)."""


def run_main(*flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "main.py", "--port", "0", *flags],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def the_one_line(finished: subprocess.CompletedProcess[str]) -> str:
    """The process failed with status 1 and one line on stderr (returned), no traceback."""
    assert finished.returncode == 1, finished.stderr
    assert "Traceback" not in finished.stderr
    lines = [line for line in finished.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, finished.stderr
    return lines[0]


# --- SQLite ----------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["missing directory", "parent is a file", "a directory"])
def test_a_db_path_sqlite_cannot_open_is_one_line(tmp_path: Path, where):
    (tmp_path / "afile").write_text("")
    path = {
        "missing directory": "/nonexistent/dir/q.db",
        "parent is a file": str(tmp_path / "afile" / "q.db"),
        "a directory": str(tmp_path),
    }[where]

    line = the_one_line(run_main("--backend", "sqlite", "--db", path))

    assert line == (
        f"error: --db {path}: cannot open the SQLite database (unable to open database file)"
    )


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database, but long enough to have a header " * 4)

    line = the_one_line(run_main("--backend", "sqlite", "--db", str(path)))

    assert line == f"error: --db {path}: cannot open the SQLite database (file is not a database)"


def test_a_read_only_database_is_one_line(tmp_path: Path):
    path = tmp_path / "q.db"
    SqliteStore(path).close()
    with path.open("r+b") as database:
        database.seek(SQLITE_WRITE_VERSION_OFFSET)
        database.write(bytes([3]))

    line = the_one_line(run_main("--backend", "sqlite", "--db", str(path)))

    assert line == (
        f"error: --db {path}: cannot write to the SQLite database "
        "(attempt to write a readonly database)"
    )


def test_the_sqlite_check_probes_a_write_and_leaves_the_store_usable(tmp_path: Path):
    store = SqliteStore(tmp_path / "q.db")
    try:
        store.check()

        assert not store._db.in_transaction
        assert store.enqueue(NewTask(payload=b"{}")).status == "pending"
    finally:
        store.close()


def test_the_sqlite_check_refuses_a_connection_that_cannot_write(tmp_path: Path):
    # As root no file or directory is read-only, and SQLite already fails to open a read-only
    # file for writing its schema; a read-only connection reaches the probe itself.
    path = tmp_path / "q.db"
    store = SqliteStore(path)
    store._db.close()
    store._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    try:
        with pytest.raises(StoreUnavailable) as refused:
            store.check()
    finally:
        store.close()

    assert isinstance(refused.value.cause, sqlite3.OperationalError)
    assert "readonly" in str(refused.value.cause)


def test_the_memory_store_needs_no_check():
    assert MemoryStore().check() is None


# --- Redis -----------------------------------------------------------------------------------


def test_an_unreachable_redis_is_one_line():
    url = f"redis://127.0.0.1:{free_port()}/0"

    line = the_one_line(run_main("--backend", "redis", "--redis-url", url))

    assert line.startswith(f"error: --redis-url {url}: cannot reach Redis (Error 111 connecting")


def test_a_redis_password_is_never_shown():
    url = f"redis://worker:s3cret-pw@127.0.0.1:{free_port()}/0"

    line = the_one_line(run_main("--backend", "redis", "--redis-url", url))

    assert "s3cret-pw" not in line
    port = url.rsplit(":", 1)[1]
    assert line.startswith(f"error: --redis-url redis://worker:***@127.0.0.1:{port}: cannot")


def test_a_redis_password_in_the_query_is_never_shown():
    url = f"redis://127.0.0.1:{free_port()}/0?password=s3cret-pw&socket_timeout=5"

    line = the_one_line(run_main("--backend", "redis", "--redis-url", url))

    assert "s3cret-pw" not in line
    assert "?password=***&socket_timeout=5: cannot reach Redis" in line


def test_a_malformed_redis_url_is_one_line():
    line = the_one_line(run_main("--backend", "redis", "--redis-url", "localhost:6379"))

    assert line.startswith("error: --redis-url localhost:6379: not a Redis URL (")


def test_a_reachable_redis_passes_the_check(tmp_path: Path):
    with RedisServer(tmp_path) as server:
        store = RedisStore(server.url)
        try:
            store.check()
        finally:
            store.close()


@pytest.mark.parametrize("version", ["2.8.24", "3.2.12", "4.0.14"])
def test_a_redis_older_than_5_is_refused(version):
    with pytest.raises(StoreUnavailable) as refused:
        check_version({"redis_version": version, "redis_mode": "standalone"})

    assert str(refused.value.cause) == (
        f"Redis {version} is too old: 5.0 or later is needed (for ZPOPMIN)"
    )


@pytest.mark.parametrize("version", ["5.0.0", "6.2.14", "7.0.15", "10.0.1", "unknown", ""])
def test_redis_5_and_later_or_an_unreadable_version_pass(version):
    check_version({"redis_version": version})
    check_version({})


def test_an_old_redis_stops_the_server_with_one_line(tmp_path: Path, monkeypatch, capsys):
    with RedisServer(tmp_path) as server:
        # The real server answers INFO; only the version it reports is made old.
        real_info = redis.Redis.info

        def old_info(client, *args, **kwargs):
            return {**real_info(client, *args, **kwargs), "redis_version": "4.0.9"}

        monkeypatch.setattr(redis.Redis, "info", old_info)

        code = serve.main(["--port", "0", "--backend", "redis", "--redis-url", server.url])

    assert code == 1
    err = capsys.readouterr().err
    assert err == (
        f"error: --redis-url {server.url}: Redis 4.0.9 is too old: 5.0 or later is needed "
        "(for ZPOPMIN)\n"
    )
