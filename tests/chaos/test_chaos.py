"""Jepsen-style: while producers and consumers work, SIGKILLs of the server (and, for Redis, of
redis-server) never lose an acknowledged task, complete one twice, leave a consumer told
"no" about a completion that happened, or hand a task out again before its lease ends; nor do
they let two tasks of an ordered group be held at once or go out of order, more tasks be held
than the queue's `max_processing`, a paused queue deliver, a workflow's child run before its
parent completed, a schedule enqueue one occurrence twice, or a task's history misstate its
completion or release. A push queue alongside loses no task either, is pushed again only when a
lease ran out or the receiver refused, never over its cap, always signed, and refuses every
consumer's dequeue.

The checker itself is bench/chaos.py; this runs its CI-sized form on each durable backend.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tornado_queue.testing import INSTALL_HINT, ROOT


def load_checker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_chaos", ROOT / "bench" / "chaos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


chaos = load_checker()
SETTINGS = chaos.Settings(seconds=12, kills=6)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_kill_9_loses_no_acknowledged_task_and_finishes_none_twice(backend: str, tmp_path: Path):
    if backend == "redis" and shutil.which("redis-server") is None:
        pytest.fail(INSTALL_HINT)

    report = chaos.run(backend, SETTINGS, tmp_path)

    print(report.render())  # the table and figures, shown with -s or on failure
    assert report.checks == dict.fromkeys(chaos.CHECKS, 0), report.render()
    assert report.drained, report.render()
    assert report.acknowledged > 0
    assert report.completions > 0
    assert report.kills.total() == SETTINGS.kills
    if backend == "redis":
        assert set(report.kills) == {"redis", "server"}
    # queue control was exercised: the queue was paused, grouped tasks went through, and
    # consumers held several leases at once
    assert report.control.pauses > 0
    assert report.control.groups == SETTINGS.groups
    assert report.control.grouped_tasks > 0
    assert report.control.most_held >= 2
    # so were workflows and the schedule
    assert report.control.workflows > 0
    assert report.control.fired > 0
    # and the push queue: several servers pushed it, pushes failed and were retried, servers
    # died mid-push and the tasks were pushed again, and consumers' dequeues were refused
    assert report.push.acknowledged > 0
    assert report.push.pushers >= 2
    assert report.push.failed_answers > 0
    assert report.push.pushed_after_expiry > 0
    assert report.push.most_in_flight >= 2
    assert report.push.pulls_refused > 0
