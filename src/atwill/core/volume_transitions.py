"""How a volume attachment's `attaching` or `detaching` ends while its nodes are up.

A server's attachment is `attaching` until its compute node says "attached" (or fails),
`detaching` until that node no longer lists the volume. Each node's report and a timer
decide what else ends it, as Nova and Cinder do:

- an attach that fails (the compute node's "error: ...", the storage node's export error
  for that node) is rolled back: the attachment removed, the volume free again, an error
  event on the server's attach_volume action (Nova's failed attach);
- a detach the node cannot finish stays attached (Nova: DeviceDetachFailed after its
  retries): the attachment back to `attached`, the volume `in-use`, an error event;
- an attach or detach nobody answers within `bound` seconds is ended the same way, but
  never by taking a disk from a guest without its node's word: an attach whose export the
  compute node was given is *unwound through the node* (asked to unplug, the export still
  served); its node's next report then settles it (not listed: rolled back; listed, or
  it cannot unplug: the node holds the disk, so it is attached after all).
  An attach of a silent compute node is never rolled back by the timer, exported or not:
  an export seen once may have been plugged, then dropped (settle.py settles a node known
  off). A volume still being made (creating, downloading: a large image's copy) is waited
  for; its clock starts when it is made (the volume becomes attaching).

An error belongs to one attempt: the controller names the attachment in each node's
desired state (the compute node's volume entry, the storage node's export entry) and a
node that names attempts reports, with each error, the attachment it was trying. An error
of another attempt (a failed attach's, read after the user attached the volume again) or
an attach's error read while its attachment is being detached says nothing
(error_counts, export_error_counts); a node that names no attempts (an older agent) is
taken at its word as before.

Pure: the controller (controller/volume/attach_outcomes.py) gathers the facts.
"""

from __future__ import annotations

from dataclasses import dataclass

WAIT = "wait"
ROLLBACK = "rollback"  # remove the attachment, the volume free (failed attach)
UNWIND = "unwind"  # ask the node to unplug it (detaching, marked), its report settles it
RESTORE = "restore"  # back to attached, the volume in-use (failed detach; or the node holds it)
FAIL_BUILD = "fail_build"  # the server being built from it goes to ERROR
RELEASE = "release"  # the detach is done: no guest of the server runs to hold the disk
NOTE = "note"  # remember the node's error; the timer restores after the retries

NO_WORD = "no word"  # an outcome that says nothing of this transition (error_counts)

VOLUME_BUILDING = ("creating", "downloading")  # the volume is still being made

# Nova's libvirt driver tries a detach device_detach_attempts (8) times, waiting
# device_detach_timeout (20 s) each, before it gives up: the node's errors count from then.
DETACH_RETRY = 160.0


@dataclass(frozen=True)
class Pending:
    """One attachment in transition, as the controller sees it."""

    status: str  # "attaching" | "detaching"
    age: float  # seconds since the transition began
    exported: bool  # the storage node reports the export to the target compute node
    node_heard: bool  # the target compute node beats (not silent, not known off)
    has_server: bool = True  # False: made by the attachments API for no server
    boot: bool = False  # the server's root disk (boot_index 0)
    building: bool = False  # its server is being built or rebuilt
    unwinding: bool = False  # a timed-out attach being taken back through the node
    detach_error: bool = False  # the node said it cannot finish this detach
    runs: bool = True  # the server is in its node's desired state (placed, not ERROR)
    volume_building: bool = False  # the volume is still being made (VOLUME_BUILDING)


