"""`python -m tornado_queue`: the client commands (tables for people, --json for scripts), tail,
serve, and the dispatcher's usage errors."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.support import real_server, tasks_in_every_state
from tests.support import wait_until
from tornado_queue.cli import commands as cli
from tornado_queue.cli import main
from tornado_queue.client import Client, NotFound
from tornado_queue.models import QueueSettings
from tornado_queue.testing import LISTENING, ROOT, ServerProcess, free_port

DEADLINE = 15.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with real_server(tmp_path_factory.mktemp("cli")) as process:
        yield process


@pytest.fixture
def client(server: ServerProcess) -> Iterator[Client]:
    with Client(server.url) as client:
        yield client


def run(server: ServerProcess, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run a command in-process against `server`; its exit code and what it printed."""
    code = main([*args, "--url", server.url])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_enqueue_then_get_in_words_and_in_json(server, capsys):
    code, out = run(server, capsys, "enqueue", '{"to": "a@example.com"}', "--queue", "cli-get")
    assert code == 0
    task_id = re.fullmatch(r"enqueued (\S+) on queue 'cli-get'\n", out).group(1)

    code, out = run(server, capsys, "get", task_id)
    assert code == 0
    assert re.search(r"^status +pending$", out, re.MULTILINE)
    assert re.search(r'^payload +\{"to":"a@example.com"\}$', out, re.MULTILINE)

    code, out = run(server, capsys, "get", task_id, "--json")
    assert json.loads(out)["id"] == task_id and json.loads(out)["queue"] == "cli-get"
    code, out = run(server, capsys, "enqueue", "{}", "--priority", "3", "--json")
    assert list(json.loads(out)) == ["id"]


def test_get_wait_shows_the_task_once_another_consumer_completes_it(server, client, capsys):
    client.enqueue({"n": 1}, queue="cli-wait")
    task = client.dequeue(queue="cli-wait", lease=600)
    client.progress(task, {"done": 1})
    finisher = threading.Timer(0.3, client.complete, (task, {"sum": 3}))
    finisher.start()

    started = time.monotonic()
    code, out = run(server, capsys, "get", task.id, "--wait", "20")

    assert code == 0
    assert time.monotonic() - started < 5
    assert re.search(r"^status +completed$", out, re.MULTILINE)
    assert re.search(r'^result +\{"sum":3\}$', out, re.MULTILINE)
    assert re.search(r'^progress +\{"done":1\}$', out, re.MULTILINE)
    finisher.join()


def test_get_wait_that_runs_out_shows_the_task_as_it_is(server, client, capsys):
    task_id = client.enqueue({"n": 1}, queue="cli-wait-out")

    code, out = run(server, capsys, "get", task_id, "--wait", "0.2", "--json")

    assert (code, json.loads(out)["status"]) == (0, "pending")


@pytest.mark.parametrize("wait", ["31", "-1", "soon"])
def test_get_wait_out_of_range_is_a_usage_error(server, capsys, wait):
    with pytest.raises(SystemExit) as raised:
        main(["get", "some-id", "--wait", wait, "--url", server.url])

    assert raised.value.code == 2
    assert "--wait" in capsys.readouterr().err


def test_stats_and_queues_print_tables(server, client, capsys):
    client.enqueue_many([{"n": n} for n in range(3)], queue="cli-tables")
    client.complete(client.dequeue(queue="cli-tables"))

    code, out = run(server, capsys, "stats", "--queue", "cli-tables")
    assert code == 0
    assert out.splitlines() == [
        "state       tasks",
        "pending         2",
        "processing      0",
        "completed       1",
        "failed          0",
        "scheduled       0",
        "waiting         0",
    ]
    code, out = run(server, capsys, "queues")
    header, *rows = out.splitlines()
    assert header.split() == [
        *("queue", "pending", "processing", "completed", "failed", "scheduled", "waiting")
    ]
    assert ["cli-tables", "2", "0", "1", "0", "0", "0"] in [row.split() for row in rows]
    code, out = run(server, capsys, "queues", "--json")
    assert {"name": "cli-tables", **client.stats("cli-tables")} in json.loads(out)


