"""Stores: where tasks live. `create_store` is the one place that maps a backend name to a class."""

from __future__ import annotations

from .base import Policy, Store
from .memory import MemoryStore
from .sqlite import SqliteStore

BACKENDS = ("memory", "sqlite")


def create_store(
    backend: str, policy: Policy | None = None, db: str = "tornado_queue.db", sync: str = "full"
) -> Store:
    """Build the store for a backend name (see `BACKENDS`)."""
    if backend == "memory":
        return MemoryStore(policy)
    if backend == "sqlite":
        return SqliteStore(db, policy, sync=sync)
    raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MemoryStore", "Policy", "SqliteStore", "Store", "create_store"]
