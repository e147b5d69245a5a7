"""Draining a node: which instance moves how, in what order, and what is left.

Pure: the controller (controller/cluster/drain.py) gathers each instance still on the
node with the migrations this drain made of it, and applies what `plan` says. Every
decision is taken again from the database at each step, so a drain run again (or after
a crash) continues with what is left; an instance already gone is no longer asked about.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from . import migration_states, resize_states

LIVE, COLD, CONFIRM, WAIT, STUCK = "live", "cold", "confirm", "wait", "stuck"
REASON = "draining"  # the node's disabled_reason while it drains (Nova's service set)
FAILED = frozenset({"error", "failed", "cancelled"})
COLD_TYPES = frozenset({"migration", "resize"})


@dataclasses.dataclass(frozen=True)
class Attempt:
    """A migration of the instance from the drained node, started by this drain."""

    kind: str  # "live-migration" or "migration"
    status: str
    message: str | None = None


@dataclasses.dataclass(frozen=True)
class Guest:
    id: str
    name: str
    vm_state: str
    task_state: str | None
    memory_mb: int
    pci: bool = False
    attempts: tuple[Attempt, ...] = ()  # oldest first


@dataclasses.dataclass(frozen=True)
class Decision:
    guest: Guest
    action: str
    reason: str = ""


@dataclasses.dataclass(frozen=True)
class Progress:
    total: int
    done: int
    moving: tuple[str, ...]
    stuck: tuple[tuple[str, str], ...]  # (name, why)
    queued: int

    @property
    def finished(self) -> bool:
        """Nothing is moving or waiting to start: what is left cannot move."""
        return not self.moving and not self.queued


def _in_progress(a: Attempt) -> bool:
    if a.kind == "live-migration":
        return a.status in migration_states.IN_PROGRESS
    return a.status in resize_states.MOVING or a.status in ("finished", "reverting")


def decide(g: Guest) -> Decision:
    """How this instance leaves the node now (or why it waits, or cannot)."""
    last = g.attempts[-1] if g.attempts else None
    if last is not None and last.kind in COLD_TYPES and last.status == "finished":
        return Decision(g, CONFIRM)
    if last is not None and _in_progress(last):
        return Decision(g, WAIT, f"{last.kind} {last.status}")
    cold_failed = [a for a in g.attempts if a.kind in COLD_TYPES and a.status in FAILED]
    if cold_failed:
        return Decision(g, STUCK, f"cold migration failed: {cold_failed[-1].message or '?'}")
    if g.task_state is not None:
        return Decision(g, WAIT, f"busy ({g.task_state})")
    live_failed = [a for a in g.attempts if a.kind == "live-migration" and a.status in FAILED]
    live_ok = g.vm_state in migration_states.LIVE_FROM and not g.pci
    if live_ok and not live_failed:
        return Decision(g, LIVE)
    if g.vm_state in resize_states.RESIZE_FROM:
        why = (f"live migration failed: {live_failed[-1].message or '?'}" if live_failed
               else "PCI passthrough" if g.pci else f"vm_state {g.vm_state}")
        return Decision(g, COLD, why)
    if live_failed:
        return Decision(g, STUCK, f"live migration failed: {live_failed[-1].message or '?'}")
    return Decision(g, STUCK, f"cannot move an instance in vm_state {g.vm_state}")


def plan(guests: Iterable[Guest], parallel: int) -> list[Decision]:
    """Every guest's decision; at most `parallel` moving at once (starts beyond it wait).

    Confirms first (they free the source), then the largest guests first: they are the
    hardest to place, so they go while the other nodes have the most room."""
    guests = list(guests)
    decisions = [decide(g) for g in guests]
    busy = sum(bool(g.attempts) and _in_progress(g.attempts[-1]) for g in guests)
    order = {CONFIRM: 0, LIVE: 1, COLD: 1, WAIT: 2, STUCK: 3}
    decisions.sort(key=lambda d: (order[d.action], -d.guest.memory_mb, d.guest.name))
    out = []
    for d in decisions:
        if d.action in (LIVE, COLD):
            if busy >= parallel:
                d = Decision(d.guest, WAIT, f"queued ({d.action})")
            busy += 1
        out.append(d)
    return out


def progress(decisions: Sequence[Decision], total: int) -> Progress:
    """Where the drain is: total is how many instances the node held when it began."""
    moving = tuple(d.guest.name for d in decisions if d.action in (LIVE, COLD, CONFIRM)
                   or (d.action == WAIT and not d.reason.startswith("queued")))
    queued = sum(d.action == WAIT and d.reason.startswith("queued") for d in decisions)
    stuck = tuple((d.guest.name, d.reason) for d in decisions if d.action == STUCK)
    return Progress(total=max(total, len(decisions)), done=max(total - len(decisions), 0),
                    moving=moving, stuck=stuck, queued=queued)
