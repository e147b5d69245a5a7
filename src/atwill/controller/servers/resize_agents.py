"""A cold migration or resize between two agents, carried by desired states and calls.

1. pre-migrating: the source's desired state no longer runs the instance (its agent
   stops the guest, keeping the disk) and lists it under cold_migrations.send; the
   agent uploads the instance's disk (its qcow2 overlay) to the controller: migrating
   while it sends, post-migrating once the controller holds it.
2. post-migrating: the destination's desired state lists it under
   cold_migrations.receive; its agent fetches the disk, grows it to the new flavor's
   root size and says so: the instance, its ports and its new flavor move to the
   destination (resize_finish), whose agent starts it; running, it is VERIFY_RESIZE.
   On the same node (allow_resize_to_same_host) nothing is sent: the disk is grown,
   the node keeping it as it was first.
3. confirm destroys the source's copy; revert destroys the destination's, and the
   source starts its kept copy again. A failure before 2 ends leaves the instance on its
   source as it was (error), the destination's claim and copy given up. On the same
   node, confirm_local deletes the kept disk; revert_local (the instance withheld until
   the node says it put the kept disk back: reverted) restores it.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core import resize_states
from ...core.errors import Conflict, Forbidden, NotFound
from ...core.nodereports import REPORT_ERROR_CHARS
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Instance, Migration, Node
from ..revision import bump
from ..volume import attachment_keys
from . import actions, placement, ports, resize_pci
from .resize import apply_flavor

log = logging.getLogger("atwill.servers.resize")
FORGET_AFTER = dt.timedelta(days=7)
TYPES = ("migration", "resize")


def transfer_path(ctl: Controller, record: Migration) -> Path:
    """Where the controller keeps a disk between its upload and its fetch."""
    return ctl.settings.path("cold-migrations", f"{record.uuid}.qcow2")


def _moving(session: Session, node: Node) -> list[Migration]:
    return list(session.scalars(select(Migration).where(
        Migration.migration_type.in_(TYPES), Migration.status.in_(resize_states.MOVING),
        or_(Migration.source_node_id == node.id, Migration.dest_node_id == node.id))
        .order_by(Migration.id)))


def _local(session: Session, node: Node, status: str) -> list[Migration]:
    """node's resizes on itself in status (a confirmed one for a week, its kept disk's
    deletion retried by an agent restarted meanwhile)."""
    return list(session.scalars(select(Migration).where(
        Migration.migration_type.in_(TYPES), Migration.status == status,
        Migration.source_node_id == node.id, Migration.dest_node_id == node.id,
        Migration.created_at > utcnow() - FORGET_AFTER).order_by(Migration.id)))


class _Known:
    """node's records _moving and _local read, in one query (the same rows, in order)."""

    def __init__(self, session: Session, node: Node) -> None:
        recent = utcnow() - FORGET_AFTER
        rows = list(session.scalars(select(Migration).where(
            Migration.migration_type.in_(TYPES),
            or_(Migration.source_node_id == node.id, Migration.dest_node_id == node.id),
            or_(Migration.status.in_(resize_states.MOVING),
                (Migration.source_node_id == node.id) & (Migration.dest_node_id == node.id)
                & (Migration.created_at > recent))).order_by(Migration.id)))
        self.moving = [r for r in rows if r.status in resize_states.MOVING]
        # A record not moving is here only as a recent one on the node itself.
        self.local = {status: [r for r in rows if r.status == status]
                      for status in ("reverting", "confirmed")}


def _moving_of(session: Session, node: Node, known: _Known | None) -> list[Migration]:
    return known.moving if known is not None else _moving(session, node)


def _local_of(session: Session, node: Node, status: str,
              known: _Known | None) -> list[Migration]:
    return known.local[status] if known is not None else _local(session, node, status)


def desired(session: Session, node: Node, known: _Known | None = None
            ) -> dict[str, list[dict[str, Any]]]:
    """What node sends and receives, and the disks it kept for a resize on itself that it
    puts back or deletes: its cold_migrations block."""
    send, receive = [], []
    for record in _moving_of(session, node, known):
        same = record.source_node_id == record.dest_node_id
        item = {"migration": record.uuid, "instance": record.instance_uuid}
        if record.source_node_id == node.id and not same \
                and record.status in ("pre-migrating", "migrating"):
            send.append(item)
        ready = record.status == "post-migrating" or (same and record.status != "migrating")
        if record.dest_node_id == node.id and ready:
            disk = int((record.new_flavor or {}).get("disk") or 0)
            receive.append({**item, "disk_gb": disk, "local": same})
    return {"send": send, "receive": receive, **{
        f"{name}_local": [{"migration": r.uuid, "instance": r.instance_uuid}
                          for r in _local_of(session, node, status, known)]
        for name, status in (("revert", "reverting"), ("confirm", "confirmed"))}}


