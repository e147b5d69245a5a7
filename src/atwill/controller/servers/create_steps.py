"""A server create in two transactions, so a project's quota lock is held only while its
quota is decided (issue 19: one project's creates waited in line for each other's whole
create, scheduling and ports included: 3.7/s on PostgreSQL).

1. record (builds.record, under locks.lock_project): the checks, the quotas and the
   servers' rows (BUILD, task 'scheduling', on no node), committed. The commit releases
   the lock; the rows, counted by the next create's quota check, keep the quota exact.
2. place (outside the lock): each server's row locked, then scheduled and claimed and its
   ports made, as builds.place_all does in the one-transaction create. Creates of one
   project now overlap there, as creates of different projects always did (claims are
   conditional updates, addresses are claimed by network/ipalloc without conflicts).

If step 2 fails (an address that cannot be had, a fixed IP taken: its 409 is answered as
before), undo() deletes the servers step 1 recorded, as Nova destroys the instances it
recorded when a create fails after recording them. If the controller dies between the
steps (or step 2 and its undo both fail), the servers stay recorded on no node: the
leader's sweep (background.py) deletes those recorded more than STALE seconds ago as
undo() does, never places them. The client of such a create never had its 202 (sent
only once step 2 has committed): it was told the create failed, and a retrying client
(Heat, Terraform, the SDKs) has made another; placing it would make a duplicate that
uses quota and is billed (review finding). Step 2 and the sweep lock the rows (the sweep
skips those locked), and a server deleted in between is left alone by both. The sweep
takes one short transaction per server (a row lock is not held for a batch; one that
fails is logged and skipped, not the batch rolled back) and at most SWEEP_CAP seconds a
pass (it runs in the HA monitor's pass).

undo() releases what compute/servers.delete releases of a server on no node (ports made
for it, volumes' attachments), but is not delete() itself: its bump() of a server on no
node wakes every node's agent (node_scope.of_instance); undo's wakes only the nodes of
the rows it released. A server waiting between the steps has no node, resize, snapshot
or shelve image to release (those need a placed server).

Not split, one transaction under the lock as before (splits()): SQLite (one writer at a
time anyway, BEGIN IMMEDIATE), boot from volume (its volumes are charged to the project's
volume quota in the same transaction), a server group hint (the members' hosts are read
and decided on under the project's lock: tests/api/test_server_group_race.py), and a port
of the user's (its device is taken at placement: two creates could take one port).

Figures (`atwill bench creates --nodes 50 --seconds 30 --connections 8`, one project, a
shared network; before = the one-transaction create, alternating in one hold of the
machine, 2026-12-07 17:50, 2 vCPUs, load 1.4-2.5, one run each): PostgreSQL 3.68 -> 6.40
accepted/s (1.74x), ACTIVE steady 3.23 -> 6.65/s, POST p50 2.2 -> 1.2 s, controller CPU a
create 279 -> 179 ms; with 2 workers 6.59/s. SQLite (not split; only the ports made bound
and the image's properties read as one column apply) 17.7 -> 22.4/s. Goal 20/s on
PostgreSQL still missed: the one controller process is CPU-bound (~1.15 cores in both
engines' runs), and on PostgreSQL a create and the fleet's heartbeats cost ~3x the CPU
they cost on SQLite.

Since (2026-12-07 21:28-21:39, `atwill bench creates --database-url ...` with its
defaults: 50 nodes, 8 connections, 60 s, one project; before = ca636f2's tree, run
alternating with this one in one hold, load 2.0-6.9): fewer queries a create and a
desired-state build (the quota's usage statement built once; a flavor's access list and
an image's tags and members not loaded; the security groups' lookup before the default
group's two reads; a new server's bump naming its node instead of node_scope's three
queries; no group membership query without a group hint; no boot-volume query for a
server without an attachment; a node's cold migrations read once a build, not six
times). One worker 5.68, 5.27 -> 7.49, 7.53 accepted/s (1.32-1.43x), controller CPU a
create 202, 212 -> 145, 147 ms; two workers (`--workers 2`) 5.67 -> 6.90/s (1.22x),
250 -> 194 ms. Goal 20/s still missed: of the controller's GIL time before, heartbeats
29 % (cluster/), step 2 17 %, step 1 15 %, desired-state builds 11 %.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import Conflict
from ...core.every import Every
from ...core.policy import Credentials
from ..compute import server_volumes_state
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Image, Instance
from ..db.session import Database
from ..revision import bump
from . import actions, builds, ports

log = logging.getLogger("atwill.servers")
# Seconds a server may stay recorded on no node before the sweep deletes it: well above
# SQLAlchemy's pool timeout (30 s), which a step 2 waiting for a connection under a burst
# may spend before it even starts (review finding: at 30 s a running create's servers
# could be swept), plus its own run.
STALE = 120.0
SWEEP_EVERY = 10.0
SWEEP_BATCH = 50
SWEEP_CAP = 1.0  # seconds of one pass at most (the HA monitor's pass waits for it)
SWEEPER = Every(SWEEP_EVERY)


def splits(dialect: str, spec: dict[str, Any]) -> bool:
    """Whether this create is made in two steps (see the module's docstring)."""
    if dialect != "postgresql" or spec.get("block_devices"):
        return False
    if (spec.get("hints") or {}).get("group"):
        return False
    networks = spec.get("networks")
    return not (isinstance(networks, list) and any(
        isinstance(item, dict) and item.get("port") for item in networks))


def record(session: Session, ctl: Controller, creds: Credentials, spec: dict[str, Any],
           request_id: str) -> list[Instance]:
    """Step 1: the servers recorded, quota-checked under the project's lock."""
    made = builds.record(session, ctl, creds, spec, request_id, lock=True)
    # Step 2 makes the ports with these groups: an unknown one is a 400 now, before the
    # servers are committed (and the project's default group is made under its lock).
    ports.group_ids(session, creds.project_id or "", spec.get("security_groups") or
                    ["default"])
    return made


def waiting(inst: Instance) -> bool:
    """Recorded by step 1 and not placed, failed or deleted since."""
    return (not inst.deleted and inst.node_id is None and inst.vm_state == "building"
            and inst.task_state == "scheduling")


def place(session: Session, ctl: Controller, creds: Credentials,
          ids: list[str]) -> list[Instance]:
    """Step 2: the recorded servers (in their order) scheduled, claimed, given ports."""
    # Each row locked with its image's properties (what scheduling reads of the image)
    # in the same statement.
    locked = session.execute(
        select(Instance, Image.properties).outerjoin(Image, Image.id == Instance.image_id)
        .where(Instance.id.in_(ids)).order_by(Instance.id).with_for_update(of=Instance)).all()
    rows = {inst.id: inst for inst, _ in locked}
    properties = {inst.id: props for inst, props in locked}
    made = [rows[i] for i in ids if i in rows]
    gone = [i for i in ids if i not in rows or not waiting(rows[i])]
    if gone:
        # Deleted before this step locked them (the sweep, after this controller stalled
        # past STALE between the steps; or a delete): never a 202 for a server not made.
        raise Conflict(f"The server create was interrupted: server {gone[0]} was deleted "
                       "before it was scheduled. Create it again.")
    builds.place_all(session, ctl, creds, made, [], properties)
    return made


def settle(session: Session, inst: Instance) -> None:
    """Before a delete: if step 2 may be placing inst (PostgreSQL), wait for its row lock
    and read the row again, so what it claimed is freed by the delete. Only then: the row
    lock taken before the node's is not a heartbeat's order."""
    if waiting(inst) and session.get_bind().dialect.name == "postgresql":
        session.refresh(inst, with_for_update=True)


def undo(session: Session, ids: list[str], request_id: str, creds: Credentials) -> None:
    """Step 2 failed (its transaction rolled back: no claim, port or address of its own
    is left): the servers step 1 recorded, those still waiting, deleted as a delete
    deletes them (their quota given back, a delete action, the usage log's delete event),
    with what a delete releases that a tenant pointed at them between the steps: a volume
    attachment reserved for one (Cinder's POST /attachments), a port whose device_id
    names one. No node ever had them: only the nodes the released rows concern are
    woken (node_scope follows ports and volumes), not every node as delete()'s bump of a
    server on no node would."""
    undone = False
    for inst in session.scalars(select(Instance).where(Instance.id.in_(ids))
                                .order_by(Instance.id).with_for_update()):
        if waiting(inst):
            actions.start(session, inst.id, "delete", request_id, creds.user_id,
                          creds.project_id)
            ports.free(session, inst)
            server_volumes_state.on_server_delete(session, inst)
            inst.deleted, inst.vm_state, inst.task_state = True, "deleted", None
            inst.terminated_at = utcnow()
            undone = True
    if undone:
        bump(session, nodes=())


def stale(session: Session, older_than: float = STALE) -> list[str]:
    """The ids of servers recorded more than older_than seconds ago and still on no node
    (read, not locked: sweep() locks each in its own transaction)."""
    since = utcnow() - dt.timedelta(seconds=older_than)
    return list(session.scalars(
        select(Instance.id).where(Instance.deleted.is_(False), Instance.node_id.is_(None),
                                  Instance.vm_state == "building",
                                  Instance.task_state == "scheduling",
                                  Instance.created_at <= since)
        .order_by(Instance.created_at, Instance.id).limit(SWEEP_BATCH)))


def _sweep_one(session: Session, server_id: str, older_than: float) -> bool:
    """One stale server deleted as undo() does, if still waiting and not locked (a
    create's step 2 holds it: skipped)."""
    since = utcnow() - dt.timedelta(seconds=older_than)
    inst = session.scalar(select(Instance).where(Instance.id == server_id,
                                                 Instance.created_at <= since)
                          .with_for_update(skip_locked=True))
    if inst is None or not waiting(inst):
        return False
    log.warning("server %s of project %s was recorded %s and never scheduled (its create "
                "stopped between its steps; its client was not answered 202): deleted",
                inst.id, inst.project_id, inst.created_at)
    creds = Credentials(user_id=inst.user_id, project_id=inst.project_id,
                        roles=frozenset({"member"}))
    undo(session, [inst.id], f"req-{uuid.uuid4()}", creds)
    return True


def sweep(db: Database, older_than: float = STALE, cap: float = SWEEP_CAP,
          guard: Callable[[Session], bool] = lambda _session: True) -> list[str]:
    """Servers whose create stopped after step 1, deleted (never placed: see the
    module's docstring), each in its own transaction where guard(session) holds (the
    leader's check); one that fails is logged and skipped. Stops after the server that
    passes `cap` seconds. The ids of those deleted."""
    end = time.monotonic() + cap
    with db.session() as session:
        ids = stale(session, older_than)
    swept = []
    for server_id in ids:
        try:
            with db.session() as session:
                done = guard(session) and _sweep_one(session, server_id, older_than)
            if done:
                swept.append(server_id)
        except Exception:  # noqa: BLE001 - one server's failure must not stop the others
            log.exception("server %s: the sweep of creates stopped between their steps "
                          "failed; retried next pass", server_id)
        if time.monotonic() >= end:
            break
    return swept


def due() -> bool:
    return SWEEPER.due()