def test_workers_lists_the_workers_seen_and_get_shows_a_tasks_history(server, capsys, tmp_path):
    with real_server(tmp_path) as fresh:
        code, out = run(fresh, capsys, "workers")
    assert (code, out) == (
        0,
        "no workers seen in the last 60 s: a worker shows here once it calls with a worker id "
        "(the worker runner always sends one)\n",
    )
    with Client(server.url, worker_id="cli-box/9/0") as named:
        task_id = named.enqueue({}, queue="cli-workers")
        held = named.enqueue({}, queue="cli-workers")
        named.complete(named.dequeue(queue="cli-workers"))
        named.dequeue(queue="cli-workers", lease=600)

    code, out = run(server, capsys, "workers")
    header, *rows = out.splitlines()
    assert header.split() == ["worker", "last_seen", "holding", "completed", "failed", "tasks"]
    row = next(row.split() for row in rows if row.startswith("cli-box/9/0 "))
    assert row[2:] == ["1", "1", "0", held]
    code, out = run(server, capsys, "workers", "--json")
    listed = {worker["id"]: worker for worker in json.loads(out)}["cli-box/9/0"]
    assert (listed["tasks"], listed["completed"]) == ([held], 1)

    code, out = run(server, capsys, "get", task_id)
    history = out.partition("\nhistory:\n")[2].splitlines()
    assert [line.split()[1:3] for line in history] == [
        ["event", "worker"],
        ["enqueued", "-"],
        ["delivered", "cli-box/9/0"],
        ["completed", "cli-box/9/0"],
    ]
    code, out = run(server, capsys, "get", task_id, "--json")
    assert [entry["event"] for entry in json.loads(out)["history"]] == [
        "enqueued",
        "delivered",
        "completed",
    ]


def test_retry_puts_a_failed_task_back_and_explains_a_refusal(server, client, capsys):
    task_id = client.enqueue({}, queue="cli-retry")
    client.fail(client.dequeue(queue="cli-retry"), "boom\nTraceback: ...", retry=False)

    code, out = run(server, capsys, "get", task_id)
    assert re.search(r"^error +boom$", out, re.MULTILINE) and "error:\n  boom\n  Traceback" in out

    assert run(server, capsys, "retry", task_id) == (
        0,
        f"task {task_id} is pending again, attempts reset\n",
    )
    code, out = run(server, capsys, "retry", task_id)
    assert code == 1
    assert (
        out.startswith(f"error: cannot retry task '{task_id}': it is pending")
        and "(HTTP 409)" in out
    )
    assert run(server, capsys, "get", "nope") == (1, "error: no task with id 'nope' (HTTP 404)\n")


def test_queue_retry_puts_every_failed_task_of_the_queue_back(server, client, capsys):
    for _ in range(2):
        client.enqueue({}, queue="cli-bulk", max_attempts=1)
        client.fail(client.dequeue(queue="cli-bulk"), "boom", retry=False)

    assert run(server, capsys, "queue", "retry", "cli-bulk") == (
        0,
        "2 failed tasks of queue 'cli-bulk' back to pending\n",
    )
    assert client.stats("cli-bulk")["pending"] == 2
    assert run(server, capsys, "queue", "retry", "cli-bulk", "--json") == (0, '{"retried":0}\n')
    assert client.retry_queue("cli-bulk") == 0


def test_queue_pause_show_and_resume(server, client, capsys):
    client.enqueue({}, queue="cli-paused")

    code, out = run(server, capsys, "queue", "pause", "cli-paused")
    assert code == 0
    assert re.search(r"^paused +true$", out, re.MULTILINE)
    assert re.search(r"^pending +1$", out, re.MULTILINE)
    assert client.dequeue(queue="cli-paused") is None  # paused: as if empty

    code, out = run(server, capsys, "queue", "show", "cli-paused", "--json")
    assert json.loads(out)["settings"]["paused"] is True

    code, out = run(server, capsys, "queue", "resume", "cli-paused")
    assert code == 0 and re.search(r"^paused +-$", out, re.MULTILINE)
    assert client.dequeue(queue="cli-paused") is not None
    assert client.queue("cli-paused")["settings"]["paused"] is None


