"""The agent's side of volumes without QEMU: reports per volume, reachability first."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import volumes
from atwill.agent.hypervisor.qemu import QemuDriver
from atwill.agent.hypervisor.spec import InstanceSpec
from atwill.core.volume_devices import Volume

VOL = "0b6c4c3e-7a57-4bd4-8d6e-3c1a4a0e9f01"
BAD = "9f1d2c3b-4a5e-4f60-8a7b-1c2d3e4f5a6b"


class VolumeDriver:
    """One running instance; attaching BAD fails as a refused TLS handshake would."""

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def uuids(self) -> list[str]:
        return ["i"]

    def state(self, uuid: str) -> str:
        return "running"

    def list(self) -> dict[str, str]:
        return {"i": "running"}

    def sync_volumes(self, uuid: str, wanted: list[Volume]) -> dict[str, str]:
        self.asked.append([v.volume_id for v in wanted])
        return {v.volume_id: "error: cannot connect" if v.volume_id == BAD else "attached"
                for v in wanted}


def _entry(volume_id: Any, port: Any = 10809) -> dict[str, Any]:
    return {"volume_id": volume_id, "serial": volume_id, "device": "/dev/vdb",
            "host": "10.9.0.3", "port": port, "export": volume_id, "boot_index": None,
            "read_only": False}


def test_each_volume_is_reported_and_the_instance_stays_running(tmp_path: Path) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    driver = VolumeDriver()
    manager.driver = driver  # type: ignore[assignment]
    wanted = {"id": "i", "power": "running", "reboot_serial": 0, "rebuild_serial": 0,
              "volumes": [_entry(VOL), _entry(BAD), _entry("c" * 36, port=0)]}
    manager.converge([wanted])
    assert manager.lanes.wait(timeout=5)
    report = manager.report()["i"]
    assert report["state"] == "running" and "error" not in report
    assert report["volumes"][VOL] == "attached"
    assert report["volumes"][BAD] == "error: cannot connect"
    assert report["volumes"]["c" * 36].startswith("error: volume entry without")
    assert driver.asked == [[VOL, BAD]]  # the malformed entry never reaches QEMU
    # No volumes wanted any more: none reported.
    manager.converge([{**wanted, "volumes": []}])
    assert manager.lanes.wait(timeout=5)
    assert manager.report()["i"]["volumes"] == {}


def test_an_unreachable_export_is_refused_before_qemu_is_asked(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: the connection is refused
        volume = Volume.from_desired(_entry(VOL, port=port) | {"host": "127.0.0.1"})
        # No QMP socket at all: a QMPError would mean QEMU was asked first.
        attacher = volumes.Volumes(tmp_path / "absent.sock")
        with pytest.raises(volumes.VolumeError, match=f"cannot reach 127.0.0.1:{port}"):
            attacher.attach(volume)
        sock.listen()
        volumes.reachable("127.0.0.1", port)


def test_client_credentials_are_root_only_links(tmp_path: Path) -> None:
    for name in ("ca.pem", "node.pem", "node-key.pem"):
        (tmp_path / name).write_text(name)
    made = volumes.client_creds(tmp_path / "nbd-client", tmp_path / "ca.pem",
                                tmp_path / "node.pem", tmp_path / "node-key.pem")
    assert made.stat().st_mode & 0o777 == 0o700
    assert (made / "client-key.pem").read_text() == "node-key.pem"
    assert (made / "ca-cert.pem").read_text() == "ca.pem"
    # Again (every start): the same links, nothing else.
    volumes.client_creds(made, tmp_path / "ca.pem", tmp_path / "node.pem",
                         tmp_path / "node-key.pem")
    assert sorted(p.name for p in made.iterdir()) == \
        ["ca-cert.pem", "client-cert.pem", "client-key.pem"]


def test_a_suspended_instance_keeps_its_volumes(tmp_path: Path) -> None:
    # The saved state names the guest's devices: a resume needs the same volumes.
    driver = QemuDriver(tmp_path / "instances", sockets_dir=tmp_path / "qmp")
    held = Volume.from_desired(_entry(VOL))
    spec = InstanceSpec(uuid="i", name="vm", vcpus=1, memory_mb=128, disk_gb=1,
                        image_path=tmp_path / "img", volumes=[held])
    paths = driver.paths("i")
    paths.directory.mkdir(parents=True)
    paths.spec.write_text(spec.to_json())
    paths.saved_state.write_bytes(b"state")
    new = Volume.from_desired(_entry(BAD))
    outcome = driver.sync_volumes("i", [new])
    assert outcome == {VOL: "error: the instance is suspended; resume it first",
                       BAD: "error: the instance is suspended; resume it first"}
    assert driver.spec("i").volumes == [held]
    paths.saved_state.unlink()  # stopped, not suspended: the next start has them
    assert driver.sync_volumes("i", [new]) == {BAD: "attached"}
    assert driver.spec("i").volumes == [new]


def test_only_a_qemu_started_with_volumes_gets_the_node_key(tmp_path: Path) -> None:
    config = AgentConfig(state_dir=tmp_path, controller_url="https://c:1", node_id="n",
                         name="node1")
    for path in (config.ca, config.cert, config.key):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("pem")
    manager = instances.InstanceManager(config)
    manager._image = lambda image: tmp_path / "base.img"  # type: ignore[method-assign]
    inst = {"id": "i", "name": "i", "vcpus": 1, "memory_mb": 64, "disk_gb": 1,
            "image": {"id": "img"}, "nics": []}
    assert manager._spec(inst).volume_creds is None
    with_volume = manager._spec({**inst, "volumes": [_entry(VOL)]})
    assert with_volume.volume_creds is not None and with_volume.volume_creds.is_dir()
