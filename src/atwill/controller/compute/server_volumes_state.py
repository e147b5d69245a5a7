"""Nova's volume attachments as rows: attach, detach, what the compute node must plug in,
how its report settles them, and what a server's deletion does to its volumes.

Nova's block device mapping and Cinder's attachment are one row (VolumeAttachment); the
storage node exports an attachment that is attaching, attached or detaching
(volume/desired.py), the compute node is given it once that export is reported.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.errors import BadRequest
from ...core.volume_transitions import VOLUME_BUILDING, WAIT, on_node_word
from ..db.base import utcnow
from ..db.models import Instance
from ..db.volume import Volume, VolumeAttachment
from ..revision import bump
from ..volume import attach_outcomes, freeze, settle
from ..volume.desired import attachment_psk
from ..volume.volumes import start_delete

log = logging.getLogger("atwill.compute.volumes")
# What the compute node is asked to plug in (the export permitting).
PLUGGED = ("attaching", "attached")
# What Nova lists as the server's volumes (a detach not yet confirmed included).
LISTED = ("attaching", "attached", "detaching")
ROOT_DEVICE = "/dev/vda"
BOOT_FAILED = ("Build of instance {inst} aborted: Volume {vol} did not finish being created "
               "even after we waited 0 seconds or 1 attempts. And its status is error.")
# bdm_uuid (2.89) is not stored: it is derived from the attachment, stable and distinct.
BDM_NAMESPACE = uuid.UUID("6b0d5f4e-2f43-4c0e-9a55-0c1c4ad0b7a1")


def bdm_uuid(att: VolumeAttachment) -> str:
    return str(uuid.uuid5(BDM_NAMESPACE, att.id))


def of_server(session: Session, instance_id: str,
              statuses: tuple[str, ...] = LISTED) -> list[VolumeAttachment]:
    return list(session.scalars(select(VolumeAttachment).where(
        VolumeAttachment.instance_id == instance_id, VolumeAttachment.status.in_(statuses))
        .order_by(VolumeAttachment.created_at, VolumeAttachment.id)))


def next_device(used: list[str | None]) -> str:
    """The first free /dev/vdX after the root disk (Nova picks the name, whatever the
    caller asked for: the guest names its disks itself)."""
    for letter in "bcdefghijklmnopqrstuvwxyz":
        name = f"/dev/vd{letter}"
        if name not in used:
            return name
    raise BadRequest("No free device name is left on this server for another volume.")


def attach(session: Session, inst: Instance, vol: Volume, tag: str | None,
           delete_on_termination: bool) -> VolumeAttachment:
    """Reserve an available volume for the server (os-volume_attachments)."""
    if any(a.volume_id == vol.id for a in of_server(session, inst.id)):
        raise BadRequest(f"Invalid volume: volume {vol.id} already attached")
    if vol.status != "available":
        raise BadRequest(f"Invalid volume: volume '{vol.id}' status must be 'available'. "
                         f"Currently in '{vol.status}'")
    return add(session, inst, vol, tag, delete_on_termination, None)


def add(session: Session, inst: Instance, vol: Volume, tag: str | None,
        delete_on_termination: bool, boot_index: int | None) -> VolumeAttachment:
    """The attachment row on the server's node; the storage node exports it there (a new
    volume once it is made: it stays creating until then)."""
    taken = session.scalar(select(VolumeAttachment.id).where(
        VolumeAttachment.volume_id == vol.id).limit(1))
    if taken is not None and not vol.multiattach:
        raise BadRequest(f"Invalid volume: volume {vol.id} is attached to another server.")
    used = [ROOT_DEVICE, *(a.device for a in of_server(session, inst.id))]
    device = ROOT_DEVICE if boot_index == 0 else next_device(used)
    att = VolumeAttachment(
        volume_id=vol.id, instance_id=inst.id, project_id=vol.project_id,
        status="attaching", attach_mode="ro" if vol.readonly else "rw",
        connector={"host": inst.node_name}, node_id=inst.node_id, node_name=inst.node_name,
        device=device, boot_index=boot_index, delete_on_termination=delete_on_termination,
        tag=tag)
    session.add(att)
    if vol.status == "available":
        vol.status = "attaching"
    vol.updated_at = utcnow()
    session.flush()
    return att


def boot_pending(session: Session, inst: Instance) -> bool:
    """Whether a server booting from a volume must wait for it: its node cannot start it
    before the volume is made and exported there (a build, or an evacuation's rebuild on
    the new node)."""
    if inst.vm_state != "building" and inst.task_state != "rebuilding":
        return False
    for att in of_server(session, inst.id, statuses=PLUGGED):
        if att.boot_index == 0:
            return _export(session.get(Volume, att.volume_id), inst) is None
    return False


def fail_boots_on(session: Session, vol: Volume) -> None:
    """A volume in error that servers wait for as their boot disk (a build, an
    evacuation's rebuild): they go to ERROR with Nova's fault, not BUILD for ever."""
    from ..servers import lifecycle  # noqa: PLC0415 - lifecycle imports this module

    waiting = session.scalars(select(Instance).join(
        VolumeAttachment, VolumeAttachment.instance_id == Instance.id).where(
        VolumeAttachment.volume_id == vol.id, VolumeAttachment.boot_index == 0,
        Instance.deleted.is_(False)))
    for inst in list(waiting):
        if inst.vm_state == "building" or inst.task_state == "rebuilding":
            lifecycle.fail(session, inst, 500, BOOT_FAILED.format(inst=inst.id, vol=vol.id),
                           "compute__do_build_and_run_instance", inst.node_name)


def _kept(att: VolumeAttachment, inst: Instance) -> dict[str, Any] | None:
    """The export an attached volume was plugged in with: a storage node restarting
    reports no exports for a while, and the guest's NBD client reconnects to the same
    port (stable while exported) rather than losing its disk to a hot-unplug."""
    kept = (att.connector or {}).get("export") if att.status == "attached" else None
    if isinstance(kept, dict) and kept.get("node_id") == inst.node_id:
        return kept
    return None


def _keep(att: VolumeAttachment, vol: Volume | None, inst: Instance) -> bool:
    """Remember the export the volume is plugged in with on the server's node (_kept)."""
    export = _export(vol, inst)
    if export is None:
        return False
    att.connector = {**(att.connector or {}), "export": {
        "node_id": inst.node_id, "host": export["host"], "port": export["port"]}}
    return True


def _export(vol: Volume | None, inst: Instance) -> dict[str, Any] | None:
    """The storage node's export of the volume to the node running the server (exports
    follow the server: volume/desired.py), once it reported one."""
    export = (vol.exports or {}).get(inst.node_id) if vol is not None else None
    if not isinstance(export, dict) or not export.get("host") or not export.get("port"):
        return None
    return export


def relocked(session: Session, att: VolumeAttachment) -> VolumeAttachment | None:
    """The attachment read again under its volume's lock (FOR UPDATE, after the server's
    row: volume/lock_order.py), None if it went meanwhile (a node's report of a failed
    attach: a detach that read it before wrote the volume, then failed on the row gone)."""
    session.scalars(select(Volume).where(Volume.id == att.volume_id).with_for_update()
                    .execution_options(populate_existing=True)).all()
    return session.scalars(select(VolumeAttachment).where(
        VolumeAttachment.id == att.id, VolumeAttachment.status.in_(LISTED))
        .execution_options(populate_existing=True)).first()


def detach(session: Session, att: VolumeAttachment) -> None:
    """Ask the node to unplug; the row goes when its report no longer lists the volume."""
    vol = session.get(Volume, att.volume_id)
    att.status, att.updated_at = "detaching", utcnow()
    if vol is not None and not _orphaned(vol):
        vol.status, vol.updated_at = "detaching", utcnow()


def _release(session: Session, att: VolumeAttachment) -> Volume | None:
    """Drop the row; the volume is available once its export is gone too."""
    vol = session.get(Volume, att.volume_id)
    session.delete(att)
    session.flush()
    if vol is not None and not _orphaned(vol) and vol.status not in VOLUME_BUILDING:
        # Another attachment of a multiattach volume keeps its status (it used to be
        # made available while another server had it in use). One still being made
        # stays so until its storage node's report says what became of it (it was made
        # available: a boot volume that failed to be made was then never in error).
        vol.status = settle.after_release(session, vol, att.node_id, False)
        vol.updated_at = utcnow()
    return vol


def _orphaned(vol: Volume) -> bool:
    """In error on no node (its storage node removed with --force, or never placed): it
    stays in error, detached or not; no node holds its data, nor exports it."""
    return vol.node_id is None and vol.status == "error"


def desired(session: Session, inst: Instance) -> list[dict[str, Any]] | None:
    """The instance's `volumes` for its node (volume-contract); None when it has none."""
    atts = of_server(session, inst.id)
    if not atts:
        return None
    out = []
    for att in atts:
        vol = session.get(Volume, att.volume_id)
        if vol is None or _orphaned(vol):
            continue  # its export went with its storage node: the node unplugs it
        export = _export(vol, inst) or _kept(att, inst)
        if att.status not in PLUGGED or export is None:
            continue  # not exported to this node yet (or being detached)
        out.append({"volume_id": vol.id, "serial": vol.id, "device": att.device,
                    "host": export["host"], "port": export["port"], "export": vol.id,
                    "boot_index": att.boot_index, "read_only": att.attach_mode == "ro",
                    "tls_hostname": vol.node_name, "psk": attachment_psk(att),
                    "attachment_id": att.id})  # the attempt its errors name
    return out


def report(session: Session, inst: Instance, seen: dict[str, Any]) -> None:
    """Settle the instance's attachments from its node's report ("volumes")."""
    changed = False
    for att in _settling(session, inst, seen):
        outcome = attach_outcomes.word(att, seen)  # an error of another attempt: no word
        if att.node_id != inst.node_id:  # the server moved (evacuated): its node reports
            att.node_id, att.node_name = inst.node_id, inst.node_name
            changed = True
        if att.status == "attaching" and outcome == "attached":
            vol = session.get(Volume, att.volume_id)
            att.status, att.attached_at, att.updated_at = "attached", utcnow(), utcnow()
            _keep(att, vol, inst)
            if vol is not None:
                vol.status, vol.updated_at = "in-use", utcnow()
            changed = True
        elif att.status == "attached" and outcome == "attached" and _kept(att, inst) is None:
            # Plugged in on the node it moved to (an evacuation): the export kept is this
            # node's from now on, or a storage node's restart would unplug it here.
            changed |= _keep(att, session.get(Volume, att.volume_id), inst)
        elif att.status == "attaching" and isinstance(outcome, str) \
                and outcome.startswith("error"):
            # As Nova: a failed attach is rolled back, the volume is free again.
            attach_outcomes.attach_failed(session, inst, att, outcome)
            changed = True
        elif att.status == "detaching" and outcome is None:
            attach_outcomes.released(session, inst, att)  # an unwound attach: its event
            _release(session, att)
            changed = True
        elif att.status == "detaching":  # still held: failing, or an unwind it holds
            changed |= attach_outcomes.node_word(session, inst, att, outcome)
    if changed:
        bump(session, of=inst)


def _settling(session: Session, inst: Instance, seen: dict[str, Any]
              ) -> list[VolumeAttachment]:
    """The server's attachments for its node's report to settle; those the report would
    change read again under their volumes' locks (FOR NO KEY UPDATE, the strength of the
    writes they precede, in id order; after the server's row: volume/lock_order.py).
    Read unlocked, a detach committed meanwhile was undone: the report wrote the attach
    it had read over it, the volume in-use again. One it leaves as it is takes no lock
    (a heartbeat holds its node's row, which a server's delete updates after locking its
    volumes: a lock at each beat of an attach the node had not plugged in deadlocked)."""
    atts = of_server(session, inst.id)
    locked: set[str] = set()
    while wanted := {a.volume_id for a in atts if _moves(a, inst, seen)} - locked:
        session.scalars(select(Volume).where(Volume.id.in_(sorted(wanted)))
                        .order_by(Volume.id).with_for_update(key_share=True)
                        .execution_options(populate_existing=True)).all()
        locked |= wanted
        atts = list(session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.instance_id == inst.id, VolumeAttachment.status.in_(LISTED))
            .order_by(VolumeAttachment.created_at, VolumeAttachment.id)
            .execution_options(populate_existing=True)))
    return atts


