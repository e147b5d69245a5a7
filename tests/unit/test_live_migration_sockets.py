"""Two nodes on one machine (the lab) each reach their own QEMU of a migrating instance:
the QMP sockets of each node's instances are in a directory of that node's own."""

from __future__ import annotations

from pathlib import Path

from atwill.agent.hypervisor.qemu import SOCKETS_DIR, QemuDriver

UUID = "114ef480-0ce6-4591-a15b-b82e5cc99928"


def test_source_and_destination_on_one_machine_have_two_sockets(tmp_path: Path) -> None:
    source = QemuDriver(tmp_path / "node1" / "instances").paths(UUID).qmp
    destination = QemuDriver(tmp_path / "node2" / "instances").paths(UUID).qmp
    assert source != destination
    assert source.parent.parent == destination.parent.parent == SOCKETS_DIR
    # The same node finds its sockets again (an agent restart, the lab's clean-up).
    assert QemuDriver(tmp_path / "node1" / "instances").paths(UUID).qmp == source


def test_sockets_stay_short_and_the_default_node_keeps_its_place() -> None:
    deep = Path("/tmp/atwill-lab-t1a2-" + "x" * 60 + "/lab/node1/state/instances")
    assert len(str(QemuDriver(deep).paths(UUID).qmp)) < 108  # sun_path
    default = QemuDriver(Path("/var/lib/atwill/instances")).paths(UUID).qmp
    assert default == SOCKETS_DIR / f"{UUID}.sock"