SETTINGS = QueueSettings.NAMES
"""The settings `queue show` lists after the counts."""


def settings_rows(table: str) -> dict[str, str]:
    """The setting rows of `queue show`'s table, by name (the rows after the counts)."""
    rows = dict(line.split(None, 1) for line in table.splitlines()[1:])
    return {name: value for name, value in rows.items() if name in SETTINGS}


def test_queue_set_changes_the_settings_that_show_then_shows(server, client, capsys):
    code, out = run(
        server,
        capsys,
        *("queue", "set", "cli-set", "--max-processing", "4", "--rate-limit", "10/1"),
        *("--lease-seconds", "90", "--max-attempts", "6", "--retry-backoff", "0.5"),
        *("--dead-letter-queue", "cli-set.dead", "--ttl-seconds", "3600"),
    )

    assert code == 0
    assert settings_rows(out) == {
        "paused": "-",
        "max_processing": "4",
        "rate_limit": "10/1",
        "lease_seconds": "90",
        "max_attempts": "6",
        "retry_backoff": "0.5",
        "dead_letter_queue": "cli-set.dead",
        "ttl_seconds": "3600",
        "push": "-",
    }
    assert run(server, capsys, "queue", "show", "cli-set") == (0, out)
    assert client.queue("cli-set")["settings"]["rate_limit"] == {"tasks": 10, "seconds": 1}


def test_queue_set_clears_settings_and_leaves_the_others_as_they_are(server, client, capsys):
    client.configure_queue("cli-clear", max_processing=4, rate_limit={"tasks": 5, "seconds": 2})
    client.configure_queue("cli-clear", ttl_seconds=60, max_attempts=2)

    code, out = run(
        server,
        capsys,
        *("queue", "set", "cli-clear", "--clear", "rate_limit", "ttl-seconds"),
        *("--max-attempts", "3", "--json"),
    )

    assert code == 0
    assert json.loads(out)["settings"] == client.queue("cli-clear")["settings"]
    assert client.queue("cli-clear")["settings"] == {
        **dict.fromkeys(SETTINGS),
        "max_processing": 4,
        "max_attempts": 3,
    }


@pytest.mark.parametrize("value", ["10", "0/1", "10/0", "ten/1", "10/x", "10/-1", "10/86401"])
def test_a_bad_rate_limit_exits_2_naming_it_and_changes_nothing(server, client, capsys, value):
    with pytest.raises(SystemExit) as exited:
        main(["queue", "set", "cli-bad-rate", "--rate-limit", value, "--url", server.url])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("tornado-queue queue set: error: argument --rate-limit: "), err
    assert err.count("\n") == 1
    assert client.queue("cli-bad-rate")["settings"]["rate_limit"] is None


def test_enqueue_with_a_group_and_an_expiry(server, client, capsys):
    ids = []
    for n in (1, 2):
        code, out = run(
            server,
            capsys,
            *("enqueue", f'{{"n": {n}}}', "--queue", "cli-group", "--group", "customer 1"),
            *("--expires-in", "600", "--json"),
        )
        assert code == 0
        ids.append(json.loads(out)["id"])

    code, out = run(server, capsys, "get", ids[0])
    assert re.search(r"^group +customer 1$", out, re.MULTILINE)
    assert re.search(r"^expires_at +\d{4}-\d\d-\d\dT", out, re.MULTILINE)
    assert re.search(r"^dead_lettered_from +-$", out, re.MULTILINE)
    first = client.get(ids[0])
    assert (first.expires_at - first.created_at).total_seconds() == pytest.approx(600, abs=0.001)
    assert client.dequeue(queue="cli-group").id == ids[0]
    assert client.dequeue(queue="cli-group") is None, "the second waits for the first"