def withheld(session: Session, node: Node, known: _Known | None = None) -> set[str]:
    """Instances node keeps stopped (not in its instances) while their disk is moved, or
    put back by a revert on the same node."""
    return {r.instance_uuid for r in _moving_of(session, node, known)
            if r.source_node_id == node.id
            } | {r.instance_uuid for r in _local_of(session, node, "reverting", known)}


def receiving(session: Session, node: Node, known: _Known | None = None) -> set[str]:
    """Instances coming to node: never in its destroy list, whatever an old record says."""
    return {r.instance_uuid for r in _moving_of(session, node, known)
            if r.dest_node_id == node.id}


def leftovers(session: Session, node: Node) -> list[str]:
    """Copies on node a cold migration made obsolete: the source's once confirmed, the
    destination's once reverted or failed (unless the instance is there now)."""
    recent = utcnow() - FORGET_AFTER
    found = session.execute(select(Migration.instance_uuid, Instance.node_id).join(
        Instance, Instance.id == Migration.instance_uuid).where(
        Migration.migration_type.in_(TYPES), Migration.created_at > recent, or_(
            (Migration.source_node_id == node.id) & (Migration.status == "confirmed"),
            (Migration.dest_node_id == node.id)
            & Migration.status.in_(("error", "reverting", "reverted")))))
    return sorted({uuid for uuid, on in found if on != node.id})


def pending(session: Session, node: Node, migration: str, role: str) -> tuple[Migration,
                                                                               Instance]:
    """The migration (by uuid) node takes part in as role (source, dest, either), locked."""
    record = session.scalar(select(Migration).where(Migration.uuid == migration)
                            .with_for_update())
    if record is None or record.migration_type not in TYPES:
        raise NotFound(f"Migration {migration} is not a cold migration or resize.")
    wanted = {"source": {record.source_node_id}, "dest": {record.dest_node_id},
              "either": {record.source_node_id, record.dest_node_id}}[role]
    if node.id not in wanted:
        raise Forbidden(f"Migration {migration} is not this node's to answer as {role}.")
    if record.status not in resize_states.MOVING:
        raise Conflict(f"Migration {migration} has status {record.status}.")
    inst = session.get(Instance, record.instance_uuid)
    if inst is None or inst.deleted:
        raise NotFound(f"The instance of migration {migration} was deleted.")
    return record, inst


def sending(session: Session, inst: Instance, record: Migration) -> None:
    """The source begins the upload: the guest is stopped, its disk on its way."""
    if record.status == "post-migrating":
        raise Conflict(f"Migration {record.uuid}: the disk was uploaded already.")
    if record.status == "pre-migrating":
        actions.event(session, inst.id, "compute_prep_resize", record.dest_compute)
    record.status, inst.task_state = "migrating", "resize_migrating"


def sent(session: Session, inst: Instance, record: Migration) -> None:
    """The controller holds the disk: the destination may fetch it."""
    record.status, inst.task_state = "post-migrating", "resize_migrated"
    actions.event(session, inst.id, "compute_resize_instance", record.source_compute)
    bump(session)


def received(session: Session, inst: Instance, record: Migration) -> None:
    """The destination has the disk: the instance, its flavor and its ports move there."""
    if record.status == "migrating" or (record.status == "pre-migrating"
                                        and record.source_node_id != record.dest_node_id):
        raise Conflict(f"Migration {record.uuid}: the disk was not sent yet.")
    apply_flavor(inst, record.new_flavor or inst.flavor)
    resize_pci.arrive(session, inst, record.dest_node_id)  # the devices claimed there
    inst.node_id, inst.node_name = record.dest_node_id, record.dest_compute
    attachment_keys.moved(session, inst, record.source_node_id)  # the source's go stale
    ports.bind(session, inst)
    record.status, inst.task_state = "finished", "resize_finish"
    if inst.desired_power != "running":
        finished(session, inst, record)  # Nova does not start a stopped server's copy
    bump(session)


