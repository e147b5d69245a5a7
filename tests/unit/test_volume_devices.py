"""Volumes as QEMU sees them: desired entries checked, QMP arguments, the command line."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from atwill.agent.hypervisor import volumes
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec, qemu_argv
from atwill.agent.instances import parse_volumes
from atwill.core import volume_devices as vd

VOL = "0b6c4c3e-7a57-4bd4-8d6e-3c1a4a0e9f01"
OTHER = "9f1d2c3b-4a5e-4f60-8a7b-1c2d3e4f5a6b"
UUID = "5b0c3e38-6d5e-4c1f-9a59-1f0c2f1d7e11"
PATHS = InstancePaths.under(Path("/i"), Path("/q"), UUID)


def entry(**changes: object) -> dict[str, object]:
    values: dict[str, object] = {"volume_id": VOL, "serial": VOL, "device": "/dev/vdb",
                                 "host": "10.9.0.3", "port": 10809, "export": VOL,
                                 "boot_index": None, "read_only": False}
    values.update(changes)
    return values


def spec(volumes: list[vd.Volume], creds: Path | None = Path("/s/pki/nbd-client")
         ) -> InstanceSpec:
    return InstanceSpec(uuid=UUID, name="vm", vcpus=1, memory_mb=128, disk_gb=1,
                        image_path=Path("/img"), volumes=volumes, volume_creds=creds)


def option(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_entry_of_the_contract() -> None:
    volume = vd.Volume.from_desired(entry())
    assert (volume.host, volume.port, volume.export, volume.serial) == \
        ("10.9.0.3", 10809, VOL, VOL)
    assert volume.node_name == "nbd-0b6c4c3e7a574bd48d6e3c1a"
    assert len(volume.node_name) < 32  # QEMU's limit for block node names
    assert volume.device_id == "vol-0b6c4c3e7a574bd48d6e3c1a"


@pytest.mark.parametrize("bad", [{"volume_id": "nope"}, {"port": 0}, {"port": "10809"},
                                 {"port": True}, {"host": ""}, {"host": "a,b"},
                                 {"boot_index": -1}, {"boot_index": "0"}])
def test_malformed_entries_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(vd.VolumeSpecError):
        vd.Volume.from_desired(entry(**bad))


def test_blockdev_and_device_arguments() -> None:
    volume = vd.Volume.from_desired(entry(read_only=True, boot_index=1))
    args = vd.blockdev(volume)
    assert args["driver"] == "nbd" and args["tls-creds"] == vd.CREDS_ID
    assert args["server"] == {"type": "inet", "host": "10.9.0.3", "port": "10809"}
    assert args["export"] == VOL and args["read-only"] is True
    assert "tls-hostname" not in args
    assert args["reconnect-delay"] == vd.RECONNECT_DELAY  # a storage restart is a wait
    assert vd.device(volume) == {"driver": "virtio-blk-pci", "id": volume.device_id,
                                 "drive": volume.node_name, "serial": VOL, "bootindex": 1,
                                 "addr": "0x11"}  # /dev/vdb's fixed slot
    named = vd.Volume.from_desired(entry(tls_hostname="storage-1"))
    assert vd.blockdev(named)["tls-hostname"] == "storage-1"
    assert "bootindex" not in vd.device(named)


def test_every_qemu_gets_the_client_credentials() -> None:
    # Loaded as root at start: a later hot-plug only names the object.
    argv = qemu_argv(spec([]), PATHS, run_as="1:1")
    objects = [json.loads(o) for o in option(argv, "-object")]
    assert objects == [{"qom-type": "tls-creds-x509", "id": vd.CREDS_ID,
                        "dir": "/s/pki/nbd-client", "endpoint": "client",
                        "verify-peer": True}]
    assert option(qemu_argv(spec([], creds=None), PATHS), "-object") == []


def test_cold_attach_on_the_command_line() -> None:
    volume = vd.Volume.from_desired(entry())
    argv = qemu_argv(spec([volume]), PATHS)
    assert [json.loads(b) for b in option(argv, "-blockdev")] == [vd.blockdev(volume)]
    assert [json.loads(d) for d in option(argv, "-device") if d.startswith("{")] == \
        [vd.device(volume)]
    assert any("id=disk0" in d for d in option(argv, "-drive"))  # the local disk stays
    with pytest.raises(vd.VolumeSpecError, match="no client credentials"):
        qemu_argv(spec([volume], creds=None), PATHS)


def test_boot_from_volume_has_no_local_disk() -> None:
    boot = vd.Volume.from_desired(entry(boot_index=0))
    argv = qemu_argv(spec([boot]), PATHS)
    assert not any("id=disk0" in d for d in option(argv, "-drive"))
    devices = [json.loads(d) for d in option(argv, "-device") if d.startswith("{")]
    assert [d["bootindex"] for d in devices] == [0]


def test_the_spec_keeps_its_volumes() -> None:
    original = spec([vd.Volume.from_desired(entry(read_only=True))])
    assert InstanceSpec.from_json(original.to_json()) == original
    booted = replace(spec([vd.Volume.from_desired(entry(boot_index=0))]), image_path=None)
    assert InstanceSpec.from_json(booted.to_json()) == booted
    assert not any("id=disk0" in d for d in option(qemu_argv(booted, PATHS), "-drive"))


def test_plan_attaches_missing_and_removes_unwanted() -> None:
    wanted = [vd.Volume.from_desired(entry()), vd.Volume.from_desired(entry(volume_id=OTHER))]
    stale = "vol-" + "ab" * 12
    attach, remove = vd.plan(wanted, [wanted[0].device_id, stale, "net0"],
                             [wanted[0].node_name, "nbd-" + "cd" * 12, "disk0"])
    assert attach == [wanted[1]]
    assert remove == ["ab" * 12, "cd" * 12]
    # A block node left without its device (a failed device_add) is finished, not kept.
    attach, remove = vd.plan(wanted[:1], [], [wanted[0].node_name])
    assert attach == wanted[:1] and remove == []


def test_parse_volumes_reports_the_malformed_one() -> None:
    wanted, refused = parse_volumes([entry(), entry(volume_id=OTHER, port=70000)])
    assert [v.volume_id for v in wanted] == [VOL]
    assert refused[OTHER].startswith("error: ") and "70000" in refused[OTHER]


def test_an_attachment_with_its_own_key() -> None:
    key = {"identity": "atwill-att-1", "key": "0f" * 32}
    volume = vd.Volume.from_desired(entry(psk=key, tls_hostname="stor1"))
    assert (volume.psk_identity, volume.psk_key) == ("atwill-att-1", "0f" * 32)
    args = vd.blockdev(volume)
    assert args["tls-creds"] == volume.creds_id == "psk-" + VOL.replace("-", "")[:24]
    assert "tls-hostname" not in args  # the key proves the server; no certificate
    assert vd.psk_line(volume) == f"atwill-att-1:{'0f' * 32}\n"
    # Started with it: its own credentials object, and no node key needed at all.
    argv = qemu_argv(spec([volume], creds=None), PATHS)
    objects = [json.loads(o) for o in option(argv, "-object") if o.startswith("{")]
    assert objects == [{"qom-type": "tls-creds-psk", "id": volume.creds_id,
                        "endpoint": "client", "username": "atwill-att-1",
                        "dir": f"{PATHS.directory}/nbd-psk/{VOL.replace('-', '')[:24]}"}]
    for bad in ({"identity": "a,b", "key": "0f" * 32}, {"identity": "a", "key": "zz" * 32},
                {"identity": "a"}, "atwill-att-1"):
        with pytest.raises(vd.VolumeSpecError, match="psk"):
            vd.Volume.from_desired(entry(psk=bad))


def test_an_attachment_key_file_is_its_qemu_users_alone(tmp_path: Path) -> None:
    volume = vd.Volume.from_desired(entry(psk={"identity": "atwill-att-1", "key": "0f" * 32}))
    made = volumes.write_psk(tmp_path / "nbd-psk", volume)
    assert (made / "keys.psk").read_text() == vd.psk_line(volume)
    assert made.stat().st_mode & 0o777 == 0o700
    assert (made / "keys.psk").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "nbd-psk").stat().st_mode & 0o777 == 0o711


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_handing_a_key_to_qemus_user_follows_no_symlink_it_could_plant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Review finding: once the directory was QEMU's user's, that user could swap keys.psk
    for a symlink, and root's chown by path then gave it any file of the host."""
    victim = tmp_path / "victim"
    victim.write_text("root's")
    volume = vd.Volume.from_desired(entry(psk={"identity": "atwill-att-1", "key": "0f" * 32}))
    real_chown = os.chown

    def chown_then_swap(path: Any, uid: int, gid: int, **kwargs: Any) -> None:
        real_chown(path, uid, gid, **kwargs)
        key = Path(path) / "keys.psk"
        if key.exists() and not key.is_symlink():  # QEMU's user plants its link now
            key.unlink()
            key.symlink_to(victim)

    monkeypatch.setattr(volumes.os, "chown", chown_then_swap)
    volumes.write_psk(tmp_path / "nbd-psk", volume, owner=(65534, 65534))
    assert (victim.stat().st_uid, victim.stat().st_gid) == (0, 0)