def test_enqueue_after_one_or_more_tasks_waits_for_them(server, client, capsys):
    first = client.enqueue({"n": 1}, queue="cli-after")
    second = client.enqueue({"n": 2}, queue="cli-after")

    code, out = run(
        server,
        capsys,
        *("enqueue", "{}", "--queue", "cli-after", "--after", first, "--after", second, "--json"),
    )

    assert code == 0
    child = json.loads(out)["id"]
    code, out = run(server, capsys, "get", child)
    assert re.search(r"^status +waiting$", out, re.MULTILINE)
    assert re.search(rf"^after +{first}, {second}$", out, re.MULTILINE)
    assert re.search(r"^dependents +-$", out, re.MULTILINE)
    code, out = run(server, capsys, "get", first)
    assert re.search(rf"^dependents +{child}$", out, re.MULTILINE)
    code, out = run(server, capsys, "enqueue", "{}", "--after", "no-such-task")
    assert code == 1 and "field 'after' names task 'no-such-task'" in out
    code, out = run(server, capsys, "stats", "--queue", "cli-after")
    assert re.search(r"^waiting +1$", out, re.MULTILINE)


class Terminal(io.StringIO):
    """Stands for stdin on a terminal, holding what the person will type."""

    def isatty(self) -> bool:
        return True


