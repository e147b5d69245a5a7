"""Starting, aborting and forcing a live migration (the API's side of it).

The destination is claimed at once, the instance staying on (and counted on) its source
until the source's agent reports the migration completed; live_migration_agents.py
carries it from there through the two agents' desired states and reports.
"""

from __future__ import annotations

import dataclasses
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import migration_states, scheduler
from ...core.errors import BadRequest, Conflict, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ..context import Controller
from ..db.models import Instance, Migration, Node
from . import actions, instance_state, lifecycle, live_migration_volumes, placement

log = logging.getLogger("atwill.servers.migration")


def in_progress(session: Session, inst: Instance) -> Migration | None:
    return session.scalar(select(Migration).where(
        Migration.instance_uuid == inst.id,
        Migration.status.in_(migration_states.IN_PROGRESS)).order_by(Migration.id.desc()))


def _check(session: Session, inst: Instance) -> Node:
    """Nova's checks before a live migration: 409 for the server's state, 400 for hosts."""
    instance_state.check(inst, "os-migrateLive", migration_states.LIVE_FROM)
    source = up_source(session, inst)
    if inst.pci_devices:
        # Nova's words (conductor's _check_can_migrate_pci); cold migration moves them.
        raise BadRequest("Migration pre-check error: non-VIF related PCI requests for "
                         "instance are not allowed for live migration.")
    refused = live_migration_volumes.refusal(session, inst)
    if refused is not None:
        # Said here rather than by a migration failing on the destination.
        raise BadRequest(f"Migration pre-check error: instance {inst.id}: {refused}.")
    return source


def up_source(session: Session, inst: Instance) -> Node:
    """The node an instance moves from (any kind of migration), which must be up."""
    source = session.get(Node, inst.node_id) if inst.node_id else None
    if source is None:
        raise Conflict(f"Instance {inst.id} has no compute host to migrate from.")
    if source.state != "up":
        raise BadRequest(f"Compute service of {source.name} is unavailable at this time.")
    return source


def _target(session: Session, source: Node, inst: Instance, host: str | None) -> None:
    if host is None:
        return
    target = session.scalar(select(Node).where(Node.name == host))
    if target is None:
        raise BadRequest(f"Compute host {host} could not be found.")
    if target.id == source.id:
        raise BadRequest(f"Unable to migrate instance ({inst.id}) to current host "
                         f"({source.name}).")
    if target.state != "up":
        raise BadRequest(f"Compute service of {host} is unavailable at this time.")


def start(session: Session, ctl: Controller, inst: Instance, body: migration_states.LiveRequest,
          request_id: str, creds: Credentials, version: Version) -> Migration:
    """Claim a destination and record the migration (preparing), or say why not.

    From 2.34 Nova answers 202 and a scheduling failure shows in the migration (error)
    and the instance's action; before, it is the request's 400."""
    source = _check(session, inst)
    _target(session, source, inst, body.host)
    record = Migration(instance_uuid=inst.id, source_compute=source.name,
                       source_node=source.name, source_node_id=source.id,
                       status="queued", migration_type="live-migration",
                       user_id=creds.user_id, project_id=inst.project_id)
    session.add(record)
    actions.start(session, inst.id, "live-migration", request_id, creds.user_id,
                  inst.project_id)
    try:
        dest = _claim(session, ctl, inst, source, body)
    except scheduler.NoValidHost as err:
        if not version >= "2.34":
            raise BadRequest(str(err)) from None
        record.status, record.message = "error", str(err)
        actions.event(session, inst.id, "conductor_live_migrate_instance", None, "Error",
                      str(err))
        session.flush()
        return record
    record.dest_compute = record.dest_node = dest.name
    record.dest_node_id, record.dest_host = dest.id, dest.overlay_ip
    record.status = "preparing"
    record.memory_total = inst.memory_mb << 20
    inst.task_state = "migrating"
    actions.event(session, inst.id, "conductor_live_migrate_instance", None)
    session.flush()
    log.info("live migration %s of %s: %s -> %s", record.id, inst.id, source.name, dest.name)
    return record


def _claim(session: Session, ctl: Controller, inst: Instance, source: Node,
           body: migration_states.LiveRequest) -> Node:
    """Claim the destination's resources; the instance stays on (and counted on) source."""
    from .builds import image_properties, pci_requests  # noqa: PLC0415 - cycle

    req = lifecycle.request_for(session, inst, image_properties(session, inst),
                                pci_requests(ctl, inst))
    req = dataclasses.replace(req, ignore_hosts=req.ignore_hosts | {source.id})
    node_id, node_name = inst.node_id, inst.node_name
    inst.requested_host, inst.force_host = body.host, body.force
    try:
        host = placement.place(session, ctl.settings, inst, req)
    finally:
        inst.requested_host, inst.force_host = None, False
        inst.node_id, inst.node_name = node_id, node_name
    dest = session.get(Node, host.id)
    assert dest is not None
    return dest


def get(session: Session, inst: Instance, migration_id: str) -> Migration:
    try:
        wanted = int(migration_id)
    except ValueError:
        wanted = -1
    record = session.get(Migration, wanted) if wanted >= 0 else None
    if record is None or record.instance_uuid != inst.id:
        raise NotFound(f"Migration {migration_id} not found for instance {inst.id}")
    return record


def _migrating(inst: Instance, what: str) -> None:
    if inst.task_state != "migrating":
        raise instance_state.refused(inst, what, "task_state", inst.task_state)


def abort(session: Session, inst: Instance, record: Migration, version: Version,
          request_id: str, user_id: str | None) -> None:
    """Ask the source to cancel; a migration not yet running is cancelled here."""
    if record.migration_type != "live-migration" or not migration_states.abortable(
            record.status, version):
        raise BadRequest(f"Migration {record.id} state of instance {inst.id} is "
                         f"{record.status}. Cannot abort live migration while the "
                         "migration is in this state.")
    _migrating(inst, "abort live migration")
    actions.start(session, inst.id, "live_migration_cancel", request_id, user_id,
                  inst.project_id)
    if record.status in ("queued", "preparing"):
        from .live_migration_agents import finish_failed  # noqa: PLC0415 - cycle

        finish_failed(session, inst, record, "cancelled", "aborted before it ran")
        return
    record.abort_requested = True


def force_complete(session: Session, inst: Instance, record: Migration, request_id: str,
                   user_id: str | None) -> None:
    """Nova's force-complete: the source pauses the guest so the copy converges."""
    if record.migration_type != "live-migration" or record.status != "running":
        raise BadRequest(f"Migration {record.id} state of instance {inst.id} is "
                         f"{record.status}. Cannot force complete while the migration is "
                         "in this state.")
    _migrating(inst, "force complete")
    actions.start(session, inst.id, "live_migration_force_complete", request_id, user_id,
                  inst.project_id)
    record.force_complete = True
