"""Which storage node takes a new volume: the one with the most room that fits it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Backend:
    node_id: str
    name: str
    free_gb: int
    allocated_gb: int

    @property
    def room_gb(self) -> int:
        return self.free_gb - self.allocated_gb


def storage_of(inventory: dict[str, Any] | None) -> dict[str, Any] | None:
    """The inventory's 'storage' object, or None when the node stores no volumes."""
    storage = (inventory or {}).get("storage")
    return storage if isinstance(storage, dict) else None


def free_gb(inventory: dict[str, Any] | None) -> int:
    storage = storage_of(inventory) or {}
    value = storage.get("free_gb", 0)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def pick(backends: Iterable[Backend], size_gb: int) -> Backend | None:
    """The backend with the most room left after size_gb; None when none has room.

    The node's free_gb is what its disk had free at its last report, and volumes
    are sparse files: what the controller already gave it counts as taken, so two
    creates in a row cannot both be promised the same free space."""
    fitting = [b for b in backends if b.room_gb >= size_gb]
    if not fitting:
        return None
    return max(fitting, key=lambda b: (b.room_gb - size_gb, b.name))
