"""Stores: where tasks live. `create_store` is the one place that maps a backend name to a class."""

from __future__ import annotations

from tornado_queue.config import BACKENDS
from tornado_queue.storage.base import Policy, Store
from tornado_queue.storage.memory import MemoryStore
from tornado_queue.storage.sqlite import SqliteStore


def create_store(
    backend: str,
    policy: Policy | None = None,
    *,
    db: str = "tornado_queue.db",
    sync: str = "full",
    redis_url: str = "redis://127.0.0.1:6379/0",
    redis_prefix: str = "{tq}",
) -> Store:
    """Build the store for a backend name (see `BACKENDS`)."""
    if backend == "memory":
        return MemoryStore(policy)
    if backend == "sqlite":
        return SqliteStore(db, policy, sync=sync)
    if backend == "redis":
        # Imported here so the memory and SQLite stores never need redis-py loaded.
        from tornado_queue.storage.redis import RedisStore  # noqa: PLC0415

        return RedisStore(redis_url, policy, prefix=redis_prefix)
    raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MemoryStore", "Policy", "SqliteStore", "Store", "create_store"]
