"""The QEMU command line built from an instance spec, and PCI device selection for it."""

from __future__ import annotations

from pathlib import Path

import pytest

from atwill.agent.hypervisor import pci
from atwill.agent.hypervisor.spec import InstancePaths, InstanceSpec, Nic, qemu_argv

UUID = "5b0c3e38-6d5e-4c1f-9a59-1f0c2f1d7e11"
PATHS = InstancePaths.under(Path("/var/lib/atwill/instances"), Path("/run/atwill/qmp"), UUID)


def spec(**changes: object) -> InstanceSpec:
    values: dict[str, object] = dict(uuid=UUID, name="demo", vcpus=2, memory_mb=512, disk_gb=5,
                                     image_path=Path("/var/lib/atwill/images/img"))
    values.update(changes)
    return InstanceSpec(**values)  # type: ignore[arg-type]


def option(argv: list[str], flag: str) -> list[str]:
    """Every value given to flag, in order."""
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_basic_command_line() -> None:
    argv = qemu_argv(spec(), PATHS)
    assert argv[0] == "qemu-system-x86_64"
    assert option(argv, "-name") == ["guest=demo,debug-threads=on"]
    assert option(argv, "-uuid") == [UUID]
    # cloud-init detects OpenStack by DMI, as on Nova; the serial is the instance uuid.
    [smbios] = option(argv, "-smbios")
    assert "product=OpenStack Nova" in smbios and f"uuid={UUID}" in smbios
    assert option(argv, "-machine") == ["pc,accel=tcg"]
    assert option(argv, "-cpu") == ["max"]
    assert option(argv, "-smp") == ["2"]
    assert option(argv, "-m") == ["512"]
    for flag in ("-nodefaults", "-no-user-config", "-daemonize"):
        assert flag in argv
    assert option(argv, "-display") == ["none"]
    assert option(argv, "-vga") == ["none"]
    assert option(argv, "-pidfile") == [str(PATHS.pidfile)]
    assert option(argv, "-qmp") == [f"unix:/run/atwill/qmp/{UUID}.sock,server=on,wait=off"]
    assert "-incoming" not in argv


def test_disk_is_virtio_on_the_overlay() -> None:
    argv = qemu_argv(spec(), PATHS)
    # The backing image is given explicitly: the overlay's header never chooses it.
    base = spec()
    assert option(argv, "-drive") == [
        f"file={PATHS.disk},format=qcow2,if=none,id=disk0,discard=unmap,"
        f"backing.driver={base.image_format},backing.file.driver=file,"
        f"backing.file.filename={base.image_path}"]
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in option(argv, "-device")


@pytest.mark.parametrize(("bus", "device"), [
    ("scsi", "scsi-hd,drive=disk0,bus=scsi0.0,bootindex=0"),
    ("ide", "ide-hd,drive=disk0,bootindex=0"),
])
def test_disk_bus_property(bus: str, device: str) -> None:
    assert device in option(qemu_argv(spec(hw={"hw_disk_bus": bus}), PATHS), "-device")


def test_serial_console_goes_to_the_log_file() -> None:
    argv = qemu_argv(spec(), PATHS)
    assert option(argv, "-chardev") == [f"file,id=serial0,path={PATHS.console_log},append=on"]
    assert option(argv, "-serial") == ["chardev:serial0"]
    custom = qemu_argv(spec(console_log=Path("/logs/a,b.log")), PATHS)
    assert option(custom, "-chardev") == ["file,id=serial0,path=/logs/a,,b.log,append=on"]


@pytest.mark.parametrize(("accel", "cpu_mode", "cpu"), [
    ("kvm", "host-passthrough", "host"),
    ("kvm", None, "qemu64"),
    ("tcg", "host-passthrough", "max"),
    ("tcg", None, "max"),
])
def test_cpu_host_only_with_kvm_and_passthrough(accel: str, cpu_mode: str | None,
                                                cpu: str) -> None:
    argv = qemu_argv(spec(accel=accel, cpu_mode=cpu_mode), PATHS)
    assert option(argv, "-cpu") == [cpu]
    assert option(argv, "-machine") == [f"pc,accel={accel}"]


def test_one_tap_netdev_and_nic_per_port() -> None:
    nics = [Nic("fa:16:3e:00:00:01", "tap0123456789a", 1500, "br1"),
            Nic("fa:16:3e:00:00:02", "tap0123456789b", 1400, "br2")]
    argv = qemu_argv(spec(nics=nics), PATHS)
    assert option(argv, "-netdev") == [
        "tap,id=net0,ifname=tap0123456789a,script=no,downscript=no",
        "tap,id=net1,ifname=tap0123456789b,script=no,downscript=no"]
    devices = option(argv, "-device")
    assert "virtio-net-pci,netdev=net0,mac=fa:16:3e:00:00:01" in devices
    assert "virtio-net-pci,netdev=net1,mac=fa:16:3e:00:00:02,host_mtu=1400" in devices


def test_vif_and_video_models() -> None:
    argv = qemu_argv(spec(nics=[Nic("fa:16:3e:00:00:01", "tapx")],
                          hw={"hw_vif_model": "e1000", "hw_video_model": "virtio",
                              "hw_machine_type": "q35"}), PATHS)
    devices = option(argv, "-device")
    assert "e1000,netdev=net0,mac=fa:16:3e:00:00:01" in devices
    assert "virtio-vga" in devices
    assert option(argv, "-machine") == ["q35,accel=tcg"]


