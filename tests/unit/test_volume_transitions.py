"""core/volume_transitions: how an attach or detach ends while its nodes are up (issue 12:
nothing stuck attaching/detaching), and that no disk is taken from a guest without its
node's word."""

from __future__ import annotations

from dataclasses import replace

from atwill.core import volume_transitions as vt

BOUND = 600.0
ATTACHING = vt.Pending(status="attaching", age=BOUND, exported=False, node_heard=True)
DETACHING = vt.Pending(status="detaching", age=BOUND, exported=True, node_heard=True)


def test_an_attach_waits_for_the_bound_then_ends() -> None:
    assert vt.on_timer(replace(ATTACHING, age=BOUND - 1), BOUND) == vt.WAIT
    # Never exported: the compute node was never given it, nothing to unplug.
    assert vt.on_timer(ATTACHING, BOUND) == vt.ROLLBACK
    # Exported: the node may hold it; it is asked to let go, its report settles it.
    assert vt.on_timer(replace(ATTACHING, exported=True), BOUND) == vt.UNWIND
    assert vt.on_timer(replace(ATTACHING, age=10 * BOUND), 0) == vt.WAIT  # 0: never


def test_a_silent_node_keeps_what_it_may_hold() -> None:
    """Silence alone ends nothing the node may hold (settle.py's known-off path does)."""
    assert vt.on_timer(replace(ATTACHING, exported=True, node_heard=False), BOUND) == vt.WAIT
    assert vt.on_timer(replace(DETACHING, node_heard=False), BOUND) == vt.WAIT


def test_a_silent_node_keeps_an_attach_whose_export_dropped() -> None:
    """Failed before (review): not exported now was rolled back whatever its node; a
    silent node may have been given the export and plugged it before it dropped."""
    assert vt.on_timer(replace(ATTACHING, node_heard=False), BOUND) == vt.WAIT
    assert vt.on_timer(replace(ATTACHING, node_heard=False, runs=False), BOUND) == vt.WAIT
    assert vt.on_export_error(replace(ATTACHING, node_heard=False)) == vt.WAIT


def test_a_volume_still_being_made_is_waited_for() -> None:
    """Failed before (review): a boot volume still copying its image past the bound
    failed the build as never exported."""
    boot = replace(ATTACHING, boot=True, building=True, volume_building=True)
    assert vt.on_timer(replace(boot, age=10 * BOUND), BOUND) == vt.WAIT
    assert vt.on_timer(replace(ATTACHING, volume_building=True), BOUND) == vt.WAIT
    assert vt.on_export_error(boot) == vt.WAIT
    assert vt.on_timer(replace(boot, volume_building=False), BOUND) == vt.FAIL_BUILD


def test_root_disks_and_builds_follow_the_server() -> None:
    boot = replace(ATTACHING, boot=True, building=True)
    assert vt.on_timer(boot, BOUND) == vt.FAIL_BUILD  # never exported: BUILD for ever
    assert vt.on_timer(replace(boot, exported=True), BOUND) == vt.WAIT  # the node builds
    assert vt.on_timer(replace(boot, building=False), BOUND) == vt.WAIT
    assert vt.on_timer(replace(ATTACHING, building=True), BOUND) == vt.WAIT
    assert vt.on_timer(replace(ATTACHING, has_server=False), BOUND) == vt.WAIT


def test_a_detach_stays_attached_after_the_retries() -> None:
    assert vt.on_timer(replace(DETACHING, age=BOUND - 1), BOUND) == vt.WAIT
    assert vt.on_timer(DETACHING, BOUND) == vt.RESTORE
    failing = replace(DETACHING, detach_error=True)
    assert vt.on_timer(replace(failing, age=vt.DETACH_RETRY - 1), BOUND) == vt.WAIT
    assert vt.on_timer(replace(failing, age=vt.DETACH_RETRY), BOUND) == vt.RESTORE
    assert vt.on_timer(replace(failing, age=30), 30) == vt.RESTORE  # a bound under it
    # An unwound attach ends by its node's word only.
    assert vt.on_timer(replace(DETACHING, unwinding=True, age=10 * BOUND), BOUND) == vt.WAIT


def test_the_nodes_word() -> None:
    assert vt.on_node_word("attaching", False, "error: no") == vt.ROLLBACK
    assert vt.on_node_word("attaching", False, "attached") == vt.WAIT  # the report's own
    assert vt.on_node_word("detaching", False, "error: busy") == vt.NOTE
    assert vt.on_node_word("detaching", False, "attached") == vt.WAIT  # not converged yet
    # An unwind the node holds (it says so, or cannot unplug it): attached after all.
    assert vt.on_node_word("detaching", True, "attached") == vt.RESTORE
    assert vt.on_node_word("detaching", True, "error: busy") == vt.RESTORE
    assert vt.on_node_word("detaching", True, None) == vt.WAIT  # released by the report
    assert vt.on_node_word("attached", False, "error: x") == vt.WAIT


def test_an_export_error_fails_only_an_attach_waiting_for_it() -> None:
    assert vt.on_export_error(ATTACHING) == vt.ROLLBACK
    assert vt.on_export_error(replace(ATTACHING, exported=True)) == vt.WAIT
    assert vt.on_export_error(replace(ATTACHING, status="attached")) == vt.WAIT
    assert vt.on_export_error(replace(DETACHING, exported=False)) == vt.WAIT
    assert vt.on_export_error(replace(ATTACHING, boot=True, building=True)) == vt.FAIL_BUILD
    assert vt.on_export_error(replace(ATTACHING, boot=True)) == vt.WAIT
    assert vt.on_export_error(replace(ATTACHING, has_server=False)) == vt.WAIT


def test_a_server_its_node_no_longer_runs_holds_nothing() -> None:
    """ERROR leaves the node's desired state: a heard node has let its guest go."""
    gone = replace(ATTACHING, exported=True, runs=False)
    assert vt.on_timer(gone, BOUND) == vt.ROLLBACK
    assert vt.on_timer(replace(gone, node_heard=False), BOUND) == vt.WAIT
    assert vt.on_timer(replace(DETACHING, runs=False), BOUND) == vt.RELEASE
    assert vt.on_timer(replace(DETACHING, runs=False, unwinding=True), BOUND) == vt.RELEASE
    assert vt.on_timer(replace(DETACHING, runs=False, age=1), BOUND) == vt.WAIT
    assert vt.on_timer(replace(DETACHING, runs=False, node_heard=False), BOUND) == vt.WAIT
