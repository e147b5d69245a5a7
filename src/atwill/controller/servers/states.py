"""Nova's server statuses from vm_state and task_state, and power states."""

from __future__ import annotations

POWER = {"nostate": 0, "running": 1, "paused": 3, "shutdown": 4, "crashed": 6, "suspended": 7}

STATUS_BY_VM_STATE = {
    "building": "BUILD", "active": "ACTIVE", "stopped": "SHUTOFF", "paused": "PAUSED",
    "suspended": "SUSPENDED", "error": "ERROR", "deleted": "DELETED",
    "soft-delete": "SOFT_DELETED", "rescued": "RESCUE", "resized": "VERIFY_RESIZE",
    "shelved": "SHELVED", "shelved_offloaded": "SHELVED_OFFLOADED",
}
STATUS_BY_TASK = {
    "rebooting": "REBOOT", "reboot_pending": "REBOOT", "reboot_started": "REBOOT",
    "rebooting_hard": "HARD_REBOOT", "reboot_pending_hard": "HARD_REBOOT",
    "reboot_started_hard": "HARD_REBOOT", "rebuilding": "REBUILD",
    "rebuild_spawning": "REBUILD", "rebuild_block_device_mapping": "REBUILD",
    "migrating": "MIGRATING",
    "resize_prep": "RESIZE", "resize_migrating": "RESIZE", "resize_migrated": "RESIZE",
    "resize_finish": "RESIZE",
}
RESIZE_TASKS = frozenset({"resize_prep", "resize_migrating", "resize_migrated",
                          "resize_finish"})

# What each agent-reported VM state means for the server's vm_state.
VM_STATE_BY_AGENT = {"running": "active", "paused": "paused", "shutoff": "stopped",
                     "suspended": "suspended"}
POWER_BY_AGENT = {"running": POWER["running"], "paused": POWER["paused"],
                  "shutoff": POWER["shutdown"], "suspended": POWER["suspended"],
                  "missing": POWER["nostate"], "error": POWER["crashed"]}


REBUILD_TASKS = frozenset({"rebuilding", "rebuild_spawning", "rebuild_block_device_mapping"})


def status(vm_state: str, task_state: str | None) -> str:
    if vm_state == "active" and task_state in STATUS_BY_TASK:
        return STATUS_BY_TASK[task_state]
    if vm_state in ("stopped", "error") and task_state in REBUILD_TASKS:
        return "REBUILD"  # Nova's state map: a stopped server rebuilds in place
    if vm_state == "stopped" and task_state in RESIZE_TASKS:
        return "RESIZE"
    if vm_state == "resized" and task_state == "resize_reverting":
        return "REVERT_RESIZE"
    return STATUS_BY_VM_STATE.get(vm_state, "UNKNOWN")


# (action, allowed vm_states, new task_state, desired power)
ACTIONS: dict[str, tuple[frozenset[str], str | None, str | None]] = {
    "os-stop": (frozenset({"active", "error"}), "powering-off", "stopped"),
    "os-start": (frozenset({"stopped"}), "powering-on", "running"),
    "pause": (frozenset({"active"}), "pausing", "paused"),
    "unpause": (frozenset({"paused"}), "unpausing", "running"),
    "suspend": (frozenset({"active"}), "suspending", "suspended"),
    "resume": (frozenset({"suspended"}), "resuming", "running"),
    "reboot": (frozenset({"active", "stopped", "paused", "suspended", "error"}), None,
               "running"),
}

# Which vm_state each desired power setting settles in, once the agent confirms it.
SETTLED = {"running": "active", "stopped": "stopped", "paused": "paused",
           "suspended": "suspended"}

# createImage: the vm_states Nova snapshots in, and the task_states while it runs (the
# server keeps its status; only an agent's upload or error report ends them).
SNAPSHOT_FROM = frozenset({"active", "stopped", "paused", "suspended"})
SNAPSHOT_TASKS = frozenset({"image_snapshot", "image_uploading"})
# shelve's snapshot (servers/shelve.py): the same machinery under Nova's shelving names.
SHELVING_TASKS = frozenset({"shelving", "shelving_image_pending_upload",
                            "shelving_image_uploading"})

# The compute-side event Nova records when each task finishes (os-instance-actions).
EVENT_BY_TASK = {
    "powering-off": "compute_stop_instance", "powering-on": "compute_start_instance",
    "pausing": "compute_pause_instance", "unpausing": "compute_unpause_instance",
    "suspending": "compute_suspend_instance", "resuming": "compute_resume_instance",
    "rebooting": "compute_reboot_instance", "rebooting_hard": "compute_reboot_instance",
    "rebuilding": "compute_rebuild_instance",
}


def event_name(task_state: str | None) -> str:
    """Nova's event for a finished task; other settlements keep a descriptive name."""
    return EVENT_BY_TASK.get(task_state or "", f"compute_{task_state or 'sync'}")