def finished(session: Session, inst: Instance, record: Migration) -> None:
    inst.vm_state, inst.task_state = "resized", None
    record.finished_at = utcnow()
    actions.event(session, inst.id, "compute_finish_resize", record.dest_compute)
    log.info("%s %s of %s finished on %s", record.migration_type, record.id, inst.id,
             record.dest_compute)
    bump(session)


def failed(session: Session, inst: Instance, record: Migration, message: str) -> None:
    """The instance stays on its source as it was; the destination's claim is given up."""
    new = record.new_flavor or {}
    if record.dest_node_id:
        placement.release_counters(session, record.dest_node_id, int(new.get("vcpus", 0)),
                                   int(new.get("ram", 0)), int(new.get("disk") or 0))
    resize_pci.settle(session, inst)  # the destination's PCI devices too
    record.status, record.message = "error", message[:REPORT_ERROR_CHARS]
    inst.task_state = None
    actions.event(session, inst.id, "compute_resize_instance", record.source_compute,
                  "Error", message[:REPORT_ERROR_CHARS])
    log.warning("%s %s of %s failed: %s", record.migration_type, record.id, inst.id, message)
    bump(session)


def report(session: Session, node: Node, inst: Instance, state: str) -> bool:
    """An agent's report of an instance in a resize; whether it was the resize's."""
    if inst.vm_state == "resized" and inst.task_state is None:
        return True  # VERIFY_RESIZE until confirmed or reverted, whatever the guest does
    if inst.task_state in resize_states.TASKS[:3]:
        return True  # the source stopped it for the copy
    if inst.task_state not in ("resize_finish", resize_states.REVERTING):
        return False
    if inst.task_state == resize_states.REVERTING and _restoring(session, inst):
        return True  # its own node puts its old disk back first (restored)
    if state != "running" and inst.desired_power == "running":
        return state != "error"  # a copy that cannot start: ERROR, as any failed start
    record = _latest(session, inst)
    if record is None:
        inst.task_state = None
        return True
    if inst.task_state == "resize_finish":
        finished(session, inst, record)
        return True
    record.status = "reverted"
    inst.vm_state, inst.task_state = resize_states.settled_vm_state(inst.desired_power), None
    actions.event(session, inst.id, "compute_finish_revert_resize", node.name)
    bump(session)
    return True


def _restoring(session: Session, inst: Instance) -> bool:
    record = _latest(session, inst)
    return record is not None and record.status == "reverting" \
        and record.source_node_id == record.dest_node_id


def restored(session: Session, node: Node, migration: str) -> None:
    """node put back the disk it kept for a resize on itself: the revert goes on as from
    another node (its instance starts there again; report() ends it). The migration is
    reverted, as Nova's destination says before its source starts the instance."""
    record = session.scalar(select(Migration).where(Migration.uuid == migration)
                            .with_for_update())
    if record is None or record.migration_type not in TYPES:
        raise NotFound(f"Migration {migration} is not a cold migration or resize.")
    if not record.source_node_id == record.dest_node_id == node.id:
        raise Forbidden(f"Migration {migration} is not a resize on this node.")
    if record.status != "reverting":
        raise Conflict(f"Migration {migration} has status {record.status}.")
    record.status = "reverted"
    log.info("%s %s of %s: its disk is back on %s", record.migration_type, record.id,
             record.instance_uuid, node.name)
    bump(session)


def _latest(session: Session, inst: Instance) -> Migration | None:
    return session.scalar(select(Migration).where(
        Migration.instance_uuid == inst.id, Migration.migration_type.in_(TYPES))
        .order_by(Migration.id.desc()).limit(1))


def shape_desired(session: Session, node: Node, state: dict[str, Any]) -> None:
    """Add node's cold migrations to its desired state: the instances it keeps stopped
    for a copy leave its instances, the copies made obsolete join its destroy list (never
    one it is receiving), and its cold_migrations block says what to send and receive.
    The node's records read once for the three (they were six queries a build)."""
    known = _Known(session, node)
    held = withheld(session, node, known)
    state["instances"] = [i for i in state.get("instances", []) if i["id"] not in held]
    coming = receiving(session, node, known)
    state["destroy"] = sorted({*state.get("destroy", []), *leftovers(session, node)} - coming)
    state["cold_migrations"] = desired(session, node, known)