def _moves(att: VolumeAttachment, inst: Instance, seen: dict[str, Any]) -> bool:
    """Whether report() may change the attachment (its branches, read unlocked)."""
    if att.node_id != inst.node_id:
        return True
    reported = seen.get("volumes")
    outcome = reported.get(att.volume_id) if isinstance(reported, dict) else None
    if att.status == "attaching":
        return outcome == "attached" or (isinstance(outcome, str)
                                         and outcome.startswith("error"))
    if att.status == "attached":
        return outcome == "attached" and _kept(att, inst) is None
    if att.status != "detaching":
        return False
    unwinding = bool((att.connector or {}).get(attach_outcomes.UNWIND_KEY))
    return outcome is None or on_node_word(att.status, unwinding, outcome) != WAIT


def on_server_delete(session: Session, inst: Instance) -> None:
    """A deleted server lets its volumes go; delete_on_termination ones are deleted. As
    Nova (_cleanup_volumes logs a volume it fails to delete and goes on): one on a frozen
    storage node, which refuses deletes, is only detached and stays (review finding: the
    server's delete was refused with the backend's 400).

    Locks in volume/lock_order.py's order, as Cinder's DELETE /attachments takes them:
    the server's row, its attachments' volumes (FOR UPDATE, in id order), then the
    attachments read again under those locks (review finding: the attachment row was
    deleted first and its volume updated after, the other order: on PostgreSQL the two
    deadlocked, or one deleted a row the other had read)."""
    for att in _locked_of_server(session, inst):
        dispose = att.delete_on_termination
        vol = _release(session, att)
        if vol is None or not dispose or not _only_ours(session, vol, inst):
            continue
        if freeze.is_frozen(session, vol.node_id):
            log.warning("server %s deleted: its volume %s is kept, its storage node being "
                        "frozen", inst.id, vol.id)
            continue
        start_delete(session, vol, cascade=True, force=True)


