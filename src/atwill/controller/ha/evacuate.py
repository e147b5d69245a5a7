"""Evacuation: rebuild a failed node's instances on other nodes, never while it may run.

An instance leaves its node only when that node is down and known not to run
it: forced down by an operator (Nova's forced_down) or fenced (powered off by a
fence device, or confirmed off). It is rebuilt by the scheduler (group policies
kept): from its image when it has a local disk (lost with the node), from its boot
volume when it has one (the same volume, exported to the new node and no longer to the
old one: storage fencing); its volumes and ports follow it, so its data, fixed and
floating addresses stay. The old node's copy is destroyed when it returns.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ha_health, scheduler
from ...core.errors import ApiError, BadRequest, Conflict, NotFound
from ..compute import server_volumes_state
from ..context import Controller
from ..db.models import Evacuation, Instance, Node
from ..db.volume import Volume
from ..revision import bump
from ..servers import actions, instance_state, lifecycle, placement, ports
from ..volume import attachment_keys

log = logging.getLogger("atwill.ha")
EVACUABLE = frozenset({"active", "stopped", "error"})
DISK_LOST = ("its local disk on {node} is lost: rebuilt from image {image} (no shared "
             "storage)")
VOLUME_KEPT = "booted from its volume {volume} again (the same volume, not a copy)"


def is_fenced(node: Node) -> bool:
    return node.fenced_at is not None and node.fence_state == "ok"


def refuse_unless_safe(node: Node) -> None:
    """Nova's 409 while the source may still run the instance, and ours until it is fenced."""
    if node.forced_down:
        return  # the operator vouches that it is off, as Nova takes it
    if node.state == "up":
        raise Conflict(f"Compute service of {node.name} is still in use.")
    if not is_fenced(node):
        raise Conflict(f"Compute service of {node.name} is still in use. It stopped "
                       "reporting but is not known to be off; force it down (openstack "
                       f"compute service set --down {node.name} nova-compute) or confirm "
                       f"it off (atwill node fence confirm {node.name}) first.")


def check_target(session: Session, source: Node, host: str | None) -> None:
    if host is None:
        return
    target = session.scalar(select(Node).where(Node.name == host))
    if target is None:
        raise NotFound(f"Compute host {host} not found.")
    if target.id == source.id:
        raise BadRequest("The target host can't be the same one.")


def evacuate(session: Session, ctl: Controller, inst: Instance, *, host: str | None = None,
             force: bool = False, reason: str = "manual", request_id: str = "req-ha",
             user_id: str | None = None, keep_stopped: bool = False) -> Evacuation:
    """Move inst off its (down, fenced) node; the caller has checked the policy."""
    source = session.get(Node, inst.node_id) if inst.node_id else None
    if source is None and inst.vm_state == "error" and inst.node_name:
        # A failed evacuation (or rebuild) gave its claim back but left it on that host,
        # as Nova does: evacuating it again once a node can take it must work.
        source = session.scalar(select(Node).where(Node.name == inst.node_name))
    if source is None:
        raise Conflict(f"Instance {inst.id} has no compute host to evacuate from.")
    refuse_unless_safe(source)
    if source.fence_method == "lease" and not source.forced_down \
            and not ha_health.ha_enabled(inst.meta):
        # A node fenced by lease killed only its HA instances: this one may still run.
        raise Conflict(f"Compute service of {source.name} is still in use. It fenced itself "
                       "by lease, which stops only HA-enabled instances; force it down or "
                       f"confirm it off (atwill node fence confirm {source.name}) first.")
    instance_state.check(inst, "evacuate", EVACUABLE)
    check_target(session, source, host)
    record = Evacuation(instance_id=inst.id, source_node_id=source.id,
                        source_node_name=source.name, reason=reason,
                        stop_after=keep_stopped and inst.vm_state == "stopped")
    session.add(record)
    latest = actions.latest(session, inst.id)
    if reason != "auto" or latest is None or latest.action != "evacuate":
        actions.start(session, inst.id, "evacuate", request_id, user_id, inst.project_id)
    # As Nova's reset_forced_destinations: the host the server was created on is dead;
    # only the host named here (if any) constrains the scheduler, and only this once.
    inst.requested_host, inst.force_host = host, force and host is not None
    try:
        _place(session, ctl, inst, source, record)
    finally:
        inst.requested_host, inst.force_host = None, False
    session.flush()
    return record


