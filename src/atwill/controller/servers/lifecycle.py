"""Server state transitions: scheduling, rescheduling, faults, and what agents report.

Status moves only on what the node's agent reports (never on a timer): a build
becomes ACTIVE when the agent says its QEMU process runs the guest.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import scheduler
from ..compute import server_volumes_state
from ..context import Controller
from ..db.base import iso, utcnow
from ..db.models import Instance, Node, ServerGroup, ServerGroupMember
from ..db.volume import VolumeAttachment
from ..revision import bump
from ..volume import attachment_keys
from . import actions, placement, resize_agents, shelve, snapshots, states

log = logging.getLogger("atwill.servers")
MAX_ATTEMPTS = 3
CONSOLE_LIMIT = 64 * 1024


def request_for(session: Session, inst: Instance, image_props: dict[str, str],
                pci: tuple[scheduler.PciRequest, ...]) -> scheduler.Request:
    hints = inst.scheduler_hints or {}
    group = None
    member_hosts: tuple[str, ...] = ()
    max_per_host = None
    # A server is a group's member only if created with the group's hint (builds.py).
    group_id = session.scalar(select(ServerGroupMember.group_id).where(
        ServerGroupMember.instance_id == inst.id)) if hints.get("group") else None
    if group_id:
        group = session.get(ServerGroup, group_id)
        others = select(ServerGroupMember.instance_id).where(
            ServerGroupMember.group_id == group_id, ServerGroupMember.instance_id != inst.id)
        member_hosts = tuple(n for n in session.scalars(select(Instance.node_id).where(
            Instance.id.in_(others), Instance.deleted.is_(False))) if n)
        max_per_host = (group.rules or {}).get("max_server_per_host")
    return scheduler.Request(
        vcpus=inst.vcpus, memory_mb=inst.memory_mb, disk_gb=inst.disk_gb,
        availability_zone=inst.availability_zone, image_properties=image_props, pci=pci,
        group_policy=group.policy if group else None, group_hosts=member_hosts,
        group_max_per_host=max_per_host,
        same_host=frozenset(_as_list(hints.get("same_host"))),
        different_host=frozenset(_as_list(hints.get("different_host"))),
        ignore_hosts=frozenset(inst.failed_nodes or []))


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def schedule(session: Session, ctl: Controller, inst: Instance,
             req: scheduler.Request, last_error: str | None = None,
             new: bool = False) -> bool:
    """Place inst on a node (claimed) or put it in ERROR with the reason.

    last_error: why the previous attempt failed on its node, kept in the fault when no
    other node can take the retry (else a refused image would read "No valid host").
    new: inst is being created (builds.place_all): no migration or evacuation can hold
    it, and the volumes it gets in this transaction wake their nodes by themselves
    (node_scope follows attachments), so its bump names its new node alone instead of
    asking node_scope.of_instance (three queries a create).
    """
    try:
        node = placement.place(session, ctl.settings, inst, req)
    except scheduler.NoValidHost as err:
        message = str(err) if last_error is None else f"{err} Last error: {last_error}"
        fail(session, inst, 500, message, "conductor_schedule_and_build_instances")
        return False
    inst.task_state = "spawning"
    from . import ports  # noqa: PLC0415 - networking imports servers' models

    ports.bind(session, inst)
    actions.event(session, inst.id, "conductor_schedule_and_build_instances", None)
    log.info("server %s placed on %s", inst.id, node.name)
    if new and inst.node_id is not None:
        bump(session, nodes={inst.node_id})
    else:
        bump(session, of=inst)
    return True


def fail(session: Session, inst: Instance, code: int, message: str, event: str,
         host: str | None = None) -> None:
    """ERROR with a fault saying why; resources given back."""
    inst.vm_state, inst.task_state = "error", None
    inst.fault = {"code": code, "message": message, "created": iso(utcnow())}
    actions.event(session, inst.id, event, host, "Error", message)
    # An error instance leaves its node's desired state: its snapshot can never come.
    snapshots.abandon(session, inst)
    placement.release(session, inst)
    bump(session)


def report(session: Session, ctl: Controller, node: Node, reports: dict[str, Any]) -> None:
    """Apply an agent's view of its instances to the servers it should be running."""
    # A server another transaction holds (its delete, an action, a create's placing step)
    # is left to the next beat (SKIP LOCKED, on PostgreSQL): those take the server's row
    # and then the node's, which this beat's claim already holds, so waiting for the
    # server here deadlocked with them. FOR NO KEY UPDATE, as the report's UPDATE takes:
    # an attach's FOR KEY SHARE does not make a server skipped.
    found = list(session.scalars(
        select(Instance).where(Instance.node_id == node.id, Instance.deleted.is_(False))
        .with_for_update(key_share=True, skip_locked=True)))
    # Which have attachments to settle, read for all at once (a query a server was most
    # of a full beat's cost at 20 servers a node: bench creates).
    with_volumes = set(session.scalars(select(VolumeAttachment.instance_id).distinct().where(
        VolumeAttachment.instance_id.in_([inst.id for inst in found]),
        VolumeAttachment.status.in_(server_volumes_state.LISTED))))
    for inst in found:
        seen = reports.get(inst.id)
        if isinstance(seen, dict):
            _apply_report(session, ctl, node, inst, seen)
            if inst.id in with_volumes:  # without one, its report settles nothing
                server_volumes_state.report(session, inst, seen)


