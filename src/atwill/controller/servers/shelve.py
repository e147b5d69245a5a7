"""Shelving: a snapshot of the server, then its node freed; unshelve boots that snapshot.

Nova's default shelved_offload_time is 0: once the node has uploaded the snapshot the
server is offloaded at once (SHELVED_OFFLOADED, no host, the node's resources and its
desired state free of it), so SHELVED is only passed through. The snapshot is an
ordinary createImage snapshot (snapshots.py) named ``<server name>-shelved``; only the
task states differ. Unshelve schedules the server anew and boots it from that image,
which is deleted once the server runs again.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from ...core import scheduler
from ...core.policy import Credentials
from ..context import Controller
from ..db.base import utcnow
from ..db.models import Image, Instance, InstanceAction, InstanceActionEvent, Node
from ..revision import bump
from ..volume import attachment_keys
from . import actions, instance_state, placement, snapshots, states

SHELVE_FROM = frozenset({"active", "stopped", "paused", "suspended"})
UNSHELVE_FROM = frozenset({"shelved", "shelved_offloaded"})
SHELVE_EVENT, OFFLOAD_EVENT = "compute_shelve_instance", "compute_shelve_offload_instance"
UNSHELVE_EVENT = "compute_unshelve_instance"


check = instance_state.check


def shelve(session: Session, inst: Instance, creds: Credentials, request_id: str) -> Image:
    """Record the ``-shelved`` image and ask the instance's node for its data."""
    check(inst, "shelve", SHELVE_FROM)
    image = Image(owner=inst.project_id, **snapshots.fields(
        session, inst, creds, f"{inst.name}-shelved", {}))
    session.add(image)
    session.flush()
    actions.start(session, inst.id, "shelve", request_id, creds.user_id, creds.project_id)
    inst.task_state, inst.snapshot_image_id = "shelving", image.id
    bump(session)
    return image


def snapshotted(session: Session, inst: Instance) -> None:
    """The node uploaded the shelve snapshot: SHELVED, then offloaded at once (offload time 0)."""
    actions.event(session, inst.id, SHELVE_EVENT, inst.node_name)
    inst.shelved_image_id, inst.snapshot_image_id = inst.snapshot_image_id, None
    inst.shelved_at = utcnow()
    inst.vm_state, inst.task_state = "shelved", "shelving_offloading"
    offload(session, inst)


def shelve_offload(session: Session, inst: Instance, creds: Credentials,
                   request_id: str) -> None:
    """shelveOffload of a SHELVED server (one kept on its node)."""
    check(inst, "shelveOffload", frozenset({"shelved"}))
    actions.start(session, inst.id, "shelveOffload", request_id, creds.user_id,
                  creds.project_id)
    actions.event(session, inst.id, OFFLOAD_EVENT, inst.node_name)
    offload(session, inst)


def offload(session: Session, inst: Instance) -> None:
    """Leave the node: its counters and desired state drop the instance, ports unbound."""
    from . import ports  # noqa: PLC0415 - networking imports servers' models

    for port in ports.of(session, inst):
        port.host_id, port.status = "", "DOWN"
    placement.release(session, inst)
    inst.node_name = None
    inst.vm_state, inst.task_state = "shelved_offloaded", None
    inst.power_state = states.POWER["shutdown"]
    bump(session)


def offloaded_copies(session: Session, node: Node) -> list[str]:
    """Offloaded instances that were on node (shelved there, or an unshelve failed there):
    its agent destroys their VM and disk."""
    shelved_here = select(InstanceAction.instance_id).join(
        InstanceActionEvent, InstanceActionEvent.action_id == InstanceAction.id).where(
        InstanceActionEvent.event.in_((SHELVE_EVENT, OFFLOAD_EVENT, UNSHELVE_EVENT)),
        InstanceActionEvent.host == node.name)
    return sorted(session.scalars(select(Instance.id).where(
        Instance.vm_state == "shelved_offloaded", Instance.node_id.is_(None),
        Instance.deleted.is_(False), Instance.id.in_(shelved_here))))


def unshelve(session: Session, ctl: Controller, inst: Instance, creds: Credentials,
             request_id: str) -> None:
    """Schedule the offloaded server anew; the chosen node boots its shelved image."""
    actions.start(session, inst.id, "unshelve", request_id, creds.user_id, creds.project_id)
    inst.task_state, inst.desired_power = "unshelving", "running"
    inst.failed_nodes, inst.retries = [], 0  # a new scheduling: the build's failures are past
    if inst.force_host:  # Nova's reset_forced_destinations: a 2.74 host is kept
        inst.requested_host, inst.force_host = None, False
    from . import ports  # noqa: PLC0415 - networking imports servers' models
    from .builds import image_properties, pci_requests  # noqa: PLC0415 - builds imports us
    from .lifecycle import request_for  # noqa: PLC0415

    req = request_for(session, inst, image_properties(session, inst), pci_requests(ctl, inst))
    try:
        placement.place(session, ctl.settings, inst, req)
    except scheduler.NoValidHost as err:
        # Nova's conductor: the server stays offloaded, the task ends, the event says why.
        inst.task_state = None
        actions.event(session, inst.id, "schedule_instances", None, "Error", str(err))
        bump(session)
        return
    actions.event(session, inst.id, "schedule_instances", None)
    attachment_keys.moved(session, inst, None)  # its volumes' keys were the old node's
    inst.task_state = "spawning"
    ports.bind(session, inst)
    bump(session)


def spawned(session: Session, ctl: Controller, inst: Instance, node: Node) -> None:
    """The node runs the unshelved server: ACTIVE, and its shelved image is deleted."""
    inst.vm_state, inst.task_state, inst.launched_at = "active", None, utcnow()
    actions.event(session, inst.id, UNSHELVE_EVENT, node.name)
    drop_image(session, ctl, inst)
    bump(session)


def spawn_failed(session: Session, inst: Instance, node: Node, message: str) -> None:
    """Nova reverts a failed unshelve spawn: offloaded again, nothing held on the node."""
    actions.event(session, inst.id, UNSHELVE_EVENT, node.name, "Error", message)
    offload(session, inst)


def drop_image(session: Session, ctl: Controller, inst: Instance) -> None:
    """Delete the shelved image (unshelved, or the server deleted), its data after commit."""
    image_id, inst.shelved_image_id, inst.shelved_at = inst.shelved_image_id, None, None
    image = session.get(Image, image_id) if image_id else None
    if image_id is None or image is None:
        return
    session.delete(image)
    from ..image.store import ImageStore  # noqa: PLC0415 - the image API builds on servers

    store = ImageStore.of(ctl)
    event.listen(session, "after_commit", lambda _s: store.remove(image_id), once=True)


def report(session: Session, ctl: Controller, node: Node, inst: Instance,
           seen: dict[str, Any]) -> None:
    """An agent's report of an unshelving instance: running ends it, an error reverts it."""
    state = str(seen.get("state", ""))
    if inst.task_state != "spawning":
        return
    if state == "running":
        spawned(session, ctl, inst, node)
    elif state == "error":
        spawn_failed(session, inst, node, str(seen.get("error") or "the spawn failed"))
