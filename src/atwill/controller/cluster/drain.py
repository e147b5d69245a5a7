"""Draining a node: no new instances on it, every one it holds moved away.

The node is disabled with the reason "draining" (Nova's service status, so host_status
says MAINTENANCE and the scheduler passes it by). Each step reads what is left from the
database, asks core/drain_plan what to do, and starts it through the same functions as
the API's os-migrateLive, migrate and confirmResize: the scheduler picks every
destination, so anti-affinity and the other filters hold. Each start is a transaction
of its own; a refusal is remembered by this run (a new run tries it again).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import drain_plan, migration_states, resize_states
from ...core.drain_plan import Attempt, Guest, Progress
from ...core.errors import ApiError, Conflict
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Instance, Migration, Node
from ..revision import bump
from ..servers import live_migration, resize
from . import nodes

log = logging.getLogger("atwill.cluster.drain")
LIVE_VERSION = Version(2, 34)  # a scheduling failure is the migration's (error), not a 400


@dataclasses.dataclass
class Run:
    """One drain run of a node: when it began (its migrations are those since), how many
    instances the node held then, and what was refused to it."""

    node_id: str
    node_name: str
    since: dt.datetime
    total: int
    parallel: int = 2
    refused: dict[str, Attempt] = dataclasses.field(default_factory=dict)
    last: Progress | None = None


def draining(node: Node) -> bool:
    return not node.enabled and node.disabled_reason == drain_plan.REASON


def begin(session: Session, node: Node, parallel: int = 2) -> Run:
    """Disable the node for draining (again: the same) and start a run from now."""
    if node.state != "up":
        raise Conflict(f"Node {node.name} is {node.state}: its instances cannot be migrated "
                       f"away; evacuate them instead (atwill node evacuate {node.name}).")
    if not draining(node):
        nodes.set_enabled(session, node, False, drain_plan.REASON)
    since = utcnow() - dt.timedelta(seconds=1)  # a same-second migration is still ours
    return Run(node.id, node.name, since, len(nodes.instances_on(session, node)), parallel)


def restore(session: Session, node: Node) -> None:
    """Schedule onto the node again; a run still going stops at its next step."""
    nodes.set_enabled(session, node, True, None)


def guests(session: Session, run: Run) -> list[Guest]:
    """The instances still on the node, and those whose cold migration from it waits to
    be confirmed (they are on the destination by then)."""
    held = {i.id: i for i in session.scalars(select(Instance).where(
        Instance.node_id == run.node_id, Instance.deleted.is_(False)))}
    ours = list(session.scalars(select(Migration).where(
        Migration.source_node_id == run.node_id, Migration.created_at >= run.since)
        .order_by(Migration.id)))
    for m in ours:
        if m.status == "finished" and m.instance_uuid not in held:
            inst = session.get(Instance, m.instance_uuid)
            if inst is not None and not inst.deleted:
                held[inst.id] = inst
    attempts: dict[str, list[Attempt]] = {}
    for m in ours:
        attempts.setdefault(m.instance_uuid, []).append(
            Attempt(m.migration_type, m.status, m.message))
    for inst_id, refusal in run.refused.items():
        attempts.setdefault(inst_id, []).append(refusal)
    return [Guest(id=i.id, name=i.name or i.id, vm_state=i.vm_state,
                  task_state=i.task_state, memory_mb=i.memory_mb or 0,
                  pci=bool(i.pci_devices), attempts=tuple(attempts.get(i.id, ())))
            for i in held.values()]


def _start(ctl: Controller, run: Run, decision: drain_plan.Decision) -> None:
    """Start one move in a transaction of its own; a refusal is remembered with its why."""
    kind = "live-migration" if decision.action == drain_plan.LIVE else "migration"
    request_id = f"req-drain-{run.node_name}"[:64]
    try:
        with ctl.db.session() as session:
            inst = session.get(Instance, decision.guest.id)
            if inst is None or inst.deleted:
                return
            creds = Credentials(user_id="atwill-drain", project_id=inst.project_id)
            if decision.action == drain_plan.LIVE:
                if not ctl.settings.live_migration:
                    raise Conflict("live migration is turned off (setting live_migration)")
                body = migration_states.LiveRequest(None, "auto", False)
                live_migration.start(session, ctl, inst, body, request_id, creds,
                                     LIVE_VERSION)
            elif decision.action == drain_plan.COLD:
                resize.start(session, ctl, inst, None, None, request_id, creds)
            else:
                resize.confirm(session, inst, request_id, None)
            bump(session)
        log.info("drain of %s: %s %s", run.node_name, decision.action, decision.guest.id)
    except ApiError as err:
        log.info("drain of %s: %s of %s refused: %s", run.node_name, decision.action,
                 decision.guest.id, err)
        if decision.action != drain_plan.CONFIRM:  # (auto-confirm may have been first)
            run.refused[decision.guest.id] = Attempt(kind, "error", str(err))


def step(ctl: Controller, run: Run) -> Progress:
    """Start what can start now; the progress as it stands."""
    with ctl.db.session() as session:
        node = session.get(Node, run.node_id)
        if node is None or not draining(node):
            raise Conflict(f"Node {run.node_name} is no longer draining (restored, "
                           "re-enabled or removed).")
        decisions = drain_plan.plan(guests(session, run), run.parallel)
    for d in decisions:
        if d.action in (drain_plan.LIVE, drain_plan.COLD, drain_plan.CONFIRM):
            _start(ctl, run, d)
    run.last = drain_plan.progress(decisions, run.total)
    return run.last


def run_until_done(ctl: Controller, run: Run, report: Callable[[Progress], None],
                   interval: float = 1.0, timeout: float = 3600.0) -> Progress:
    """Step until nothing moves or waits any more (or timeout: what is left is stuck)."""
    deadline = time.monotonic() + timeout
    while True:
        progress = step(ctl, run)
        report(progress)
        if progress.finished:
            return progress
        if time.monotonic() > deadline:
            left = progress.moving + tuple(n for n, _ in progress.stuck)
            return dataclasses.replace(progress, moving=(), queued=0, stuck=progress.stuck
                                       + tuple((n, "still moving at the timeout")
                                               for n in left if n in progress.moving))
        time.sleep(interval)


def moving_from(session: Session, node: Node) -> bool:
    """Whether a migration from the draining node is under way (or waits for confirm)."""
    if not draining(node):
        return False
    statuses = migration_states.IN_PROGRESS | resize_states.MOVING | {"finished"}
    return session.scalar(select(Migration.id).where(
        Migration.source_node_id == node.id, Migration.status.in_(sorted(statuses))).limit(1)) \
        is not None


def view(run: Run | None, node: Node, held: int) -> dict:
    """The drain as the cluster API shows it."""
    p = run.last if run is not None else None
    return {"node": node.name, "draining": draining(node), "instances": held,
            "total": p.total if p else held, "done": p.done if p else 0,
            "moving": list(p.moving) if p else [], "queued": p.queued if p else 0,
            "stuck": [{"server": n, "reason": r} for n, r in p.stuck] if p else [],
            "finished": (p.finished if p else not held)}