def _apply_report(session: Session, ctl: Controller, node: Node, inst: Instance,
                  seen: dict[str, Any]) -> None:
    state = str(seen.get("state", ""))
    if isinstance(seen.get("console"), str):
        inst.console = seen["console"][-CONSOLE_LIMIT:]
    inst.power_state = states.POWER_BY_AGENT.get(state, inst.power_state)
    if inst.vm_state == "shelved_offloaded":
        shelve.report(session, ctl, node, inst, seen)
        return
    if inst.task_state == "migrating":
        return  # the migration's own reports move it on (live_migration_agents.py)
    if resize_agents.report(session, node, inst, state):
        return  # a cold migration or resize moves it on (resize_agents.py)
    if state == "error":
        _build_failed(session, ctl, node, inst, str(seen.get("error") or "the build failed"))
        return
    settled = states.VM_STATE_BY_AGENT.get(state)
    if settled is None:
        return
    if inst.vm_state == "building":
        if state == "running":
            inst.vm_state, inst.task_state, inst.launched_at = "active", None, utcnow()
            actions.event(session, inst.id, "compute__do_build_and_run_instance", node.name)
        return
    if int(seen.get("reboot_serial", inst.reboot_serial)) < inst.reboot_serial:
        return  # the agent has not done the requested reboot yet
    if int(seen.get("rebuild_serial", inst.rebuild_serial)) < inst.rebuild_serial:
        return
    if inst.task_state in states.SNAPSHOT_TASKS | states.SHELVING_TASKS:
        return  # the VM is paused while it is copied; the upload or its error ends the task
    wanted = states.SETTLED[inst.desired_power]
    if settled == wanted:
        if inst.vm_state != wanted or inst.task_state:
            actions.event(session, inst.id, states.event_name(inst.task_state), node.name)
        inst.vm_state, inst.task_state = wanted, None
    elif inst.task_state is None and inst.vm_state == "active" and settled == "stopped":
        # The guest stopped on its own (powered off, crashed): say so, keep it stopped.
        inst.vm_state, inst.desired_power = "stopped", "stopped"
        actions.start(session, inst.id, "stop", "req-agent", None, inst.project_id)
        actions.event(session, inst.id, "compute_stop_instance", node.name, "Success",
                      "the guest stopped on its own")
        bump(session, of=inst)


def _build_failed(session: Session, ctl: Controller, node: Node, inst: Instance,
                  message: str) -> None:
    if inst.vm_state != "building":
        fail(session, inst, 500, message, "compute_error", node.name)
        return
    actions.event(session, inst.id, "compute__do_build_and_run_instance", node.name,
                  "Error", message)
    placement.release(session, inst)
    inst.failed_nodes = [*(inst.failed_nodes or []), node.id]
    inst.retries += 1
    if inst.retries >= MAX_ATTEMPTS:
        fail(session, inst, 500, f"Exceeded maximum number of retries ({MAX_ATTEMPTS}). "
             f"Last error: {message}", "conductor_schedule_and_build_instances")
        return
    from .builds import image_properties, pci_requests  # noqa: PLC0415 - avoids a cycle

    req = request_for(session, inst, image_properties(session, inst), pci_requests(ctl, inst))
    if schedule(session, ctl, inst, req, last_error=f"{message} (on {node.name})"):
        attachment_keys.moved(session, inst, node.id)  # the failed node's QEMU read them
