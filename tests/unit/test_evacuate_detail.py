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


def test_a_volume_on_a_down_storage_node_keeps_the_server_from_moving(tmp_path) -> None:  # noqa: ANN001
    """Placed anyway, it would wait in REBUILD for a disk that no node serves."""
    from atwill.controller.db.models import Base, Instance, Node
    from atwill.controller.db.session import Database
    from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeType
    from atwill.controller.ha.evacuate import unreachable_volumes

    db = Database(f"sqlite:///{tmp_path / 'evac.db'}")
    Base.metadata.create_all(db.engine)
    try:
        with db.session() as s:
            failed = Node(id="n1", name="node1", state="down")
            s.add_all([failed, Node(id="n2", name="node2", state="up"),
                       Node(id="n3", name="store", state="down"),
                       VolumeType(id="t", name="default")])
            s.add(Instance(id="i", name="vm", project_id="p", user_id="u", vcpus=1,
                           memory_mb=64, disk_gb=1, node_id="n1", node_name="node1"))
            s.flush()

            def attach(vol: str, node: str, status: str = "attached") -> None:
                s.add(Volume(id=vol, project_id="p", user_id="u", size=1,
                             volume_type_id="t", node_id=node))
                s.flush()
                s.add(VolumeAttachment(volume_id=vol, instance_id="i", project_id="p",
                                       status=status))
                s.flush()

            attach("on-node2", "n2")
            attach("gone-before", "n3", status="detached")  # no longer the server's
            assert unreachable_volumes(s, s.get(Instance, "i"), failed) is None
            attach("on-store", "n3")
            assert unreachable_volumes(s, s.get(Instance, "i"), failed) == (
                "its volume on-store is on storage node n3, which is down; evacuate it "
                "again once that node is back")
            s.get(Node, "n3").state = "up"
            assert unreachable_volumes(s, s.get(Instance, "i"), failed) is None
            attach("on-failed", "n1")  # the failed node served storage too
            assert "on-failed is on storage node n1" in unreachable_volumes(
                s, s.get(Instance, "i"), failed)
    finally:
        db.dispose()