def on_timer(p: Pending, bound: float, retry: float = DETACH_RETRY) -> str:
    """What the reconciler does with a transition (bound <= 0: never anything)."""
    if bound <= 0 or not p.has_server:
        return WAIT  # no server: the caller's to complete or delete (as Cinder's reserved)
    if p.status == "attaching":
        if p.volume_building or p.age < bound:
            # Still being made (a large image's copy can take longer than the bound): a
            # storage node gone while making it is settle.py's.
            return WAIT
        if p.boot and p.building:
            # Never exported: the server waits for it (compute/boot_pending) for ever. Once
            # exported, the node starts the server with it: its report settles the build.
            return WAIT if p.exported else FAIL_BUILD
        if p.boot or p.building:
            return WAIT  # a root disk, or a build's volume: the server's lifecycle
        if not p.node_heard:
            # Silence alone never takes what a node may hold (settle.py), even unexported
            # now: an export it was given and plugged may have dropped since.
            return WAIT
        if not p.exported:
            return ROLLBACK  # its heard node would say "attached" if it held it
        # A server its node no longer runs (ERROR leaves the node's desired state, which
        # its heard node has converged): nothing holds it.
        return UNWIND if p.runs else ROLLBACK
    if p.status == "detaching":
        if not p.node_heard or p.boot:
            # A silent node's by its report or, known off, by settle.compute_gone.
            return WAIT
        if not p.runs:
            return RELEASE if p.age >= bound else WAIT  # its node reports it no more
        if p.unwinding:
            return WAIT  # an unwind ends by the node's word
        if p.age >= bound or (p.detach_error and p.age >= min(retry, bound)):
            return RESTORE
    return WAIT


def on_node_word(status: str, unwinding: bool, outcome: object) -> str:
    """What the compute node's report of the volume ("attached", "error: ...", None: not
    listed) does. An "attached" attaching and a detaching not listed are the report's own
    (they complete the transition); this says what else ends one."""
    error = failed(outcome)
    if status == "attaching":
        return ROLLBACK if error else WAIT
    if status == "detaching" and unwinding:
        # It was given the volume, and holds it (it says so, or cannot unplug it): the
        # node's later word wins over the timer, the attach succeeded after all.
        return RESTORE if error or outcome == "attached" else WAIT
    if status == "detaching" and error:
        return NOTE
    return WAIT


def on_export_error(p: Pending) -> str:
    """The storage node reports it cannot export the volume to the attachment's compute
    node (its agent tries again at each converge). An attach still waiting for that
    export fails now, as Cinder's failed initialize_connection; one already exported (the
    compute node may hold the disk), or attached, is left alone; so is one of a silent
    compute node (it may have plugged an export that failed since)."""
    if p.status != "attaching" or p.exported or not p.has_server or p.volume_building:
        return WAIT
    if p.boot:
        return FAIL_BUILD if p.building else WAIT
    return WAIT if p.building or not p.node_heard else ROLLBACK


def failed(outcome: object) -> bool:
    """Whether a compute node's outcome for a volume is an error ("error: ...")."""
    return isinstance(outcome, str) and outcome.startswith("error")


def error_counts(status: str, attachment_id: str, outcome: object, attempt: object,
                 named: bool) -> bool:
    """Whether the compute node's outcome, if an error, is this transition's.

    named: the node's report names attempts (volume_attempts); attempt: the attachment id
    the outcome was computed for there, None when the volume was not wanted (a detach's
    outcome: it is not in the desired state any more). An attach's error counts for that
    attachment's attach alone; a detach's error is unnamed. "attached" and "not listed"
    are what the node holds now, whatever the attempt: they always count; so does any
    outcome of an attachment in no transition (nothing is decided on it)."""
    if not failed(outcome) or not named:
        return True
    if status == "attaching":
        return attempt == attachment_id
    if status == "detaching":
        return attempt is None  # an attach's error, of this attempt or another, is old
    return True


def word(status: str, attachment_id: str, outcome: object, attempt: object,
         named: bool) -> object:
    """The outcome as it concerns this transition: NO_WORD for an error of another
    attempt (error_counts), else the outcome itself."""
    return outcome if error_counts(status, attachment_id, outcome, attempt, named) \
        else NO_WORD


def export_error_counts(attachment_id: str, attempts: object) -> bool:
    """Whether a storage node's export error is this attachment's: attempts is what the
    node names for that error (the export entry's attachments when it failed), None for a
    node that names none (an older agent: any error of that export counts)."""
    if attempts is None:
        return True
    return isinstance(attempts, list) and attachment_id in attempts