@pytest.mark.parametrize("hw", [{"hw_vif_model": "bogus"}, {"hw_video_model": "3dfx"},
                                {"hw_disk_bus": "floppy"}, {"hw_machine_type": "isapc"}])
def test_unknown_hardware_properties_are_refused(hw: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        qemu_argv(spec(nics=[Nic("fa:16:3e:00:00:01", "tapx")], hw=hw), PATHS)


def test_config_drive_is_a_read_only_cdrom() -> None:
    argv = qemu_argv(spec(config_drive=PATHS.config_drive), PATHS)
    assert (f"file={PATHS.config_drive},format=raw,if=none,id=config,media=cdrom,readonly=on"
            in option(argv, "-drive"))
    assert "ide-cd,drive=config" in option(argv, "-device")
    assert not any("id=config" in d for d in option(qemu_argv(spec(), PATHS), "-drive"))


def test_commas_in_the_name_are_escaped() -> None:
    assert option(qemu_argv(spec(name="a,b=c"), PATHS), "-name") == [
        "guest=a,,b=c,debug-threads=on"]


def test_sandbox_incoming_and_runas() -> None:
    argv = qemu_argv(spec(), PATHS, incoming=True, run_as="atwill-qemu")
    assert option(argv, "-sandbox") == ["on,obsolete=deny,resourcecontrol=deny"]
    assert option(argv, "-incoming") == ["defer"]
    assert option(argv, "-runas") == ["atwill-qemu"]
    plain = qemu_argv(spec(), PATHS, sandbox=False)
    assert "-sandbox" not in plain and "-runas" not in plain and "-incoming" not in plain


def test_spec_survives_json() -> None:
    original = spec(nics=[Nic("fa:16:3e:00:00:01", "tapx", 1450, "br0")],
                    config_drive=Path("/c.iso"), pci_devices=["0000:3b:00.0"],
                    hw={"hw_disk_bus": "scsi"})
    assert InstanceSpec.from_json(original.to_json()) == original


def test_paths_fit_unix_socket_limit() -> None:
    assert len(str(PATHS.qmp).encode()) < 108
    assert PATHS.directory == Path("/var/lib/atwill/instances") / UUID


def fake_device(sysfs: Path, address: str, vendor: str, product: str, klass: str,
                driver: str | None = None) -> None:
    device = sysfs / "bus" / "pci" / "devices" / address
    device.mkdir(parents=True)
    (device / "vendor").write_text(f"0x{vendor}\n")
    (device / "device").write_text(f"0x{product}\n")
    (device / "class").write_text(f"0x{klass}\n")
    (device / "numa_node").write_text("-1\n")
    if driver:
        target = sysfs / "bus" / "pci" / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (device / "driver").symlink_to(target)


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    # Two Tesla K20m (10de:1028) GPUs, a NIC, and the host bridge.
    fake_device(tmp_path, "0000:00:00.0", "8086", "2020", "060000")
    fake_device(tmp_path, "0000:3b:00.0", "10de", "1028", "030200", "nouveau")
    fake_device(tmp_path, "0000:5e:00.0", "8086", "1572", "020000", "i40e")
    fake_device(tmp_path, "0000:d8:00.0", "10de", "1028", "030200", "vfio-pci")
    (tmp_path / "bus" / "pci" / "drivers_probe").write_text("")
    return tmp_path


def test_gpu_passthrough_selects_the_device_and_adds_vfio_pci(sysfs: Path) -> None:
    assert pci.matching("10de", "1028", sysfs) == ["0000:3b:00.0", "0000:d8:00.0"]
    chosen = pci.select("10DE", "0x1028", 1, in_use={"0000:3b:00.0"}, sysfs=sysfs)
    assert chosen == ["0000:d8:00.0"]
    argv = qemu_argv(spec(pci_devices=chosen, accel="kvm", cpu_mode="host-passthrough"), PATHS)
    assert "vfio-pci,host=0000:d8:00.0" in option(argv, "-device")
    assert option(argv, "-cpu") == ["host"]


def test_gpu_selection_fails_when_none_is_free(sysfs: Path) -> None:
    with pytest.raises(ValueError, match="1 free"):
        pci.select("10de", "1028", 2, in_use={"0000:d8:00.0"}, sysfs=sysfs)


def test_bind_vfio_overrides_unbinds_and_probes(sysfs: Path) -> None:
    devices = sysfs / "bus" / "pci" / "devices"
    (sysfs / "bus" / "pci" / "drivers" / "nouveau" / "unbind").write_text("")
    pci.bind_vfio("0000:3b:00.0", sysfs)
    assert (devices / "0000:3b:00.0" / "driver_override").read_text() == "vfio-pci"
    assert (sysfs / "bus" / "pci" / "drivers" / "nouveau" / "unbind").read_text() == "0000:3b:00.0"
    assert (sysfs / "bus" / "pci" / "drivers_probe").read_text() == "0000:3b:00.0"
    # Already on vfio-pci: nothing is written.
    pci.bind_vfio("0000:d8:00.0", sysfs)
    assert not (devices / "0000:d8:00.0" / "driver_override").exists()
