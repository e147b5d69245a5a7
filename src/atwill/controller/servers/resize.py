"""Cold migration and resize, the API's side: start, confirm, revert, auto-confirm.

The destination is claimed (with the new flavor) when the request is accepted; the
instance stays on, and counted with its old flavor on, its source until the destination
has its disk (resize_agents.py). From then until confirm the source still holds its
old claim and its stopped copy, so that revert can bring the server back as it was.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ...core import resize_states, scheduler
from ...core.errors import BadRequest
from ...core.policy import Credentials
from ..compute.usage import project_limits
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Flavor, Instance, Migration, Node
from ..revision import bump
from ..volume import attachment_keys
from . import (
    actions,
    instance_state,
    lifecycle,
    live_migration,
    placement,
    ports,
    resize_pci,
    resize_usage,
)

log = logging.getLogger("atwill.servers.resize")


def current(session: Session, inst: Instance, statuses: frozenset[str] | set[str],
            ) -> Migration | None:
    """The instance's latest cold migration or resize in one of statuses."""
    return session.scalar(select(Migration).where(
        Migration.instance_uuid == inst.id,
        Migration.migration_type.in_(("migration", "resize")),
        Migration.status.in_(statuses)).order_by(Migration.id.desc()).limit(1))


def _source(session: Session, inst: Instance) -> Node:
    return live_migration.up_source(session, inst)


def _check_quota(session: Session, inst: Instance, new: dict[str, Any]) -> None:
    deltas = resize_states.upsize(inst.flavor or {"vcpus": inst.vcpus,
                                                  "ram": inst.memory_mb}, new)
    if not any(deltas.values()):
        return
    used = session.execute(select(func.coalesce(func.sum(Instance.vcpus), 0),
                                  func.coalesce(func.sum(Instance.memory_mb), 0)).where(
        Instance.project_id == inst.project_id, Instance.deleted.is_(False))).one()
    pending = resize_usage.pending_growth(session, inst.project_id)
    resize_states.check_upsize(deltas, project_limits(session, inst.project_id),
                               {"cores": int(used[0]) + pending["cores"],
                                "ram": int(used[1]) + pending["ram"]})


def start(session: Session, ctl: Controller, inst: Instance, new: dict[str, Any] | None,
          host: str | None, request_id: str, creds: Credentials) -> Migration:
    """Check, claim a destination with the new flavor, and record the migration.

    new: the new flavor's snapshot (None: a cold migration, the flavor stays)."""
    name = "migrate" if new is None else "resize"
    instance_state.check(inst, name, resize_states.RESIZE_FROM)
    source = _source(session, inst)
    old = dict(inst.flavor or {})
    if new is not None:
        resize_states.check_flavors(old, new)
        _check_quota(session, inst, new)
    same_host_ok = bool(getattr(ctl.settings, "allow_resize_to_same_host", False))
    if host is not None:
        _named_target(session, inst, source, host)
    flavor = new if new is not None else old
    dest = _claim(session, ctl, inst, source, flavor, host, same_host_ok)
    record = Migration(
        instance_uuid=inst.id, source_compute=source.name, source_node=source.name,
        source_node_id=source.id, dest_compute=dest.name, dest_node=dest.name,
        dest_node_id=dest.id, dest_host=dest.overlay_ip, status="pre-migrating",
        migration_type="migration" if new is None else "resize", tls_key=None,
        volume_key=None,
        old_instance_type_id=_flavor_pk(session, old), new_instance_type_id=_flavor_pk(
            session, flavor), old_flavor=old, new_flavor=dict(flavor),
        user_id=creds.user_id, project_id=inst.project_id)
    session.add(record)
    actions.start(session, inst.id, name, request_id, creds.user_id, creds.project_id)
    actions.event(session, inst.id, "conductor_migrate_server", None)
    inst.task_state = "resize_prep"
    session.flush()
    log.info("%s %s of %s: %s -> %s", record.migration_type, record.id, inst.id,
             source.name, dest.name)
    bump(session)
    return record


def _named_target(session: Session, inst: Instance, source: Node, host: str) -> None:
    target = session.scalar(select(Node).where(Node.name == host))
    if target is None:
        raise BadRequest(f"Compute host {host} could not be found.")
    if target.id == source.id:
        raise BadRequest(f"Unable to migrate instance ({inst.id}) to current host "
                         f"({source.name}).")


def _claim(session: Session, ctl: Controller, inst: Instance, source: Node,
           flavor: dict[str, Any], host: str | None, same_host_ok: bool) -> Node:
    """Claim the destination with flavor; the instance stays on (and counted on) source."""
    from .builds import image_properties, pci_requests  # noqa: PLC0415 - cycle

    saved = (inst.flavor, inst.vcpus, inst.memory_mb, inst.disk_gb, inst.node_id,
             inst.node_name, inst.requested_host, inst.force_host, inst.pci_devices)
    inst.flavor, inst.vcpus = flavor, int(flavor["vcpus"])
    inst.memory_mb, inst.disk_gb = int(flavor["ram"]), int(flavor.get("disk") or 0)
    try:
        req = lifecycle.request_for(session, inst, image_properties(session, inst),
                                    pci_requests(ctl, inst))
        if not same_host_ok:
            req = dataclasses.replace(req, ignore_hosts=req.ignore_hosts | {source.id})
        inst.requested_host, inst.force_host = host, False
        try:
            chosen = placement.place(session, ctl.settings, inst, req)
        except scheduler.NoValidHost as err:
            raise BadRequest(str(err)) from None
    finally:
        (inst.flavor, inst.vcpus, inst.memory_mb, inst.disk_gb, inst.node_id,
         inst.node_name, inst.requested_host, inst.force_host, inst.pci_devices) = saved
    dest = session.get(Node, chosen.id)
    assert dest is not None
    return dest