def lock_for_delete(session: Session, inst: Instance) -> None:
    """A server's delete takes its row and its attachments' volumes first, before its
    ports and its compute node's row (volume/lock_order.py: volumes before compute node
    rows; review finding: placement.release updated the node's row before
    on_server_delete locked the volumes, the reverse of a boot's order). The row being
    held FOR UPDATE from here, no attach or reserve adds another attachment meanwhile;
    on_server_delete takes the same locks again (held already) and reads them anew."""
    _locked_of_server(session, inst)


def _locked_of_server(session: Session, inst: Instance) -> list[VolumeAttachment]:
    """The server's attachments a delete releases, read again under the locks: its own row
    first (an attach naming it holds it FOR KEY SHARE, so one committed before is seen
    here and one after sees the server deleted), then its attachments' volumes."""
    statuses = (*LISTED, "reserved")
    session.execute(select(Instance.id).where(Instance.id == inst.id).with_for_update())
    locked: set[str] = set()
    while True:
        wanted = {a.volume_id for a in of_server(session, inst.id, statuses)} - locked
        if not wanted:
            break
        ids = sorted(wanted)
        session.scalars(select(Volume).where(Volume.id.in_(ids)).order_by(Volume.id)
                        .with_for_update().execution_options(populate_existing=True)).all()
        locked |= wanted
    return list(session.scalars(
        select(VolumeAttachment).where(VolumeAttachment.instance_id == inst.id,
                                       VolumeAttachment.status.in_(statuses))
        .order_by(VolumeAttachment.created_at, VolumeAttachment.id)
        .with_for_update().execution_options(populate_existing=True)))


def _only_ours(session: Session, vol: Volume, inst: Instance) -> bool:
    """delete_on_termination deletes the server's project's volume, and only once no other
    attachment holds it (review finding: the flag on a shared or another project's
    volume deleted it under its other users)."""
    if vol.project_id != inst.project_id:
        return False
    others = session.scalar(select(VolumeAttachment.id).where(
        VolumeAttachment.volume_id == vol.id, VolumeAttachment.instance_id != inst.id,
        VolumeAttachment.status.in_((*LISTED, "reserved"))).limit(1))
    return others is None


def volumes_attached(session: Session, inst: Instance, with_flag: bool) -> list[dict]:
    """The server's os-extended-volumes:volumes_attached (delete_on_termination at 2.3)."""
    out: list[dict[str, Any]] = []
    for att in of_server(session, inst.id):
        entry: dict[str, Any] = {"id": att.volume_id}
        if with_flag:
            entry["delete_on_termination"] = att.delete_on_termination
        out.append(entry)
    return out
