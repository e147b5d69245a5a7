"""Draining a node: no new instances on it, every one it holds moved away.

The node is disabled with the reason "draining" (Nova's service status, so host_status
says MAINTENANCE and the scheduler passes it by). Each step reads what is left from the
database, asks core/drain_plan what to do, and starts it through the same functions as
the API's os-migrateLive, migrate and confirmResize: the scheduler picks every
destination, so anti-affinity and the other filters hold. Each start is a transaction
of its own; a refusal is remembered by this run (a new run tries it again).

The drain itself is a row of node_drains (db/drains.py): when it began, how many it
moves at once, its last progress, and which process runs it. A process steps a drain
only while it holds that row's claim (a conditional UPDATE, refreshed at every step), so
one process at a time moves a node's instances; any other (the API's view, a second
`atwill node drain`) only reads its progress. A claim whose process died, or that was
not refreshed for STALE seconds, is taken over: the leader's drain loop (drain_loop.py)
resumes every unfinished drain of a node still draining, so a controller restart or a
leader takeover continues it with no request. Restore deletes the row and re-enables
the node; the runner stops at its next step.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ...core import drain_plan, migration_states
from ...core.drain_plan import Attempt, Guest, Progress
from ...core.errors import ApiError, Conflict
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.base import utcnow
from ..db.drains import NodeDrain
from ..db.models import Instance, Migration, Node
from ..revision import bump
from ..servers import live_migration, resize
from . import nodes

log = logging.getLogger("atwill.cluster.drain")
LIVE_VERSION = Version(2, 34)  # a scheduling failure is the migration's (error), not a 400
STALE = 15.0  # seconds without a step after which another process takes a drain over


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def host_id(hostname: str, machine_id: str, boot_id: str, pid_ns: str) -> str:
    """Where a PID means one process: the hostname (to read) and a digest of the machine
    id, the boot and the PID namespace. Two containers with the same hostname differ in
    their machine id or PID namespace; the same machine after a reboot in its boot id."""
    digest = hashlib.sha256(f"{machine_id}|{boot_id}|{pid_ns}".encode()).hexdigest()
    return f"{hostname[:24]}@{digest[:12]}"


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


HOST = host_id(socket.gethostname(), _read("/etc/machine-id") or socket.gethostname(),
               _read("/proc/sys/kernel/random/boot_id"), _pid_namespace())


def runner_id() -> str:
    """This process, as a drain's claim names it: host/pid/random (host: host_id)."""
    return f"{HOST}/{os.getpid()}/{secrets.token_hex(4)}"


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
    runner: str = dataclasses.field(default_factory=runner_id)


def draining(node: Node) -> bool:
    return not node.enabled and node.disabled_reason == drain_plan.REASON


def _store(p: Progress) -> dict[str, Any]:
    return {"total": p.total, "done": p.done, "moving": list(p.moving),
            "stuck": [list(s) for s in p.stuck], "queued": p.queued}


def stored(row: NodeDrain | None) -> Progress | None:
    """The progress its runner last recorded."""
    if row is None or not row.progress:
        return None
    p = row.progress
    return Progress(total=p["total"], done=p["done"], moving=tuple(p["moving"]),
                    stuck=tuple((n, r) for n, r in p["stuck"]), queued=p["queued"])


def _record(session: Session, node: Node, parallel: int) -> NodeDrain:
    """A new run of the node's drain, from now (a same-second migration is still ours)."""
    held = len(nodes.instances_on(session, node))
    row = session.get(NodeDrain, node.id) or NodeDrain(node_id=node.id)
    start = Progress(total=held, done=0, moving=(), stuck=(), queued=held)
    row.since, row.parallel, row.total = utcnow() - dt.timedelta(seconds=1), parallel, held
    row.progress, row.runner, row.seen_at = _store(start), None, None
    row.finished_at = None if held else utcnow()
    session.add(row)
    session.flush()
    return row


def _claimed(row: NodeDrain, now: dt.datetime) -> bool:
    """Whether a live process (other than a dead one here) runs the drain."""
    if row.runner is None or row.seen_at is None:
        return False
    return row.seen_at >= now - dt.timedelta(seconds=STALE) and not _dead(row.runner)