def _flavor_pk(session: Session, flavor: dict[str, Any]) -> int | None:
    return session.scalar(select(Flavor.id).where(Flavor.flavorid == flavor.get("id")))


def apply_flavor(inst: Instance, flavor: dict[str, Any]) -> None:
    inst.flavor = dict(flavor)
    inst.vcpus, inst.memory_mb = int(flavor["vcpus"]), int(flavor["ram"])
    inst.disk_gb = int(flavor.get("disk") or 0)


def _finished(session: Session, inst: Instance, name: str) -> Migration:
    instance_state.check(inst, name, frozenset({"resized"}))
    record = current(session, inst, {"finished"})
    if record is None:
        raise BadRequest(f"Instance {inst.id} has not been resized.")
    return record


def confirm(session: Session, inst: Instance, request_id: str, user_id: str | None) -> None:
    """Keep the new host and flavor: the source's claim goes, its copy is destroyed."""
    record = _finished(session, inst, "confirmResize")
    actions.start(session, inst.id, "confirmResize", request_id, user_id, inst.project_id)
    confirmed(session, inst, record)


def confirmed(session: Session, inst: Instance, record: Migration) -> None:
    old = record.old_flavor or {}
    if record.source_node_id:
        placement.release_counters(session, record.source_node_id, int(old.get("vcpus", 0)),
                                   int(old.get("ram", 0)), int(old.get("disk") or 0))
    resize_pci.settle(session, inst)  # the source's PCI devices go
    record.status = "confirmed"
    inst.vm_state = resize_states.settled_vm_state(inst.desired_power)
    actions.event(session, inst.id, "compute_confirm_resize", record.source_compute)
    log.info("%s %s of %s confirmed", record.migration_type, record.id, inst.id)
    bump(session)


def revert(session: Session, inst: Instance, request_id: str, user_id: str | None) -> None:
    """Back to the source with the old flavor; its agent starts the kept copy again."""
    record = _finished(session, inst, "revertResize")
    # Back to the old flavor is a resize too: a downsize reverted must fit the quota the
    # project may have filled meanwhile (Nova checks it, "a revert might go over quota").
    _check_quota(session, inst, record.old_flavor or inst.flavor or {})
    actions.start(session, inst.id, "revertResize", request_id, user_id, inst.project_id)
    new = record.new_flavor or {}
    if record.dest_node_id:
        placement.release_counters(session, record.dest_node_id, int(new.get("vcpus", 0)),
                                   int(new.get("ram", 0)), int(new.get("disk") or 0))
    apply_flavor(inst, record.old_flavor or inst.flavor)
    resize_pci.arrive(session, inst, record.source_node_id)  # its kept PCI devices
    inst.node_id, inst.node_name = record.source_node_id, record.source_compute
    resize_pci.settle(session, inst)  # the destination's go
    attachment_keys.moved(session, inst, record.dest_node_id)  # the destination's go stale
    ports.bind(session, inst)
    inst.task_state, record.status = resize_states.REVERTING, "reverting"
    actions.event(session, inst.id, "compute_revert_resize", record.dest_compute)
    bump(session)


def auto_confirm(session: Session, window: float) -> int:
    """Confirm every resize finished longer than window seconds ago (0: none)."""
    if window <= 0:
        return 0
    now, done = utcnow(), 0
    for record in session.scalars(select(Migration).where(
            Migration.status == "finished",
            Migration.migration_type.in_(("migration", "resize")))):
        inst = session.get(Instance, record.instance_uuid)
        if inst is None or inst.vm_state != "resized" or inst.task_state is not None \
                or not resize_states.confirm_due(record.finished_at, now, window):
            continue
        actions.start(session, inst.id, "confirmResize", "req-auto-confirm", None,
                      inst.project_id)
        confirmed(session, inst, record)
        done += 1
    return done


def on_server_delete(session: Session, inst: Instance) -> None:
    """A server deleted during a resize: the claim held for it elsewhere goes too (the
    destination's before it finished; the source's in VERIFY_RESIZE, which Nova confirms)."""
    record = current(session, inst, {*resize_states.MOVING, "finished"})
    if record is None:
        return
    if record.status == "finished":
        old, node_id, record.status = record.old_flavor or {}, record.source_node_id, \
            "confirmed"
    else:
        old, node_id, record.status = record.new_flavor or {}, record.dest_node_id, "error"
        record.message = "the server was deleted"
    if node_id:
        placement.release_counters(session, node_id, int(old.get("vcpus", 0)),
                                   int(old.get("ram", 0)), int(old.get("disk") or 0))