def purge(
    server: ServerProcess, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    """Run `queue purge ARGS`; its exit code, stdout and stderr."""
    code = main(["queue", "purge", *args, "--url", server.url])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_queue_purge_asks_on_a_terminal_and_deletes_only_on_yes(
    server, client, capsys, monkeypatch
):
    client.enqueue_many([{"n": n} for n in range(3)], queue="cli-purge")
    question = "Delete 3 pending tasks of queue 'cli-purge'? [y/N] "

    # Declined (or just Enter): nothing deleted, exit 1
    for answer in ("n\n", "\n", ""):
        monkeypatch.setattr(sys, "stdin", Terminal(answer))
        assert purge(server, capsys, "cli-purge", "--status", "pending") == (
            1,
            "",
            question + "not confirmed: nothing deleted\n",
        )
    assert client.stats("cli-purge")["pending"] == 3

    # Confirmed: every pending task deleted, and how many said
    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    assert purge(server, capsys, "cli-purge", "--status", "pending") == (
        0,
        "deleted 3 pending tasks of queue 'cli-purge'\n",
        question,
    )
    assert client.stats("cli-purge")["pending"] == 0


def test_queue_purge_asks_nothing_with_yes_or_off_a_terminal(server, client, capsys, monkeypatch):
    ids = tasks_in_every_state(client, "cli-purge-yes")

    # Off a terminal (pytest's stdin cannot even be read): no question
    assert purge(server, capsys, "cli-purge-yes", "--status", "failed") == (
        0,
        "deleted 1 failed task of queue 'cli-purge-yes'\n",
        "",
    )
    with pytest.raises(NotFound):
        client.get(ids["failed"])

    monkeypatch.setattr(sys, "stdin", Terminal(""))
    code, out, err = purge(server, capsys, "cli-purge-yes", "--status", "completed", "-y", "--json")
    assert (code, json.loads(out), err) == (0, {"deleted": 1}, "")
    assert client.stats("cli-purge-yes") == {
        "pending": 1,
        "processing": 1,
        "completed": 0,
        "failed": 0,
        "scheduled": 1,
        "waiting": 0,
    }


def test_bad_arguments_exit_2_and_an_unreachable_server_exits_1(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["enqueue", "[1, 2]"])
    assert exited.value.code == 2
    assert "payload must be a JSON object" in capsys.readouterr().err

    url = f"http://127.0.0.1:{free_port()}"
    assert main(["stats", "--url", url]) == 1
    assert capsys.readouterr().err.startswith(f"error: cannot reach {url}")
    assert main([]) == 2 and "usage: tornado-queue COMMAND" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2 and "unknown command 'frobnicate'" in capsys.readouterr().err


def test_the_url_and_token_come_from_the_environment(server, client, capsys, monkeypatch):
    monkeypatch.setenv("TQ_URL", server.url)
    monkeypatch.setenv("TQ_TOKEN", "t0ken")
    client.enqueue({}, queue="cli-env")
    assert main(["stats", "--queue", "cli-env", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["pending"] == 1


def spawn(tmp_path: Path, name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    """`python -m tornado_queue ARGS` with stdout and stderr in a file, read as it grows."""
    output = tmp_path / f"{name}.out"
    with output.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tornado_queue", *args],
            cwd=ROOT,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, output


def test_tail_prints_a_line_per_change_until_ctrl_c(server, client, tmp_path):
    process, output = spawn(
        tmp_path, "tail", "tail", "--queue", "cli-tail", "--interval", "0.1", "--url", server.url
    )
    try:
        # Given the first line, the state as it is
        assert wait_until(lambda: "pending=0" in output.read_text(), DEADLINE), output.read_text()

        # When tasks come and one is done, then lines follow with what changed
        client.enqueue_many([{"n": 1}, {"n": 2}], queue="cli-tail")
        assert wait_until(lambda: "+2 enqueued" in output.read_text(), DEADLINE)
        client.complete(client.dequeue(queue="cli-tail"))
        assert wait_until(lambda: "+1 completed" in output.read_text(), DEADLINE)
        last = output.read_text().splitlines()[-1]
        assert re.fullmatch(
            r"\d\d:\d\d:\d\d pending=1 processing=0 completed=1 failed=0 scheduled=0 waiting=0"
            r"  \| \+1 completed, \d+\.\d completed/s",
            last,
        ), last

        # And Ctrl-C ends it with exit code 0
        process.send_signal(signal.SIGINT)
        assert process.wait(DEADLINE) == 0
    finally:
        process.kill()
        process.wait()


def test_serve_is_the_same_server_as_main_py(tmp_path):
    process, output = spawn(tmp_path, "serve", "serve", "--port", "0", "--workers", "1")
    try:
        assert wait_until(lambda: LISTENING.search(output.read_text()), DEADLINE)
        url = LISTENING.search(output.read_text()).group(1)
        with Client(url) as client:
            task_id = client.enqueue({})
            assert wait_until(lambda: client.get(task_id).status == "completed", DEADLINE)
        process.send_signal(signal.SIGTERM)
        assert process.wait(DEADLINE) == 0
        assert "stopped cleanly" in output.read_text()
    finally:
        process.kill()
        process.wait()


def test_schedule_set_show_list_and_delete(server, capsys):
    code, out = run(
        server,
        capsys,
        *("schedule", "set", "cli-nightly", '{"report": "daily"}', "--queue", "cli-reports"),
        *("--cron", "0 6 * * *", "--timezone", "Europe/Berlin", "--priority", "2"),
    )
    assert code == 0, out
    assert re.search(r"^cron +0 6 \* \* \*$", out, re.MULTILINE)
    assert re.search(r'^payload +\{"report":"daily"\}$', out, re.MULTILINE)
    assert re.search(r"^last_run_at +-$", out, re.MULTILINE)

    code, out = run(server, capsys, "schedule", "set", "cli-pings", "{}", "--queue", "cli-p",
                    "--every", "30", "--paused")  # fmt: skip
    assert code == 0, out
    code, out = run(server, capsys, "schedule", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["name", "queue", "runs", "timezone", "next_run_at", "last_run_at"]
    assert lines[1].startswith("cli-nightly") and "Europe/Berlin" in lines[1]
    assert re.match(r"cli-pings +cli-p +every 30 s \(paused\) +UTC +- +-$", lines[2])

    code, out = run(server, capsys, "schedule", "show", "cli-nightly", "--json")
    shown = json.loads(out)
    assert (shown["name"], shown["priority"], shown["every"]) == ("cli-nightly", 2, None)

    for name in ("cli-nightly", "cli-pings"):
        code, out = run(server, capsys, "schedule", "delete", name)
        assert (code, out) == (0, f"deleted schedule '{name}' (the tasks it enqueued stay)\n")
    code, out = run(server, capsys, "schedule", "list")
    assert out.startswith("no schedules yet")
    code, out = run(server, capsys, "schedule", "show", "cli-nightly")
    assert code == 1
    assert "no schedule named 'cli-nightly' (HTTP 404)" in out


def test_schedule_set_with_a_cron_the_server_refuses_names_the_field(server, capsys):
    code, out = run(server, capsys, "schedule", "set", "cli-bad", "{}", "--queue", "q",
                    "--cron", "61 * * * *")  # fmt: skip

    assert code == 1
    assert out.startswith("error: field 'cron' is not a cron expression")
