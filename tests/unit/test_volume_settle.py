"""controller/volume/settle.py's pure parts: when a node counts as gone, and which rows a
returning node's report resumes (only those the sweep settled, from the state it says)."""

from __future__ import annotations

import datetime as dt

from atwill.controller.db.models import Instance, Node
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.controller.volume import settle

NOW = dt.datetime(2026, 12, 7, 12, 0, 0)


def _node(**values: object) -> Node:
    base = {"name": "s1", "state": "up", "forced_down": False, "fence_state": None,
            "last_heartbeat": NOW - dt.timedelta(seconds=600), "health_changed_at": None,
            "created_at": NOW - dt.timedelta(days=1)}
    return Node(**{**base, **values})


def test_gone_needs_the_node_known_off_and_the_silence() -> None:
    fenced = {"fence_state": "ok", "fenced_at": NOW - dt.timedelta(seconds=500)}
    assert settle.gone(_node(), NOW, 300) is None  # up: its reports settle it
    assert settle.gone(_node(forced_down=True), NOW, 300) == 600
    assert settle.gone(_node(state="down", **fenced), NOW, 300) == 600
    assert settle.gone(_node(fence_state="failed"), NOW, 300) is None
    assert settle.gone(_node(state="down", forced_down=True), NOW, 900) is None  # not yet
    assert settle.gone(_node(forced_down=True), NOW, 0) is None  # 0: never
    # Judged down 100 s ago (a controller back from an outage): 100 s, not the silence.
    assert settle.gone(_node(forced_down=True, health_changed_at=NOW - dt.timedelta(
        seconds=100)), NOW, 300) is None


def test_silence_alone_is_not_off() -> None:
    """Review HIGH 1: the monitor's down verdict comes from silence alone; a node cut off
    but alive (not fenced, fence failed or skipped, fenced by lease) keeps its guests'
    disks and its exports, so nothing of it is settled."""
    assert settle.gone(_node(state="down"), NOW, 300) is None
    for fence in ("pending", "failed", "skipped"):
        assert settle.gone(_node(state="down", fence_state=fence), NOW, 300) is None
    # ok without fenced_at is no power confirmed (ha/evacuate.is_fenced).
    assert settle.gone(_node(state="down", fence_state="ok"), NOW, 300) is None
    lease = _node(state="down", fence_state="ok", fence_method="lease",
                  fenced_at=NOW - dt.timedelta(seconds=500))
    assert settle.gone(lease, NOW, 300) is None  # only its HA instances were stopped
    assert not settle.known_off(lease)
    assert settle.known_off(_node(state="down", fence_state="ok", fence_method="ipmi",
                                  fenced_at=NOW))


def test_a_boot_volume_is_never_released_on_compute_gone() -> None:
    """Review HIGH 2: a boot attachment (or any of a server built or rebuilt) is left to
    evacuation; the server would stay BUILD with no root disk."""
    assert settle._boot(VolumeAttachment(boot_index=0), None)
    assert settle._boot(VolumeAttachment(boot_index=None),
                        Instance(vm_state="building", task_state="spawning"))
    assert settle._boot(VolumeAttachment(boot_index=1),
                        Instance(vm_state="active", task_state="rebuilding"))
    assert not settle._boot(VolumeAttachment(boot_index=None),
                            Instance(vm_state="active", task_state=None))
    assert not settle._boot(VolumeAttachment(boot_index=None), None)


def test_resume_only_what_the_sweep_settled() -> None:
    said = settle.MESSAGE.format(node="s1", silence=600, what="volume", state="extending")
    assert settle.settled_from(said) == "extending"
    vol = Volume(status="error_extending", error=said)
    assert settle.resume(vol, settle.VOLUME_ERRORS)
    assert (vol.status, vol.error) == ("extending", None)
    reset = Volume(status="available", error=said)  # an admin reset it meanwhile
    assert not settle.resume(reset, settle.VOLUME_ERRORS) and reset.status == "available"
    failed = Volume(status="error", error="qemu-img: no space left")
    assert not settle.resume(failed, settle.VOLUME_ERRORS)
    assert settle.settled_from(None) is None