def _dead(runner: str) -> bool:
    """A runner of this host (machine, boot and PID namespace: host_id) whose process is
    gone. Another host's, or one named by its hostname alone (before host_id), is only
    taken over once stale."""
    host, _, rest = runner.partition("/")
    pid = rest.partition("/")[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    return False


def resume(node: Node, row: NodeDrain, runner: str | None = None) -> Run:
    """A run continuing the recorded drain (what was refused to the last one is retried)."""
    run = Run(node.id, node.name, row.since, row.total, row.parallel, last=stored(row))
    if runner is not None:
        run.runner = runner
    return run


def begin(session: Session, node: Node, parallel: int = 2) -> Run:
    """Disable the node for draining; a new run from now, or the recorded one if it has
    not finished (the same if a live process runs it: this one then only watches)."""
    if node.state != "up":
        raise Conflict(f"Node {node.name} is {node.state}: its instances cannot be migrated "
                       f"away; evacuate them instead (atwill node evacuate {node.name}).")
    row = session.get(NodeDrain, node.id)
    if draining(node) and row is not None and row.finished_at is None:
        if not _claimed(row, utcnow()):
            row.parallel = parallel
        return resume(node, row)
    if not draining(node):
        nodes.set_enabled(session, node, False, drain_plan.REASON)
    return resume(node, _record(session, node, parallel))


def restore(session: Session, node: Node) -> None:
    """Schedule onto the node again; a run still going stops at its next step."""
    nodes.set_enabled(session, node, True, None)
    row = session.get(NodeDrain, node.id)
    if row is not None:
        session.delete(row)


def claim(session: Session, run: Run) -> bool:
    """Take (or keep) the drain's claim for this run's process; False if another live
    process holds it, or the drain has finished."""
    now = utcnow()
    row = session.get(NodeDrain, run.node_id)
    if row is None or row.finished_at is not None:
        return False
    free = [NodeDrain.runner.is_(None), NodeDrain.runner == run.runner,
            NodeDrain.seen_at < now - dt.timedelta(seconds=STALE)]
    if row.runner is not None and _dead(row.runner):
        free.append(NodeDrain.runner == row.runner)
    done = session.execute(update(NodeDrain).where(
        NodeDrain.node_id == run.node_id, NodeDrain.finished_at.is_(None), or_(*free))
        .values(runner=run.runner, seen_at=now).execution_options(synchronize_session=False))
    if not done.rowcount:
        return False
    if row.runner != run.runner:
        log.info("drain of %s run by %s (was %s)", run.node_name, run.runner, row.runner)
    return True


def _save(ctl: Controller, run: Run, progress: Progress) -> None:
    """Record the progress while this process still holds the claim; a finished drain
    gives its claim up."""
    now = utcnow()
    finished = progress.finished
    with ctl.db.session() as session:
        session.execute(update(NodeDrain).where(
            NodeDrain.node_id == run.node_id, NodeDrain.runner == run.runner,
            NodeDrain.since == run.since)
            .values(progress=_store(progress), seen_at=now,
                    finished_at=now if finished else None,
                    runner=None if finished else run.runner)
            .execution_options(synchronize_session=False))


def release(ctl: Controller, run: Run) -> None:
    """Give up the claim (another process may take the drain over at once)."""
    with ctl.db.session() as session:
        session.execute(update(NodeDrain).where(
            NodeDrain.node_id == run.node_id, NodeDrain.runner == run.runner)
            .values(runner=None).execution_options(synchronize_session=False))


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
    """Start what can start now if this process runs the drain; the progress as it
    stands (as its runner recorded it, if another process runs it)."""
    with ctl.db.session() as session:
        node = session.get(Node, run.node_id)
        row = session.get(NodeDrain, run.node_id)
        if node is None or not draining(node) or row is None:
            raise Conflict(f"Node {run.node_name} is no longer draining (restored, "
                           "re-enabled or removed).")
        if row.since != run.since:  # a new run began since (a drain after it ended)
            run.since, run.total, run.refused = row.since, row.total, {}
        run.parallel = row.parallel
        if not claim(session, run):
            run.last = stored(row) or run.last or Progress(run.total, 0, (), (), run.total)
            if row.finished_at is not None and not run.last.finished:
                run.last = dataclasses.replace(run.last, moving=(), queued=0)
            return run.last
        decisions = drain_plan.plan(guests(session, run), run.parallel)
    for d in decisions:
        if d.action in (drain_plan.LIVE, drain_plan.COLD, drain_plan.CONFIRM):
            _start(ctl, run, d)
    run.last = drain_plan.progress(decisions, run.total)
    _save(ctl, run, run.last)
    return run.last


def run_until_done(ctl: Controller, run: Run, report: Callable[[Progress], None],
                   interval: float = 1.0, timeout: float = 3600.0) -> Progress:
    """Step until nothing moves or waits any more (or timeout: what is left is stuck, and
    the claim is given up, so the controller's drain loop carries the drain on)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            progress = step(ctl, run)
            report(progress)
            if progress.finished:
                return progress
            if time.monotonic() > deadline:
                left = progress.moving + tuple(n for n, _ in progress.stuck)
                return dataclasses.replace(
                    progress, moving=(), queued=0, stuck=progress.stuck + tuple(
                        (n, "still moving at the timeout") for n in left
                        if n in progress.moving))
            time.sleep(interval)
    finally:
        release(ctl, run)


def view(session: Session, node: Node, held: int) -> dict:
    """The drain as the cluster API shows it (from the database: any process can)."""
    row = session.get(NodeDrain, node.id) if draining(node) else None
    p = stored(row)
    finished = row.finished_at is not None if row is not None else not held
    return {"node": node.name, "draining": draining(node), "instances": held,
            "total": p.total if p else held, "done": p.done if p else 0,
            "moving": list(p.moving) if p else [], "queued": p.queued if p else 0,
            "stuck": [{"server": n, "reason": r} for n, r in p.stuck] if p else [],
            "finished": finished,
            # Under way: recorded and not finished (the leader's loop runs it if no one does).
            "running": draining(node) and not finished}
