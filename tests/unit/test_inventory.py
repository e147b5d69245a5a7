"""Inventory from fake sysfs and proc trees, and the KVM probe's guest."""

from __future__ import annotations

import os
from pathlib import Path

from atwill.agent import kvm
from atwill.agent.inventory import collect, inventory_digest, pci_devices

CPUINFO = """processor\t: 0
model name\t: Fake CPU @ 2.0GHz
flags\t\t: sse2 fpu vmx

processor\t: 1
model name\t: Fake CPU @ 2.0GHz
flags\t\t: sse2 fpu vmx
"""


def _device(root: Path, address: str, vendor: str, device: str, cls: str, numa: str,
            driver: str | None) -> None:
    path = root / "bus" / "pci" / "devices" / address
    path.mkdir(parents=True)
    for name, value in (("vendor", vendor), ("device", device), ("class", cls),
                        ("numa_node", numa)):
        (path / name).write_text(value + "\n")
    if driver:
        target = root / "bus" / "pci" / "drivers" / driver
        target.mkdir(parents=True, exist_ok=True)
        (path / "driver").symlink_to(target)


def _trees(tmp_path: Path) -> tuple[Path, Path]:
    sysfs, proc = tmp_path / "sys", tmp_path / "proc"
    _device(sysfs, "0000:3b:00.0", "0x10de", "0x1028", "0x030200", "1", "nvidia")
    _device(sysfs, "0000:00:03.0", "0x8086", "0x100e", "0x020000", "-1", None)
    proc.mkdir()
    (proc / "cpuinfo").write_text(CPUINFO)
    (proc / "meminfo").write_text("MemTotal:       16384000 kB\nMemFree: 1 kB\n")
    return sysfs, proc


def test_collect_reads_the_trees(tmp_path: Path) -> None:
    sysfs, proc = _trees(tmp_path)
    inv = collect(tmp_path / "instances", sysfs, proc, kvm=lambda: False)
    assert (tmp_path / "instances").is_dir()
    assert inv["vcpus"] == 2 and inv["memory_mb"] == 16000
    assert inv["cpu_model"] == "Fake CPU @ 2.0GHz" and inv["cpu_flags"] == ["fpu", "sse2", "vmx"]
    assert inv["accelerator"] == "tcg" and inv["disk_gb"] >= 0 and inv["arch"] == os.uname()[4]
    gpu, nic = sorted(inv["pci_devices"], key=lambda d: not d["is_gpu"])
    assert gpu == {"address": "0000:3b:00.0", "vendor_id": "10de", "product_id": "1028",
                   "class_code": "030200", "numa_node": 1, "is_gpu": True, "driver": "nvidia"}
    assert nic["vendor_id"] == "8086" and not nic["is_gpu"]
    assert nic["numa_node"] is None and nic["driver"] is None
    assert collect(tmp_path / "instances", sysfs, proc, kvm=lambda: True)["accelerator"] == "kvm"


def test_digest_is_stable_and_sensitive(tmp_path: Path) -> None:
    sysfs, proc = _trees(tmp_path)
    inv = collect(tmp_path / "instances", sysfs, proc, kvm=lambda: False)
    same = dict(reversed(list(inv.items())))
    assert inventory_digest(inv) == inventory_digest(same)
    assert inventory_digest(inv) != inventory_digest({**inv, "memory_mb": 1})


def test_no_pci_bus(tmp_path: Path) -> None:
    assert pci_devices(tmp_path) == []


def test_probe_guest_is_a_boot_sector() -> None:
    assert len(kvm.BOOT_SECTOR) == 512 and kvm.BOOT_SECTOR.endswith(b"\x55\xaa")
    assert kvm.SUCCESS == 99


def test_kvm_needs_the_cpus_virtualization_flags(tmp_path: Path) -> None:
    # A CPU without vmx/svm can still run the real-mode probe under KVM, but not a guest.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vme de pse sse2 hypervisor\n")
    assert not kvm.hardware_virtualization(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu vmx sse2\n")
    assert kvm.hardware_virtualization(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu svm\n")
    assert kvm.hardware_virtualization(cpuinfo)
    assert not kvm.hardware_virtualization(tmp_path / "missing")
