"""What a node offers: CPUs, memory, disk, accelerator and PCI devices, read from the host."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from atwill.agent.kvm import kvm_probe

GIB = 1 << 30


def collect(instances_dir: Path, sysfs: Path = Path("/sys"), proc: Path = Path("/proc"),
            kvm: Callable[[], bool] = kvm_probe,
            storage: dict[str, Any] | None = None) -> dict[str, Any]:
    """The inventory a node reports when it joins and whenever it changes; a storage node's
    has "storage" (agent/storage: its path, total and free GiB, formats)."""
    cpus = _cpuinfo(proc / "cpuinfo")
    instances_dir.mkdir(parents=True, exist_ok=True)
    fs = os.statvfs(instances_dir)
    first = cpus[0] if cpus else {}
    inventory = {
        "hostname": socket.gethostname(),
        "arch": platform.machine(),
        "vcpus": len(cpus) or os.cpu_count() or 1,
        "memory_mb": _meminfo_kb(proc / "meminfo", "MemTotal") // 1024,
        "disk_gb": fs.f_blocks * fs.f_frsize // GIB,
        "cpu_model": first.get("model name", ""),
        "cpu_flags": sorted(first.get("flags", "").split()),
        "accelerator": "kvm" if kvm() else "tcg",
        "pci_devices": pci_devices(sysfs),
    }
    if storage is not None:
        inventory["storage"] = storage
    return inventory


def inventory_digest(inventory: dict[str, Any]) -> str:
    """A stable hash of an inventory, so the agent reports it only when it changed."""
    text = json.dumps(inventory, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def pci_devices(sysfs: Path = Path("/sys")) -> list[dict[str, Any]]:
    """Every PCI device under sysfs/bus/pci/devices, with its IDs, class, NUMA node, driver."""
    root = sysfs / "bus" / "pci" / "devices"
    if not root.is_dir():
        return []
    return [_pci_device(path) for path in sorted(root.iterdir())]


def _pci_device(path: Path) -> dict[str, Any]:
    class_code = _hex(path / "class", 6)
    numa = _read(path / "numa_node")
    driver = path / "driver"
    return {
        "address": path.name,
        "vendor_id": _hex(path / "vendor", 4),
        "product_id": _hex(path / "device", 4),
        "class_code": class_code,
        # -1 means the platform has no NUMA affinity for the device.
        "numa_node": int(numa) if numa and int(numa) >= 0 else None,
        "is_gpu": class_code.startswith("03"),
        "driver": os.readlink(driver).rsplit("/", 1)[-1] if driver.is_symlink() else None,
    }


def _hex(path: Path, width: int) -> str:
    value = _read(path).lower().removeprefix("0x")
    return value.rjust(width, "0") if value else ""


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _cpuinfo(path: Path) -> list[dict[str, str]]:
    cpus: list[dict[str, str]] = []
    for block in _read(path).split("\n\n"):
        fields = dict(_field(line) for line in block.splitlines() if ":" in line)
        if "processor" in fields:
            cpus.append(fields)
    return cpus


def _field(line: str) -> tuple[str, str]:
    key, _, value = line.partition(":")
    return key.strip(), value.strip()


def _meminfo_kb(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        name, value = _field(line)
        if name == key:
            return int(value.split()[0])
    return 0