def _place(session: Session, ctl: Controller, inst: Instance, source: Node,
           record: Evacuation) -> None:
    from ..servers.builds import image_properties, pci_requests  # noqa: PLC0415 - cycle

    was = inst.vm_state
    placement.release(session, inst)
    stranded = unreachable_volumes(session, inst, source)
    if stranded:
        record.status, record.message = "failed", stranded
        lifecycle.fail(session, inst, 500, f"Evacuation from {source.name} failed: "
                       f"{stranded}", "conductor_rebuild_server", source.name)
        log.error("evacuation of %s from %s failed: %s", inst.id, source.name, stranded)
        return
    req = lifecycle.request_for(session, inst, image_properties(session, inst),
                                pci_requests(ctl, inst))
    req = dataclasses.replace(req, ignore_hosts=req.ignore_hosts | {source.id},
                              evacuation=True)
    try:
        node = placement.place(session, ctl.settings, inst, req)
    except scheduler.NoValidHost as err:
        record.status, record.message = "failed", str(err)
        lifecycle.fail(session, inst, 500, f"Evacuation from {source.name} failed: {err}",
                       "conductor_rebuild_server", source.name)
        log.error("evacuation of %s from %s failed: %s", inst.id, source.name, err)
        return
    ports.bind(session, inst)
    # New NBD keys: the fenced node, if not quite dead, still holds the old ones in its
    # QEMU, and the export to the new node must refuse them (storage fencing).
    attachment_keys.moved(session, inst, source.id)
    detail = rebuild_detail(source.name, inst.image_id, [
        (a.volume_id, a.boot_index) for a in server_volumes_state.of_server(session, inst.id)])
    actions.event(session, inst.id, "conductor_rebuild_server", node.name, "Success",
                  f"evacuated from {source.name} ({record.reason}); {detail}")
    inst.vm_state, inst.task_state, inst.fault = "active", "rebuilding", None
    inst.power_state, inst.desired_power = 0, "running"
    inst.rebuild_serial += 1
    record.status, record.dest_node_name = "rebuilding", node.name
    log.warning("instance %s (%s) evacuated from %s to %s; %s", inst.id, was, source.name,
                node.name, detail)


def unreachable_volumes(session: Session, inst: Instance, source: Node) -> str | None:
    """Why the instance cannot run elsewhere now: a volume of its on a storage node that
    is down (the failed node itself, when it served storage too), else None. Placed
    anyway, it would wait in REBUILD for a disk no node serves; ERROR says so, and the
    operator evacuates it again once that node is back."""
    for att in server_volumes_state.of_server(session, inst.id):
        volume = session.get(Volume, att.volume_id)
        if volume is None or volume.node_id is None:
            continue
        storage = source if volume.node_id == source.id else session.get(Node, volume.node_id)
        if storage is None or storage.id == source.id or storage.state != "up":
            where = volume.node_name or volume.node_id
            return (f"its volume {volume.id} is on storage node {where}, which is down; "
                    "evacuate it again once that node is back")
    return None


def rebuild_detail(source: str, image: str | None,
                   volumes: list[tuple[str, int | None]]) -> str:
    """What an evacuation keeps and what it loses, for the instance's event: volumes
    (id, boot index) stay, a local disk does not."""
    boot = next((vid for vid, index in volumes if index == 0), None)
    detail = VOLUME_KEPT.format(volume=boot) if boot is not None \
        else DISK_LOST.format(node=source, image=image)
    others = [vid for vid, index in volumes if index != 0]
    if others:
        detail += f"; its volume{'s' if len(others) > 1 else ''} {', '.join(others)} " \
                  f"follow{'' if len(others) > 1 else 's'} it"
    return detail


def evacuate_node(session: Session, ctl: Controller, node: Node,
                  host: str | None = None) -> list[dict[str, str]]:
    """Nova's host-evacuate: every instance of node, each with its own outcome."""
    refuse_unless_safe(node)
    held = session.scalars(select(Instance).where(
        Instance.node_id == node.id, Instance.deleted.is_(False)).order_by(Instance.created_at))
    results = []
    for inst in list(held):
        try:
            with session.begin_nested():
                record = evacuate(session, ctl, inst, host=host, reason="manual",
                                  request_id=f"req-evacuate-{node.name}"[:64])
            results.append({"server": inst.id, "accepted": str(record.status != "failed"),
                            "message": record.message or f"to {record.dest_node_name}"})
        except ApiError as err:
            results.append({"server": inst.id, "accepted": "False", "message": str(err)})
    bump(session)
    return results
