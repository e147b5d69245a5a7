"""Host PCI devices for passthrough: finding them by vendor:product and handing them to vfio."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from atwill.agent.inventory import pci_devices

VFIO_DRIVER = "vfio-pci"


def matching(vendor_id: str, product_id: str, sysfs: Path = Path("/sys")) -> list[str]:
    """Addresses of every device with this vendor and product ID, in address order."""
    vendor, product = vendor_id.lower().removeprefix("0x"), product_id.lower().removeprefix("0x")
    return [device["address"] for device in pci_devices(sysfs)
            if device["vendor_id"] == vendor and device["product_id"] == product]


def select(vendor_id: str, product_id: str, count: int, in_use: Iterable[str],
           sysfs: Path = Path("/sys")) -> list[str]:
    """count free devices of this kind; ValueError when the node has fewer free."""
    used = set(in_use)
    free = [address for address in matching(vendor_id, product_id, sysfs) if address not in used]
    if len(free) < count:
        raise ValueError(f"{count} × {vendor_id}:{product_id} wanted, {len(free)} free")
    return free[:count]


def bind_vfio(address: str, sysfs: Path = Path("/sys")) -> None:
    """Hand the device to vfio-pci (driver_override, unbind, probe), unless it already is."""
    device = sysfs / "bus" / "pci" / "devices" / address
    driver = device / "driver"
    if driver.is_symlink() and driver.resolve().name == VFIO_DRIVER:
        return
    # driver_override makes the next probe pick vfio-pci whatever the device IDs say.
    (device / "driver_override").write_text(VFIO_DRIVER)
    if driver.is_symlink():
        (driver / "unbind").write_text(address)
    (sysfs / "bus" / "pci" / "drivers_probe").write_text(address)
