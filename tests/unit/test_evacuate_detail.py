"""The event an evacuation records says what the instance keeps: its boot volume (the
same one, not a copy) and its other volumes; only a local disk is lost."""

from __future__ import annotations

from atwill.controller.ha.evacuate import rebuild_detail

BOOT, DATA, MORE = "b" * 8, "d" * 8, "m" * 8


def test_a_local_disk_is_lost_and_rebuilt_from_its_image() -> None:
    assert rebuild_detail("node1", "img", []) == (
        "its local disk on node1 is lost: rebuilt from image img (no shared storage)")


def test_a_server_booted_from_a_volume_boots_from_it_again() -> None:
    assert rebuild_detail("node1", None, [(BOOT, 0)]) == (
        f"booted from its volume {BOOT} again (the same volume, not a copy)")
    assert "lost" not in rebuild_detail("node1", "img", [(DATA, None), (BOOT, 0)])


def test_data_volumes_follow_the_server() -> None:
    assert rebuild_detail("node1", "img", [(DATA, None)]).endswith(
        f"(no shared storage); its volume {DATA} follows it")
    assert rebuild_detail("node1", None, [(BOOT, 0), (DATA, None), (MORE, 1)]).endswith(
        f"not a copy); its volumes {DATA}, {MORE} follow it")
