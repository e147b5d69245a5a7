"""Attaches and detaches that fail, or that nobody answers, while both nodes are up.

The rules are core/volume_transitions.py's; this gathers the facts and applies them:

- the compute node reports "error: ..." for a volume being attached: the attachment is
  removed, the volume free again, and the server's attach_volume action gets a
  `compute_attach_volume` event in Error saying why in words fit for the server's owner
  (its message too, so `openstack server event list` shows why; the event's details are
  shown to the owner at 2.84, and no node's name nor an agent's own words are: Nova hides
  hosts from owners), the node's words in the log; the compute node's report calls
  attach_failed;
- the storage node reports it cannot export the volume to the server's compute node
  (its report's `export_errors`): the same (its words in the log); a server being
  built from that volume goes to ERROR (Nova's failed block device preparation);
- the compute node reports "error: ..." for a volume being detached: noted; its agent
  tries again at each converge, and after Nova's retries (DETACH_RETRY, at most the
  bound) the attachment is `attached` again, the volume `in-use`, and the detach_volume
  action gets a `compute_detach_volume` event in Error (Nova: the volume stays attached);
- `volume_transition_timeout` seconds (config.py; 600 by default, 0: never) after an
  attach or detach began with no answer, the sweep (every 5 s, settle.sweep) ends it the
  same way, never taking a disk from a guest without its node's word: an attach whose
  export the compute node was given is unwound through that node (`detaching`, the
  export still served, marked in the connector); its next report settles it: the volume
  not listed, rolled back with the error event; listed as attached, or not unpluggable,
  the node holds it and it is `attached` after all (its later word wins).
  A silent compute node is waited for (settle.py settles one known off); a server in
  ERROR, which its heard node no longer runs, holds nothing (rolled back, or released).
  A boot volume still being made (a large image's copy) is waited for, its clock from
  when it was made.

Each error is its attempt's (core/volume_transitions.error_counts): the compute node's
volume entry and the storage node's export entry name the attachment, a node's error names
the attachment it was for, and one of another attempt (a failed attach's, read after the
volume was attached again) is ignored: a quick re-attach is not failed by the old error.
Each event goes on the action of its own request: the attach_volume (detach_volume)
request's id is kept in the attachment's connector (ATTACH_REQUEST, DETACH_REQUEST;
`asked`), as Nova finds an instance action by its request id, so two attaches of one
server in flight each get their own; an attachment made before has its action guessed by
time (the latest of that name started by then).

The sweep applies the rules to an unlocked first look; only an attachment they would end
is read again under its volume's lock, each in its own savepoint (one that fails is
logged and skipped, the rest of the sweep and settle.py's work kept).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import volume_transitions as rules
from ..db.base import utcnow
from ..db.models import Instance, InstanceAction, InstanceActionEvent, Node
from ..db.volume import Volume, VolumeAttachment
from . import settle

if TYPE_CHECKING:
    from ..context import Controller

log = logging.getLogger("atwill.volume")
# Connector keys (server-set, never the caller's: attachments.SERVER_SET): why an attach
# is being unwound through its node, and the node's last error on a detach.
UNWIND_KEY = "unwind"
DETACH_ERROR_KEY = "detach_error"
# The request id of the attach_volume and detach_volume actions that began it (`asked`).
ATTACH_REQUEST = "attach_request"
DETACH_REQUEST = "detach_request"
REQUEST_KEYS = {"attach_volume": ATTACH_REQUEST, "detach_volume": DETACH_REQUEST}
REASON_CHARS = 1024
ACTION_SLACK = dt.timedelta(seconds=5)  # an action's row is stamped after its attachment's
TIMED_OUT = "the {what} did not complete within {bound} s"
EXPORT_FAILED = "the storage node {node} could not export the volume to {target}: {why}"
# What the server's owner reads (the action's message, the event's details at 2.84, the
# fault): no node's name, no agent's words (those go to the log).
NOT_EXPORTED = "the volume could not be exported to the server's compute node"
NODE_ATTACH_FAILED = "the compute node could not attach it"
NODE_DETACH_FAILED = "the compute node could not detach it"
BUILD_FAILED = ("Build of instance {inst} aborted: Failure prepping block device: volume "
                "{vol}: {why}")


def _stamp(value: dt.datetime | None) -> dt.datetime | None:
    return value.replace(tzinfo=None) if value is not None else None


def age(att: VolumeAttachment, vol: Volume | None, now: dt.datetime) -> float:
    """Seconds since the transition began: the attachment's last change, or the volume's
    (a volume made for a boot becomes attaching when its storage node has made it)."""
    stamps = [_stamp(t) for t in (att.created_at, att.updated_at) if t is not None]
    if vol is not None and vol.status in settle.RELEASED and vol.updated_at is not None:
        stamps.append(_stamp(vol.updated_at))
    began = max((t for t in stamps if t is not None), default=None)
    return (now - began).total_seconds() if began is not None else 0.0


def heard(node: Node | None) -> bool:
    """The node beats: not judged suspect or down, not known off."""
    return node is not None and node.health == "up" and node.state == "up" \
        and not settle.known_off(node)


def pending(session: Session, att: VolumeAttachment, vol: Volume | None,
            inst: Instance | None, now: dt.datetime) -> rules.Pending:
    target = inst.node_id if inst is not None and inst.node_id else att.node_id
    export = (vol.exports or {}).get(target) if vol is not None and target else None
    connector = att.connector or {}
    return rules.Pending(
        status=att.status, age=age(att, vol, now),
        exported=isinstance(export, dict) and bool(export.get("port")),
        node_heard=heard(session.get(Node, target) if target else None),
        has_server=inst is not None and not inst.deleted,
        boot=att.boot_index == 0,
        building=inst is not None and (inst.vm_state == "building"
                                       or inst.task_state == "rebuilding"),
        unwinding=att.status == "detaching" and bool(connector.get(UNWIND_KEY)),
        detach_error=att.status == "detaching" and bool(connector.get(DETACH_ERROR_KEY)),
        runs=inst is not None and inst.node_id is not None and not inst.deleted
        and inst.vm_state != "error",
        volume_building=vol is not None and vol.status in rules.VOLUME_BUILDING)


# What each decision does -----------------------------------------------------------
def asked(att: VolumeAttachment, record: InstanceAction) -> None:
    """Remember the request (an attach_volume or detach_volume action) that began the
    attachment's transition: its error event goes on that action, not on another of the
    same name in flight (compute/server_volumes)."""
    key = REQUEST_KEYS.get(record.action)
    if key is not None:
        att.connector = {**(att.connector or {}), key: record.request_id}


def _action(session: Session, inst: Instance, att: VolumeAttachment, action: str,
            began: dt.datetime | None) -> InstanceAction | None:
    """The server's `action` that began the transition: the one of the request kept in
    the attachment (`asked`; None if that row is gone, never another's); for an
    attachment made before, the latest one started by then (rows are stamped in the
    request's transaction), else the latest."""
    request = (att.connector or {}).get(REQUEST_KEYS[action])
    if isinstance(request, str):
        return session.scalar(select(InstanceAction).where(
            InstanceAction.instance_id == inst.id, InstanceAction.action == action,
            InstanceAction.request_id == request).order_by(InstanceAction.id.desc()).limit(1))
    found = list(session.scalars(select(InstanceAction).where(
        InstanceAction.instance_id == inst.id, InstanceAction.action == action)
        .order_by(InstanceAction.id.desc()).limit(20)))
    if began is not None:
        for record in found:
            if _stamp(record.start_time) <= began + ACTION_SLACK:
                return record
    return found[0] if found else None


def _event(session: Session, inst: Instance, att: VolumeAttachment, action: str,
           reason: str) -> None:
    """An Error event on the server's `action` for this attachment: attach_volume (asked
    when the row was made) or detach_volume (when it became detaching, its last change
    before this one); its message the reason (what `openstack server event list` shows)."""
    began = _stamp(att.created_at if action == "attach_volume" else att.updated_at)
    record = _action(session, inst, att, action, began)
    if record is None:
        return  # made through the attachments API: no action of Nova's
    now = utcnow()
    session.add(InstanceActionEvent(action_id=record.id, event=f"compute_{action}",
                                    host=inst.node_name, result="Error",
                                    traceback=reason[:REASON_CHARS], start_time=now,
                                    finish_time=now))
    record.updated_at, record.message = now, reason[:REASON_CHARS]


def _without_marks(att: VolumeAttachment) -> None:
    connector = dict(att.connector or {})
    marks = [connector.pop(key, None) for key in (UNWIND_KEY, DETACH_ERROR_KEY, DETACH_REQUEST)]
    if any(mark is not None for mark in marks):
        att.connector = connector


def rollback(session: Session, inst: Instance, att: VolumeAttachment,
             vol: Volume | None, reason: str, detail: str | None = None) -> None:
    """A failed attach: the attachment removed, the volume's status from what is left;
    reason for the owner, detail (the nodes' words) for the log."""
    log.warning("volume %s: the attach to server %s failed: %s", att.volume_id, inst.id,
                detail or reason)
    _event(session, inst, att, "attach_volume", f"Failed to attach volume {att.volume_id}: "
           f"{reason}")
    settle.release(session, vol, att, att.node_id, storage_gone=False)


def restore(session: Session, inst: Instance, att: VolumeAttachment, vol: Volume | None,
            reason: str | None, detail: str | None = None) -> None:
    """Attached after all: a detach that failed (reason for the owner, detail for the
    log), or an unwound attach its node holds (no reason: it succeeded late)."""
    from ..compute.server_volumes_state import _keep  # noqa: PLC0415 - compute imports us

    if reason is not None:
        log.warning("volume %s: the detach from server %s failed, it stays attached: %s",
                    att.volume_id, inst.id, detail or reason)
        _event(session, inst, att, "detach_volume",
               f"Failed to detach volume {att.volume_id}: {reason}; it stays attached")
    else:
        log.info("volume %s: its node holds it, attached to server %s after all",
                 att.volume_id, inst.id)
    _without_marks(att)
    now = utcnow()
    att.status, att.attached_at, att.updated_at = "attached", att.attached_at or now, now
    if vol is not None:
        _keep(att, vol, inst)
        if not (vol.node_id is None and vol.status == "error"):
            vol.status, vol.updated_at = "in-use", now


def unwind(session: Session, att: VolumeAttachment, vol: Volume | None, reason: str) -> None:
    """Ask the compute node to unplug an attach that timed out; its report settles it."""
    now = utcnow()
    att.status, att.updated_at = "detaching", now
    att.connector = {**(att.connector or {}), UNWIND_KEY: reason[:REASON_CHARS]}
    if vol is not None and vol.status == "attaching":
        vol.status, vol.updated_at = "detaching", now
    log.warning("volume %s: %s; its node is asked to let it go", att.volume_id, reason)


def fail_build(session: Session, inst: Instance, vol: Volume | None, reason: str,
               detail: str | None = None) -> None:
    """The server built from it to ERROR: reason in its fault (the owner's), detail
    (the nodes' words) in the log."""
    from ..servers import lifecycle  # noqa: PLC0415 - lifecycle imports compute

    if detail:
        log.warning("volume %s: the build of server %s fails: %s",
                    vol.id if vol is not None else "?", inst.id, detail)
    lifecycle.fail(session, inst, 500, BUILD_FAILED.format(
        inst=inst.id, vol=vol.id if vol is not None else "?", why=reason)[:REASON_CHARS],
        "compute__do_build_and_run_instance", inst.node_name)


# The compute node's report (compute/server_volumes_state.report) -------------------
def word(att: VolumeAttachment, seen: dict[str, Any]) -> Any:
    """The compute node's outcome for the attachment's volume in its report `seen`, as it
    concerns this transition: rules.NO_WORD for an error of another attempt (the report's
    volume_attempts name, for each outcome, the attachment it was for)."""
    reported = seen.get("volumes")
    outcome = reported.get(att.volume_id) if isinstance(reported, dict) else None
    attempts = seen.get("volume_attempts")
    named = isinstance(attempts, dict)
    attempt = attempts.get(att.volume_id) if named else None
    said = rules.word(att.status, att.id, outcome, attempt, named)
    if said == rules.NO_WORD:
        log.info("volume %s: an error of another attempt (%s) ignored for attachment %s "
                 "(%s)", att.volume_id, str(attempt or "none named")[:64], att.id, att.status)
    return said


def attach_failed(session: Session, inst: Instance, att: VolumeAttachment,
                  outcome: str) -> None:
    """Its node says the attach failed: rolled back (Nova's failed attach)."""
    rollback(session, inst, att, session.get(Volume, att.volume_id), NODE_ATTACH_FAILED,
             f"its node {inst.node_name}: {outcome.removeprefix('error: ')[:REASON_CHARS]}")


def released(session: Session, inst: Instance, att: VolumeAttachment) -> None:
    """Its node no longer lists a detaching volume: an unwound attach is a failed one."""
    reason = (att.connector or {}).get(UNWIND_KEY)
    if reason:
        _event(session, inst, att, "attach_volume", f"Failed to attach volume {att.volume_id}: "
               f"{reason}")


def node_word(session: Session, inst: Instance, att: VolumeAttachment,
              outcome: Any) -> bool:
    """A detaching volume its node still lists: whether the row changed."""
    unwinding = bool((att.connector or {}).get(UNWIND_KEY))
    decision = rules.on_node_word(att.status, unwinding, outcome)
    if decision == rules.RESTORE:
        restore(session, inst, att, session.get(Volume, att.volume_id), None)
        return True
    if decision == rules.NOTE:
        noted = str(outcome).removeprefix("error: ")[:REASON_CHARS]
        if (att.connector or {}).get(DETACH_ERROR_KEY) != noted:
            att.connector = {**(att.connector or {}), DETACH_ERROR_KEY: noted}
            return True
    return False


# The storage node's report (volume/report.py) --------------------------------------
def export_errors(session: Session, vol: Volume, node_name: str, reported: Any,
                  attempts: Any = None) -> bool:
    """The storage node's `export_errors` (compute node id -> why): the attaches that
    waited for such an export fail. attempts (its `export_error_attachments`: compute node
    id -> the attachment ids the export was wanted for when it failed) ties each error to
    its attempts; an attach of another is not failed by it. Whether a row changed."""
    if not isinstance(reported, dict) or not reported:
        return False  # (a query only for a volume whose export fails: beats stay cheap)
    from ..revision import bump  # noqa: PLC0415 - revision imports the models late

    changed, now = False, utcnow()
    # Unlocked, as the compute node's report (server_volumes_state.report) reads them.
    for att in settle._attachments(session, vol, ("attaching",)):
        inst = session.get(Instance, att.instance_id) if att.instance_id else None
        target = inst.node_id if inst is not None and inst.node_id else att.node_id
        why = reported.get(target) if target else None
        if not isinstance(why, str):
            continue
        # An error named by no attempt (an older agent's): any attach of that export's.
        named = attempts.get(target) if isinstance(attempts, dict) else None
        if not rules.export_error_counts(att.id, named):
            log.info("volume %s: an export error of another attempt ignored for "
                     "attachment %s", vol.id, att.id)
            continue
        decision = rules.on_export_error(pending(session, att, vol, inst, now))
        detail = EXPORT_FAILED.format(node=node_name, target=att.node_name or target,
                                      why=why)[:REASON_CHARS]
        if inst is None or decision == rules.WAIT:
            continue
        if decision == rules.FAIL_BUILD:
            fail_build(session, inst, vol, NOT_EXPORTED, detail)
        else:
            rollback(session, inst, att, vol, NOT_EXPORTED, detail)
        bump(session, of=inst)
        changed = True
    return changed


# The timer (settle.sweep) ----------------------------------------------------------
def sweep(session: Session, ctl: Controller, now: dt.datetime | None = None) -> int:
    """End the transitions of servers' attachments that went unanswered for the bound;
    how many moved."""
    bound = float(ctl.settings.volume_transition_timeout)
    if bound <= 0:
        return 0
    now = now or utcnow()
    first = min(bound, rules.DETACH_RETRY)
    # A first look, unlocked, the rules applied to it: only a transition they would end is
    # locked and read again (the sweep runs every 5 s; a bench's attaches must not wait
    # for it, nor a volume still being made hold a lock at each pass).
    due = []
    for att, vol in session.execute(
            select(VolumeAttachment, Volume).join(Volume, Volume.id == VolumeAttachment.volume_id)
            .where(VolumeAttachment.status.in_(settle.RELEASED),
                   VolumeAttachment.instance_id.is_not(None))
            .order_by(VolumeAttachment.volume_id, VolumeAttachment.id)).all():
        if age(att, vol, now) < first:
            continue
        inst = session.get(Instance, att.instance_id)
        if inst is not None and rules.on_timer(pending(session, att, vol, inst, now),
                                               bound) != rules.WAIT:
            due.append((att.id, att.volume_id))
    moved = 0
    for att_id, vol_id in due:
        # Its own savepoint: one that keeps failing is skipped, not the whole pass (nor
        # settle.py's work in the same transaction).
        try:
            with session.begin_nested():
                moved += _end(session, att_id, vol_id, bound, first, now)
        except Exception:  # noqa: BLE001 - logged; the next pass tries it again
            log.exception("volume %s: ending the transition of attachment %s failed; "
                          "skipped", vol_id, att_id)
    return moved


def _end(session: Session, att_id: str, vol_id: str, bound: float, first: float,
         now: dt.datetime) -> int:
    """One transition the first look would end, under its volume's lock: 1 if it moved."""
    from ..revision import bump  # noqa: PLC0415 - revision imports the models late

    vol = session.scalar(select(Volume).where(Volume.id == vol_id)
                         .with_for_update().execution_options(populate_existing=True))
    att = session.scalar(select(VolumeAttachment).where(
        VolumeAttachment.id == att_id, VolumeAttachment.status.in_(settle.RELEASED))
        .with_for_update().execution_options(populate_existing=True))
    if att is None or age(att, vol, now) < first:
        return 0
    inst = session.get(Instance, att.instance_id, populate_existing=True) \
        if att.instance_id else None
    if inst is None:
        return 0
    decision = rules.on_timer(pending(session, att, vol, inst, now), bound)
    what = "attach" if att.status == "attaching" else "detach"
    reason = TIMED_OUT.format(what=what, bound=int(bound))
    if decision == rules.ROLLBACK:
        rollback(session, inst, att, vol, reason)
    elif decision == rules.UNWIND:
        unwind(session, att, vol, reason)
    elif decision == rules.RESTORE:
        noted = (att.connector or {}).get(DETACH_ERROR_KEY)
        restore(session, inst, att, vol, NODE_DETACH_FAILED if noted else reason,
                f"its node {inst.node_name}: {noted}" if noted else None)
    elif decision == rules.FAIL_BUILD:
        fail_build(session, inst, vol, reason + " (its storage node never exported it)")
    elif decision == rules.RELEASE:
        released(session, inst, att)  # an unwound attach: its error event
        settle.release(session, vol, att, att.node_id, storage_gone=False)
    else:
        return 0
    bump(session, of=inst)
    return 1
