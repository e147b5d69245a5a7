"""The steps of an apply carried out through the APIs, each change with its undo.

Every request that changes the cloud pushes the request that takes it back. When a step
fails, what the apply did so far is undone in reverse order, so a failure leaves the
cloud as it was — except deletions, which cannot be taken back: they run last, after
every create and change has succeeded, and the error names those already done.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.profile import State
from ..core.profile_plan import Step, plain
from ..core.profile_schema import QUOTAS
from . import apply_kinds
from .apply_api import Api, ApplyError

Undo = Callable[[], Any]


class ApplyFailed(ApplyError):
    pass


class Executor:
    def __init__(self, api: Api, current: State, base: Path,
                 echo: Callable[[str], None]) -> None:
        self.api, self.current, self.base, self.echo = api, current, base, echo
        self.undos: list[tuple[str, Undo]] = []
        self.deleted: list[str] = []

    def did(self, label: str, undo: Undo) -> None:
        self.undos.append((label, undo))

    def run(self, steps: list[Step]) -> None:
        for number, step in enumerate(steps, 1):
            self.echo(f"[{number}/{len(steps)}] {step.describe()}")
            try:
                apply_kinds.HANDLERS[step.kind](self, step)
            except Exception as err:  # noqa: BLE001 - any failure undoes the steps before
                why = getattr(err, "message", None) or str(err) or type(err).__name__
                raise ApplyFailed(self.failed(number, len(steps), step, why)) from None
            if step.action == "delete":
                self.deleted.append(step.describe()[2:])

    def failed(self, number: int, total: int, step: Step, why: str) -> str:
        left = self.rollback()
        told = f"step {number}/{total} ({step.describe()}) failed: {why}. "
        told += (f"The {len(self.undos)} change(s) this apply had made were undone"
                 if not left else f"Undoing failed for: {'; '.join(left)}")
        if self.deleted:
            told += f"; these deletions stand: {', '.join(self.deleted)}"
        return told + "."

    def rollback(self) -> list[str]:
        """Undo every change in reverse order; what could not be undone, said."""
        left = []
        for label, undo in reversed(self.undos):
            try:
                undo()
            except Exception as err:  # noqa: BLE001 - go on undoing the rest
                left.append(f"{label} ({getattr(err, 'message', err)})")
        return left

    # Name lookups in the cloud as it is now (steps add what they make).
    def id_of(self, kind: str, key: str) -> str:
        entry = self.current[kind].get(key)
        if entry is None:
            raise ApplyError(f"{kind} {key} does not exist")
        return entry["_id"]

    def id_near(self, kind: str, project: str, name: str) -> str:
        """A network or subnet of the project by name, else the only one so named."""
        if f"{project}/{name}" in self.current[kind]:
            return self.current[kind][f"{project}/{name}"]["_id"]
        found = [e["_id"] for k, e in self.current[kind].items()
                 if k.split("/", 1)[1] == name]
        if len(found) != 1:
            raise ApplyError(f"{len(found)} {kind} are named {name}: give one in "
                             f"project {project}")
        return found[0]

    def set_quotas(self, project_id: str, values: dict[str, int]) -> None:
        by_service: dict[str, dict[str, int]] = {}
        for name, value in values.items():
            service, key = QUOTAS[name]
            by_service.setdefault(service, {})[key] = value
        for service, body in by_service.items():
            if service == "compute":
                self.api.call("PUT", "compute", f"/os-quota-sets/{project_id}",
                              {"quota_set": body})
            elif service == "network":
                self.api.call("PUT", "network", f"/quotas/{project_id}", {"quota": body})
            else:
                self.api.call("PUT", "block-storage", f"/os-quota-sets/{project_id}",
                              {"quota_set": body})


def changed(step: Step, *names: str) -> dict[str, Any]:
    """The new values of the named fields the step changes."""
    return {n: step.changes[n][1] for n in names if n in step.changes}


def before(step: Step, *names: str) -> dict[str, Any]:
    return {n: plain((step.have or {}).get(n)) for n in names if n in step.changes}
