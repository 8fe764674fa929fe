"""A client generated from the served `/openapi.json` by openapi-python-client: the generator
reads the document without a warning, and the client it writes drives a real server, errors
included (every error parsed as the one Problem type).
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from tornado_queue.testing import ServerProcess

PACKAGE = "generated_queue_client"
QUEUE = "generated-client"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    log = tmp_path_factory.mktemp("generator") / "server.log"
    with ServerProcess(log, "--host", "127.0.0.1", "--backend", "memory") as process:
        yield process


def generate(document_path: Path, output: Path) -> subprocess.CompletedProcess[str]:
    """Run the generator as a user would. Its post hooks call `ruff`, so the venv's scripts
    (where this interpreter lives) go first on PATH."""
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--path",
            str(document_path),
            "--output-path",
            str(output),
            "--meta",
            "none",
            "--fail-on-warning",
        ],
        check=False,  # the exit code is asserted with the output, to show it
        cwd=output.parent,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def client_package(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ModuleType]:
    work = tmp_path_factory.mktemp("generated")
    document_path = work / "doc.json"
    document_path.write_bytes(httpx.get(server.url + "/openapi.json", timeout=10).content)

    run = generate(document_path, work / PACKAGE)

    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    assert "warning" not in output.lower(), output
    sys.path.insert(0, str(work))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(work))
        for name in [name for name in sys.modules if name.partition(".")[0] == PACKAGE]:
            del sys.modules[name]


def module(name: str) -> Any:
    return importlib.import_module(f"{PACKAGE}.{name}")


def enqueue_and_dequeue(client: Any) -> Any:
    enqueue_task = module("api.tasks.enqueue_task")
    dequeue_task = module("api.consumers.dequeue_task")
    models = module("models")

    created = enqueue_task.sync_detailed(
        client=client,
        body=models.NewTask(
            payload=models.NewTaskPayload.from_dict({"job": "send_email"}), queue=QUEUE
        ),
    )
    assert created.status_code == 201, created.content
    assert isinstance(created.parsed, models.Task)

    leased = dequeue_task.sync_detailed(client=client, queue=QUEUE)
    assert leased.status_code == 200, leased.content
    task = leased.parsed
    assert isinstance(task, models.Task)
    assert task.id == created.parsed.id
    assert task.status == models.TaskStatus.PROCESSING
    assert task.lease_id
    return task


def test_the_generated_client_drives_the_server(
    client_package: ModuleType, server: ServerProcess
) -> None:
    complete_task = module("api.consumers.complete_task")
    get_task = module("api.tasks.get_task")
    models = module("models")

    with client_package.Client(base_url=server.url, timeout=httpx.Timeout(10)) as client:
        task = enqueue_and_dequeue(client)
        completed = complete_task.sync_detailed(
            str(task.id),
            client=client,
            body=models.Completion(result={"sent": True}, lease_id=task.lease_id),
        )
        assert completed.status_code == 200, completed.content
        assert isinstance(completed.parsed, models.Task)
        assert completed.parsed.status == models.TaskStatus.COMPLETED
        assert completed.parsed.result == {"sent": True}

        missing = get_task.sync_detailed("no-such-task", client=client)
        assert missing.status_code == 404
        assert isinstance(missing.parsed, models.Problem)
        assert missing.parsed.status == 404
        assert missing.parsed.detail

        other = enqueue_and_dequeue(client)
        refused = complete_task.sync_detailed(
            str(other.id), client=client, body=models.Completion(lease_id="not-the-lease")
        )
        assert refused.status_code == 409, refused.content
        assert isinstance(refused.parsed, models.Problem)
        assert refused.parsed.status == 409
        assert refused.parsed.type_ == models.ProblemType.ABOUTBLANK


def test_the_generated_client_drives_queue_control(
    client_package: ModuleType, server: ServerProcess
) -> None:
    """Settings (a rate limit object among them), a grouped, expiring task dead-lettered with
    its new fields parsed, and a purge, all through the generated models."""
    configure_queue = module("api.queues.configure_queue")
    get_queue = module("api.queues.get_queue")
    enqueue_task = module("api.tasks.enqueue_task")
    dequeue_task = module("api.consumers.dequeue_task")
    fail_task = module("api.consumers.fail_task")
    purge_queue = module("api.queues.purge_queue")
    models = module("models")
    source, dead = "generated-control", "generated-control.dead"

    with client_package.Client(base_url=server.url, timeout=httpx.Timeout(10)) as client:
        patch = models.QueueSettingsPatch(
            rate_limit=models.RateLimit(tasks=100, seconds=1.5),
            dead_letter_queue=dead,
            max_processing=5,
        )
        configured = configure_queue.sync_detailed(source, client=client, body=patch)
        assert configured.status_code == 200, configured.content
        settings = get_queue.sync_detailed(source, client=client).parsed.settings
        assert isinstance(settings.rate_limit, models.RateLimit)
        assert (settings.rate_limit.tasks, settings.rate_limit.seconds) == (100, 1.5)
        assert settings.dead_letter_queue == dead
        assert settings.ttl_seconds is None

        refused = configure_queue.sync_detailed(
            source, client=client, body=models.QueueSettingsPatch(dead_letter_queue=source)
        )
        assert refused.status_code == 400
        assert isinstance(refused.parsed, models.Problem)

        created = enqueue_task.sync_detailed(
            client=client,
            body=models.NewTask(
                payload=models.NewTaskPayload.from_dict({"step": "charge"}),
                queue=source,
                group="order-7",
                expires_in=3600,
            ),
        )
        assert created.status_code == 201, created.content
        assert created.parsed.group == "order-7"
        assert created.parsed.expires_at is not None
        assert created.parsed.dead_lettered_from is None

        leased = dequeue_task.sync_detailed(client=client, queue=source).parsed
        moved = fail_task.sync_detailed(
            str(leased.id),
            client=client,
            body=models.Failure(error="card declined", retry=False, lease_id=leased.lease_id),
        )
        assert moved.status_code == 200, moved.content
        assert moved.parsed.queue == dead
        assert moved.parsed.status == models.TaskStatus.PENDING
        assert moved.parsed.dead_lettered_from == source
        assert moved.parsed.error == "card declined"

        purged = purge_queue.sync_detailed(
            dead, client=client, status=models.PurgeQueueStatus.PENDING
        )
        assert purged.status_code == 200, purged.content
        assert purged.parsed.deleted == 1


def test_the_server_logged_no_exception(server: ServerProcess) -> None:
    assert "Traceback" not in server.log(), server.log()[-3000:]
