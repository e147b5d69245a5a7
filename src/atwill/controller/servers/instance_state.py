"""Nova's check_instance_state: the one answer every server action gives when the
instance's state forbids it."""

from __future__ import annotations

from ...core.errors import Conflict
from ..db.models import Instance


def check(inst: Instance, name: str, allowed: frozenset[str]) -> None:
    """An allowed vm_state, then no task in progress, or Nova's 409 for the first miss."""
    if inst.vm_state not in allowed:
        raise refused(inst, name, "vm_state", inst.vm_state)
    if inst.task_state is not None:
        raise refused(inst, name, "task_state", inst.task_state)


def refused(inst: Instance, name: str, attr: str, state: str | None) -> Conflict:
    return Conflict(f"Cannot '{name}' instance {inst.id} while it is in {attr} {state}")
