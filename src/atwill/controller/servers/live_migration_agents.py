"""A live migration between two agents, carried by their desired states and reports.

1. preparing: the destination's desired state lists the instance with "incoming"; its
   agent starts QEMU with -incoming defer and the same devices, exports a new disk over
   NBD, and reports both ports.
2. running: the source's desired state gives the instance "migrate_to"; its agent
   mirrors the disk to that export, migrates the memory, and reports progress.
3. completed: the instance (and its ports) move to the destination, the source's copy
   is destroyed. On any failure the instance stays on its source as it was, and the
   destination's copy is destroyed.

A destination whose node goes down meanwhile (its agent gone: nothing there would adopt
the guest) is given up: the source is told to cancel, and the migration ends in error.
A source known off meanwhile (fenced, or forced down) reports nothing more, so the
destination is asked: a guest its QEMU runs has arrived (the migration completes there),
any other copy is deleted (the migration ends in error, and HA may rebuild the server).

With live_migration_permit_post_copy both orders say "post_copy": a migration that does
not converge switches to post-copy (agent/hypervisor/migration.py); the source reports
it, and the migration is "running (post-copy)" as in Nova: it cannot be aborted nor
forced any more (400), only complete, or fail with the guest lost.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ...core import migration_states
from ...core.nodereports import CONSOLE_BYTES, REPORT_ERROR_CHARS
from ..db.base import utcnow
from ..db.models import Instance, Migration, Node
from ..revision import bump
from . import actions, live_migration_volumes, placement, ports
from .desired import instance_spec

log = logging.getLogger("atwill.servers.migration")
BANDWIDTH = 0  # bytes/s; 0: QEMU's migration is not throttled (its default is 128 MiB/s)
FORGET_AFTER = dt.timedelta(days=7)
RUNNING = ("running", migration_states.POST_COPY)
PROGRESS = ("memory_total", "memory_processed", "memory_remaining", "disk_total",
            "disk_processed", "disk_remaining")


def _active(session: Session, node: Node) -> list[Migration]:
    return list(session.scalars(select(Migration).where(
        Migration.status.in_(("preparing", *RUNNING)),
        or_(Migration.source_node_id == node.id, Migration.dest_node_id == node.id))
        .order_by(Migration.id)))


def incoming(session: Session, node: Node, post_copy: bool = False) -> list[dict[str, Any]]:
    """The instances node is to receive, each with "incoming" saying from which migration
    (and whether post-copy is permitted: its QEMU then gets ready for it)."""
    out = []
    for record in _active(session, node):
        inst = session.get(Instance, record.instance_uuid)
        if record.dest_node_id != node.id or inst is None or inst.deleted:
            continue
        spec = instance_spec(session, inst)
        if not live_migration_volumes.incoming(session, inst, record, spec):
            continue  # its volumes' exports do not admit this node yet
        spec["building"], spec["snapshot"] = False, None
        # The console so far: the destination's log goes on from it (one log per server).
        spec["incoming"] = {"migration": record.id, "listen": node.overlay_ip,
                            "console": (inst.console or "")[-CONSOLE_BYTES:],
                            "tls": tls(record), "post_copy": post_copy}
        if record.message == lost_source(record):
            spec["incoming"]["source_lost"] = True
        out.append(spec)
    return out


def receives_image(session: Session, node: Node, image_id: str) -> bool:
    """Whether an instance coming to node boots from image_id (its disk's base)."""
    for record in _active(session, node):
        inst = session.get(Instance, record.instance_uuid)
        if record.dest_node_id == node.id and inst is not None and image_id in (
                inst.image_id, inst.shelved_image_id):
            return True
    return False


def annotate(session: Session, node: Node, instances: list[dict[str, Any]],
             post_copy: bool = False) -> None:
    """Give each instance node is sending away its "migrate_to" (once the target waits),
    saying whether it may switch to post-copy (setting live_migration_permit_post_copy)."""
    by_id = {i["id"]: i for i in instances}
    for record in _active(session, node):
        spec = by_id.get(record.instance_uuid)
        if record.source_node_id != node.id or spec is None or record.status not in RUNNING:
            continue
        spec["migrate_to"] = {
            "migration": record.id, "host": record.dest_host, "nbd_port": record.nbd_port,
            "port": record.incoming_port, "downtime_ms": migration_states.DOWNTIME_MS,
            "bandwidth": BANDWIDTH, "force_complete": record.force_complete,
            "abort": record.abort_requested, "tls": tls(record), "post_copy": post_copy}


def tls(record: Migration) -> dict[str, str] | None:
    """The migration's own TLS identity (a pre-shared key), for its two nodes alone: no
    other host can feed the destination or read the stream (agent/hypervisor/migration.py).
    None for a migration recorded before there were keys; its agents refuse it."""
    if not record.tls_key:
        return None
    return {"username": f"atwill-migration-{record.id}", "key": record.tls_key}


def leftovers(session: Session, node: Node) -> list[str]:
    """Copies on node that a migration made obsolete: the source's after a completed one,
    the destination's after a failed or cancelled one (unless the instance is there)."""
    recent = utcnow() - FORGET_AFTER
    found = session.execute(select(Migration.instance_uuid, Instance.node_id).join(
        Instance, Instance.id == Migration.instance_uuid).where(
        Migration.created_at > recent, or_(
            (Migration.source_node_id == node.id) & (Migration.status == "completed"),
            (Migration.dest_node_id == node.id)
            & Migration.status.in_(("error", "failed", "cancelled")))))
    return sorted({uuid for uuid, on in found if on != node.id})


def report(session: Session, node: Node, reports: dict[str, Any]) -> None:
    """Apply what node's agent says of the migrations it takes part in."""
    for record in _active(session, node):
        entry = reports.get(record.instance_uuid)
        inst = session.get(Instance, record.instance_uuid)
        if inst is None or inst.deleted:
            if inst is not None:  # deleted meanwhile (Nova allows it): the claim goes too
                finish_failed(session, inst, record, "error", "the server was deleted")
            continue
        if record.source_node_id == node.id and _give_up_lost(session, inst, record):
            continue
        if not isinstance(entry, dict):
            continue
        if record.dest_node_id == node.id:
            _destination(session, inst, record, entry.get("incoming"))
        elif record.source_node_id == node.id:
            _source(session, inst, record, entry.get("migration"))


def _destination(session: Session, inst: Instance, record: Migration, seen: Any) -> None:
    if not isinstance(seen, dict) or seen.get("migration") != record.id:
        return
    if record.message == lost_source(record):
        if seen.get("arrived") is True and record.status in RUNNING:
            log.warning("live migration %s of %s: its guest arrived on %s before the source "
                        "went down", record.id, inst.id, record.dest_compute)
            finish_completed(session, inst, record)
        elif isinstance(seen.get("error"), str):
            finish_failed(session, inst, record, "error", f"{record.message}; {seen['error']}")
        return
    if isinstance(seen.get("error"), str):
        finish_failed(session, inst, record, "error",
                      f"the destination could not prepare: {seen['error']}")
        return
    nbd, port = _port(seen.get("nbd_port")), _port(seen.get("port"))
    # A server without a local disk (booted from a volume) has nothing to mirror.
    if nbd is None and seen.get("disk") is False:
        nbd = 0
    if record.status == "preparing" and nbd is not None and port:
        record.nbd_port, record.incoming_port, record.status = nbd or None, port, "running"
        actions.event(session, inst.id, "compute_pre_live_migration", record.dest_compute)
        bump(session)


def lost_source(record: Migration) -> str:
    return f"the source {record.source_compute} went down during the migration"


def settle_lost_sources(session: Session) -> None:
    """Migrations whose source node is known off: a preparing one ends in error (nothing
    was sent); a running one is marked, and its destination asked whether the guest
    arrived (its report ends it). Until then the server keeps task state migrating, so
    HA does not rebuild it while its guest may run on the destination."""
    from ..ha.evacuate import is_fenced  # noqa: PLC0415 - ha imports servers

    for record in session.scalars(select(Migration).where(
            Migration.status.in_(("preparing", *RUNNING)))):
        source = session.get(Node, record.source_node_id) if record.source_node_id else None
        if source is None or source.state != "down" or not (
                source.forced_down or is_fenced(source)) or record.message == lost_source(
                record):
            continue
        inst = session.get(Instance, record.instance_uuid)
        dest = session.get(Node, record.dest_node_id) if record.dest_node_id else None
        if inst is None:
            continue
        if record.status == "preparing" or dest is None or dest.state == "down":
            finish_failed(session, inst, record, "error", lost_source(record))
            continue
        record.message = lost_source(record)
        log.warning("live migration %s of %s: %s; %s is asked whether the guest arrived",
                    record.id, inst.id, record.message, record.dest_compute)
        bump(session, [dest.id])


def lost_destination(record: Migration) -> str:
    return f"the destination {record.dest_compute} went down during the migration"


def _give_up_lost(session: Session, inst: Instance, record: Migration) -> bool:
    """Whether the migration ended because its destination's node is down. A running one
    is only asked to stop: the source alone knows whether the guest already switched
    over, so its report ends it (in error, with the reason kept here)."""
    if record.dest_node_id is None or record.abort_requested:
        return False
    dest = session.get(Node, record.dest_node_id)  # None: removed with --force meanwhile
    if dest is not None and dest.state != "down":
        return False
    if record.status == "preparing":  # the source was never told to send
        finish_failed(session, inst, record, "error", lost_destination(record))
        return True
    record.abort_requested, record.message = True, lost_destination(record)
    log.warning("live migration %s of %s: %s; the source is told to cancel", record.id,
                inst.id, record.message)
    bump(session)
    return False


def _source(session: Session, inst: Instance, record: Migration, seen: Any) -> None:
    if not isinstance(seen, dict) or seen.get("migration") != record.id:
        return
    for key in PROGRESS:
        value = seen.get(key)
        if isinstance(value, int) and 0 <= value < 1 << 62:
            setattr(record, key, value)
    status = seen.get("status")
    if seen.get("post_copy") is True and record.status == "running":
        # The guest runs on the destination now; the rest of its memory follows.
        record.status = migration_states.POST_COPY
        log.info("live migration %s of %s switched to post-copy", record.id, inst.id)
    if status == "completed":
        finish_completed(session, inst, record)
    elif status == "cancelled" and record.message == lost_destination(record):
        finish_failed(session, inst, record, "error", record.message)
    elif status in ("failed", "cancelled"):
        error = seen.get("error")
        finish_failed(session, inst, record, "error" if status == "failed" else "cancelled",
                      error if isinstance(error, str) else status)


def _port(value: Any) -> int | None:
    return value if isinstance(value, int) and 0 < value < 65536 else None


def finish_completed(session: Session, inst: Instance, record: Migration) -> None:
    """The guest runs on the destination: the instance, its ports and its claim move."""
    if record.source_node_id:
        placement.release_counters(session, record.source_node_id, inst.vcpus,
                                   inst.memory_mb, inst.disk_gb)
    inst.node_id, inst.node_name = record.dest_node_id, record.dest_compute
    inst.task_state = None
    ports.bind(session, inst)
    live_migration_volumes.hand_over(session, inst, record)  # before its key goes
    record.status, record.memory_remaining = "completed", 0
    # Used up: a key kept after its migration only waits to leak (the attachments keep
    # the keys derived from volume_key; the secret itself goes).
    record.tls_key = record.volume_key = None
    if record.disk_total is not None:
        record.disk_remaining = 0
    actions.event(session, inst.id, "compute_live_migration", record.source_compute)
    actions.event(session, inst.id, "compute_post_live_migration_at_destination",
                  record.dest_compute)
    log.info("live migration %s of %s completed: now on %s", record.id, inst.id,
             record.dest_compute)
    bump(session)


def finish_failed(session: Session, inst: Instance, record: Migration, status: str,
                  message: str) -> None:
    """The guest stays on its source as it was; the destination's claim is given back."""
    if record.dest_node_id and record.status in ("preparing", *RUNNING):
        placement.release_counters(session, record.dest_node_id, inst.vcpus,
                                   inst.memory_mb, inst.disk_gb)
    record.status, record.message = status, message[:REPORT_ERROR_CHARS]
    record.tls_key = record.volume_key = None
    if inst.task_state == "migrating":
        inst.task_state = None
    result = "Success" if status == "cancelled" else "Error"
    actions.event(session, inst.id, "compute_live_migration", record.source_compute,
                  result, message[:REPORT_ERROR_CHARS])
    log.warning("live migration %s of %s %s: %s", record.id, inst.id, status, message)
    bump(session)
