"""Stores: where tasks live. `create_store` is the one place that maps a backend name to a class."""

from __future__ import annotations

from .base import Policy, Store
from .memory import MemoryStore

BACKENDS = ("memory",)


def create_store(backend: str, policy: Policy | None = None) -> Store:
    """Build the store for a backend name (see `BACKENDS`)."""
    if backend == "memory":
        return MemoryStore(policy)
    raise ValueError(f"unknown backend '{backend}'; choose one of: {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "MemoryStore", "Policy", "Store", "create_store"]
