"""Retention keeps memory flat: finished tasks are forgotten, so a steady stream of work leaves
a bounded number of tasks (and deadline entries) in the store, however long it runs."""

from __future__ import annotations

import tracemalloc

from tests.conftest import FakeClock
from tornado_queue.models import NewTask
from tornado_queue.storage import MemoryStore, Policy

LIFECYCLES = 200_000
STEP_SECONDS = 0.001  # simulated time per lifecycle: 1000 tasks finish per simulated second
CHECK_EVERY = 10_000
BOUND = 3000  # ~1000 finished tasks are inside the 1 s retention window at any moment
PAYLOAD = b'{"job":"resize","size":[640,480]}'


def run_lifecycles(store: MemoryStore, clock: FakeClock, count: int, *, lease: float) -> None:
    """Enqueue, dequeue and complete `count` tasks, one after the other, as time goes by."""
    for _ in range(count):
        created = store.enqueue(NewTask(PAYLOAD))
        leased = store.dequeue(lease)
        assert leased.id == created.id
        store.complete(leased.id, result=b'{"ok":true}', lease_id=leased.lease_id)
        clock.advance(STEP_SECONDS)


def test_200k_full_lifecycles_with_short_retention_leave_a_bounded_number_of_tasks():
    # Given a store that forgets finished tasks after one second
    clock = FakeClock()
    store = MemoryStore(Policy(retention_seconds=1), clock)
    held_at_checkpoints = []

    # When 200,000 tasks go through enqueue, dequeue and complete while the clock moves
    for _ in range(LIFECYCLES // CHECK_EVERY):
        run_lifecycles(store, clock, CHECK_EVERY, lease=30)

        # Then at every checkpoint the store holds only the tasks inside the retention window
        stats = store.stats()
        held = sum(stats.values())
        held_at_checkpoints.append(held)
        assert held < BOUND, stats
        assert len(store._tasks) == held
        assert stats["completed"] == held  # nothing is left pending or processing

    assert len(held_at_checkpoints) == LIFECYCLES // CHECK_EVERY
    # The window holds about one second of work: ~1000 tasks, not 200,000
    assert 500 <= held_at_checkpoints[-1] <= 1500
    # And once the window has passed, everything is forgotten
    clock.advance(1)
    assert sum(store.stats().values()) == 0
    assert len(store._tasks) == 0


def test_memory_held_by_the_store_stays_flat_under_steady_load_even_with_long_leases():
    # Given a store with short retention, used by consumers that take 12-hour leases and
    # complete quickly: every completed lease leaves its deadline behind, due only in 12 h
    clock = FakeClock()
    store = MemoryStore(Policy(retention_seconds=1), clock)
    run_lifecycles(store, clock, 5_000, lease=43_200)  # warm up: fill the retention window

    # When 20,000 more lifecycles run
    tracemalloc.start()
    try:
        run_lifecycles(store, clock, 20_000, lease=43_200)
        grown, _peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    # Then the memory still held is about one retention window of tasks, not one entry per task
    # ever leased (20,000 stale lease deadlines would hold about 4 MB)
    assert sum(store.stats().values()) < BOUND
    assert grown < 1_500_000, f"the store kept {grown} bytes more after 20,000 lifecycles"
