"""Volumes, snapshots and attachments left transitional by a node that is gone for long.

A storage node's own reports settle what it does (report.py): its agent works from the
desired state, so after a crash and restart it makes again a volume or snapshot still
`creating`, grows again one still `extending`, deletes what is `deleting`, and sends
(or reports failed) an upload still asked for; each report then moves the rows. A node
that does not come back reports nothing: past `volume_settle_after` seconds of silence
(config.py; 300 by default, 0: never) of a node known off (forced down by the operator,
or fenced with its power confirmed off: not a fence by lease) whose HA policy is not
autonomous, the controller settles what waits for it, as a Cinder operator would with
reset-state, and says why in the row's error. Silence alone (the monitor's down verdict)
settles nothing: a node cut off but alive still runs its guests and serves its exports,
and Nova and Cinder never detach because a host went quiet.

- on a storage node: a volume creating -> error (a server booting from it -> ERROR),
  extending -> error_extending, deleting -> error_deleting, uploading -> back to what it
  was with its unfinished image deleted (as a failed upload), attaching -> its attaching
  attachments rolled back (as Nova's failed attach), detaching with no attachment still
  being detached -> available (its export went with the node); snapshots creating ->
  error, deleting -> error_deleting. No row is deleted.
- on a compute node: attachments attaching or detaching of its servers (or made to it
  through the attachments API) are released, the volume in-use, reserved or available
  from the attachments left (detaching until its storage node reports the export gone);
  never a boot volume nor one of a server being built or rebuilt (left to evacuation).

Each node is locked and read again before anything of it changes (a beat committed
meanwhile stops it), each attachment locked and read again under its volume's lock.

Transitions that wait for nodes both up (an attach or detach nobody answers) are ended
by attach_outcomes.sweep, called last here (volume_transition_timeout).

Nothing is lost when the node comes back after all: a storage node's next report resumes
what was settled (resume(): error -> creating, error_extending -> extending,
error_deleting -> deleting), and its report then settles it from facts. `reserved`
(an attachment without a connector) is the caller's to complete or delete, as in Cinder.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from typing import TYPE_CHECKING

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from ..context import Controller

from ...core.every import Every
from ..db.base import utcnow
from ..db.models import Instance, Node
from ..db.volume import Volume, VolumeAttachment, VolumeSnapshot

log = logging.getLogger("atwill.volume")

SWEEP_EVERY = 5.0  # seconds between two sweeps by default (the monitor loop runs several times a s)
# A volume's transitional state -> its error state once its storage node is gone.
VOLUME_ERRORS = {"creating": "error", "downloading": "error",
                 "extending": "error_extending", "deleting": "error_deleting"}
SNAPSHOT_ERRORS = {"creating": "error", "deleting": "error_deleting"}
RELEASED = ("attaching", "detaching")
MESSAGE = ("The storage node {node} was down for {silence} s while the {what} was {state}; "
           "it is settled in error (it resumes if the node reports again).")
_WAS = re.compile(r"^The storage node \S+ was down for \d+ s while the (?:volume|snapshot) "
                  r"was ([a-z_-]+); it is settled in error")


SWEEPER = Every(SWEEP_EVERY)  # sweep at most every volume_sweep_every seconds


def due(ctl: Controller) -> bool:
    """Whether a sweep is due now (at most one every volume_sweep_every seconds)."""
    SWEEPER.seconds = ctl.settings.volume_sweep_every
    return SWEEPER.due()


def known_off(node: Node) -> bool:
    """The node is known not to run: forced down by the operator (Nova's forced_down: the
    operator vouches it is off) or fenced, its power confirmed off (fence_state ok with
    fenced_at, ha/evacuate.is_fenced). Silence alone (the monitor's state down) is not
    enough: a node cut off but alive still runs its guests and serves its exports. Nor
    is a fence by lease (ha/lease.py): the agent stops only its HA instances on it, the
    others may still run and its exports still serve (as ha/evacuate refuses them)."""
    from ..ha import evacuate  # noqa: PLC0415 - ha imports compute, which imports volume

    return bool(node.forced_down) or (evacuate.is_fenced(node)
                                      and node.fence_method != "lease")


def gone(node: Node, now: dt.datetime, after: float) -> int | None:
    """Seconds the node has been silent and known off, if at least after; else None.
    Counted from its last beat or its health's last change, the later: a controller back
    from a long outage judges a dead node down only after a grace, and its volumes wait
    `after` more from then (not settled at the verdict for the hour nobody heard it).
    The policy (never an autonomous node) is the caller's: it needs the aggregates."""
    if after <= 0 or not known_off(node):
        return None
    stamps = [t for t in (node.last_heartbeat, node.health_changed_at) if t is not None] \
        or [t for t in (node.created_at,) if t is not None]
    silence = int((now - max(stamps)).total_seconds()) if stamps else int(after)
    return silence if silence >= after else None


def sweep(session: Session, ctl: Controller, now: dt.datetime | None = None) -> int:
    """Settle what waits for nodes gone for at least volume_settle_after seconds; how many
    rows moved. A node is settled only when known off (known_off) and its effective HA
    policy (ha/policy.of_node, as the monitor's) is not autonomous: an autonomous site
    works cut off, its guests keep their disks whatever the controller hears."""
    from ...core import ha_policy  # noqa: PLC0415
    from ..ha import policy as ha_policies  # noqa: PLC0415 - ha imports compute
    from . import attach_outcomes  # noqa: PLC0415 - it imports this module

    now = now or utcnow()
    after = ctl.settings.volume_settle_after
    if after <= 0:
        return attach_outcomes.sweep(session, ctl, now)
    moved = 0
    candidates = [node.id for node in session.scalars(select(Node).where(or_(
        Node.forced_down.is_(True), Node.fence_state == "ok")).order_by(Node.id))
        if gone(node, now, after) is not None]
    for node_id in candidates:
        # Compare-and-set, as ha/monitor._write_verdict: the node row locked and read
        # again, so a beat that committed meanwhile is seen (and one that comes now waits
        # for this transaction) before anything of the node is changed.
        node = session.scalar(select(Node).where(Node.id == node_id)
                              .with_for_update().execution_options(populate_existing=True))
        if node is None:
            continue
        silence = gone(node, now, after)
        if silence is None:
            continue
        if not ha_policy.fences(ha_policies.of_node(session, ctl, node.name)):
            continue  # autonomous: never settled while gone, whatever an operator said
        moved += storage_gone(session, node, silence) + compute_gone(session, node)
    if moved:
        from ..revision import bump  # noqa: PLC0415 - revision imports the models late

        bump(session)
        log.warning("settled %d volume row(s) of node(s) known off for %s s or more", moved,
                    int(after))
    # Last: the node rows above are locked before any volume row (lock_order.py).
    return moved + attach_outcomes.sweep(session, ctl, now)


def storage_gone(session: Session, node: Node, silence: int) -> int:
    """The transitional volumes and snapshots of a storage node gone for silence s."""
    from ..compute.server_volumes_state import fail_boots_on  # noqa: PLC0415 - cycle
    from . import volume_upload  # noqa: PLC0415 - it imports the image service

    moved, now = 0, utcnow()
    vols = session.scalars(select(Volume).where(Volume.node_id == node.id)
                           .order_by(Volume.id).with_for_update()
                           .execution_options(populate_existing=True)).all()
    for vol in vols:
        moved += _snapshots(session, vol, node, silence, now)
        state = vol.status
        if state in VOLUME_ERRORS:
            vol.status, vol.updated_at = VOLUME_ERRORS[state], now
            vol.error = MESSAGE.format(node=node.name, silence=silence, what="volume",
                                       state=state)
            if vol.status == "error":
                fail_boots_on(session, vol)
        elif state == "uploading":
            image_id = ((vol.source or {}).get(volume_upload.UPLOAD_KEY) or {}).get("image_id")
            volume_upload.abandon(session, vol)
            log.warning("volume %s: its upload to image %s ended with its storage node %s "
                        "down", vol.id, image_id, node.name)
        elif state == "attaching":
            fail_boots_on(session, vol)
            for att in _attachments(session, vol, ("attaching",), lock=True):
                release(session, vol, att, None, storage_gone=True)
        elif state == "detaching" and not _attachments(session, vol, ("detaching",)):
            vol.status, vol.updated_at = after_release(session, vol, None, True), now
        else:
            continue
        moved += 1
        log.warning("volume %s: %s -> %s (storage node %s down for %d s)", vol.id, state,
                    vol.status, node.name, silence)
    return moved


def _snapshots(session: Session, vol: Volume, node: Node, silence: int,
               now: dt.datetime) -> int:
    moved = 0
    for snap in session.scalars(select(VolumeSnapshot).where(
            VolumeSnapshot.volume_id == vol.id,
            VolumeSnapshot.status.in_(tuple(SNAPSHOT_ERRORS)))):
        state = snap.status
        snap.status, snap.updated_at = SNAPSHOT_ERRORS[state], now
        snap.error = MESSAGE.format(node=node.name, silence=silence, what="snapshot",
                                    state=state)
        moved += 1
    return moved


def compute_gone(session: Session, node: Node) -> int:
    """Attachments attaching or detaching on a compute node that is gone: released, but
    never a server's boot volume (boot_index 0) nor an attachment of a server still
    building or rebuilding: the server would stay BUILD with no root disk and lose its
    delete_on_termination. Those are left to evacuation (the node is known off, so its
    servers are evacuated, their volumes following them) or to the server's deletion."""
    rows = session.execute(select(VolumeAttachment.id, VolumeAttachment.volume_id,
                                  VolumeAttachment.instance_id, VolumeAttachment.node_id,
                                  Instance.node_id)
                           .outerjoin(Instance, Instance.id == VolumeAttachment.instance_id)
                           .where(VolumeAttachment.status.in_(RELEASED))
                           .order_by(VolumeAttachment.volume_id, VolumeAttachment.id)).all()
    moved = 0
    for att_id, vol_id, inst_id, att_node, inst_node in rows:
        if (inst_node if inst_id and inst_node else att_node) != node.id:
            continue  # a first look, unlocked: read again below under the locks
        vol = session.scalar(select(Volume).where(Volume.id == vol_id)
                             .with_for_update().execution_options(populate_existing=True))
        # Read again under the volume's lock (its attachments change under it): still
        # transitional, still on this node, or left alone.
        att = session.scalar(select(VolumeAttachment).where(
            VolumeAttachment.id == att_id, VolumeAttachment.status.in_(RELEASED))
            .with_for_update().execution_options(populate_existing=True))
        if att is None:
            continue
        inst = session.get(Instance, att.instance_id, populate_existing=True) \
            if att.instance_id else None
        target = inst.node_id if inst is not None and inst.node_id else att.node_id
        if target != node.id or _boot(att, inst):
            continue
        log.warning("volume attachment %s (%s) released: its compute node %s is known off",
                    att.id, att.status, node.name)
        release(session, vol, att, target, storage_gone=False)
        moved += 1
    return moved


def _boot(att: VolumeAttachment, inst: Instance | None) -> bool:
    """A server's root disk, or a volume of a server being built or rebuilt."""
    return att.boot_index == 0 or (inst is not None and (
        inst.vm_state == "building" or inst.task_state == "rebuilding"))


def release(session: Session, vol: Volume | None, att: VolumeAttachment,
            target: str | None, storage_gone: bool) -> None:
    """Drop the attachment (exported to the node target); the volume's status follows
    the attachments left."""
    session.delete(att)
    session.flush()
    if vol is None or (vol.node_id is None and vol.status == "error"):
        return  # in error on no node: it stays so (compute/server_volumes_state._orphaned)
    vol.status, vol.updated_at = after_release(session, vol, target, storage_gone), utcnow()


def after_release(session: Session, vol: Volume, target: str | None,
                  storage_gone: bool) -> str:
    """The volume's status once an attachment of it to node target is gone: from the
    attachments left (another server's keeps it in use), else detaching until its storage
    node reports the export to target revoked."""
    left = _attachments(session, vol, None)
    if any(a.status == "attached" for a in left):
        return "in-use"
    if any(a.status in ("attaching", "detaching") for a in left):
        return vol.status
    if left:
        return "reserved"
    if not storage_gone and target is not None and target in (vol.exports or {}):
        return "detaching"  # until its storage node reports the export revoked
    return "available"


def _attachments(session: Session, vol: Volume, statuses: tuple[str, ...] | None,
                 lock: bool = False) -> list[VolumeAttachment]:
    query = select(VolumeAttachment).where(VolumeAttachment.volume_id == vol.id)
    if statuses is not None:
        query = query.where(VolumeAttachment.status.in_(statuses))
    if lock:
        query = query.with_for_update().execution_options(populate_existing=True)
    return list(session.scalars(query))


def settled_from(error: str | None) -> str | None:
    """The transitional state a row was settled from by sweep, if its error says so."""
    found = _WAS.match(error or "")
    return found.group(1) if found else None


def resume(row: Volume | VolumeSnapshot, errors: dict[str, str]) -> bool:
    """The node reports again: a row sweep put in error goes back to the state it was
    settled from (its error cleared), for the report to settle from facts."""
    was = settled_from(row.error)
    if was is None or errors.get(was) != row.status:
        return False
    row.status, row.error, row.updated_at = was, None, utcnow()
    return True
