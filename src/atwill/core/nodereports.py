"""Bounds on what a node reports (heartbeats, inventory, console chunks).

A node's reports are written to the database on every heartbeat; a report that
grows without bound (a host with thousands of PCI functions, a guest that floods
its console) would make the node's heartbeats slow enough to look down. Each
limit is checked before anything is stored; a report past one is refused with
a 400 (too many items) or 413 (too many bytes) that names the limit.
"""

from __future__ import annotations

import json
from typing import Any

from .errors import BadRequest, PayloadTooLarge

HEARTBEAT_BYTES = 256 * 1024
INVENTORY_BYTES = 128 * 1024
INVENTORY_KEYS = 64
INVENTORY_LIST_ITEMS = 1024
PCI_DEVICES = 512
INSTANCE_REPORTS = 4096
REPORT_KEYS = 16
REPORT_ERROR_CHARS = 4096
# A console chunk is the tail the controller keeps (Nova's console log is a tail too).
CONSOLE_BYTES = 64 * 1024


def check_inventory(inventory: dict[str, Any]) -> None:
    """Refuse an inventory past its limits (keys, list lengths, PCI devices, bytes)."""
    if len(inventory) > INVENTORY_KEYS:
        raise BadRequest(f"The inventory has {len(inventory)} keys; at most "
                         f"{INVENTORY_KEYS} are accepted.")
    pci = inventory.get("pci_devices")
    if isinstance(pci, list) and len(pci) > PCI_DEVICES:
        raise BadRequest(f"The inventory lists {len(pci)} PCI devices; at most "
                         f"{PCI_DEVICES} are accepted.")
    for key, value in inventory.items():
        if isinstance(value, list) and len(value) > INVENTORY_LIST_ITEMS:
            raise BadRequest(f"The inventory's {key[:64]!r} lists {len(value)} items; at most "
                             f"{INVENTORY_LIST_ITEMS} are accepted.")
    size = len(json.dumps(inventory, separators=(",", ":")))
    if size > INVENTORY_BYTES:
        raise PayloadTooLarge(f"The inventory is {size} bytes; at most {INVENTORY_BYTES} "
                              "are accepted.")


def check_instance_reports(reports: dict[str, Any]) -> None:
    """Refuse instance reports past their limits (console text is dropped by the caller)."""
    if len(reports) > INSTANCE_REPORTS:
        raise BadRequest(f"The heartbeat reports {len(reports)} instances; at most "
                         f"{INSTANCE_REPORTS} are accepted.")
    for uuid, entry in reports.items():
        if not isinstance(entry, dict):
            raise BadRequest(f"The report of instance {uuid[:64]!r} is not an object.")
        if len(entry) > REPORT_KEYS:
            raise BadRequest(f"The report of instance {uuid[:64]!r} has {len(entry)} keys; "
                             f"at most {REPORT_KEYS} are accepted.")
        error = entry.get("error")
        if error is not None and (not isinstance(error, str)
                                  or len(error) > REPORT_ERROR_CHARS):
            raise BadRequest(f"The error of instance {uuid[:64]!r} must be a string of at "
                             f"most {REPORT_ERROR_CHARS} characters.")
