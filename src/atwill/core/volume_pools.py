"""Cinder's back-end storage pools (GET /v3/scheduler-stats/get_pools) from storage nodes'
inventories: one pool per storage node, named as volumes' os-vol-host-attr:host is
(node@atwill#atwill), its capacity as the node reports it for its backend (a storage
path's file system, or an LVM thin pool: core/lvm.capacity)."""

from __future__ import annotations

from typing import Any

from atwill.core.errors import BadRequest

BACKEND_NAME = "atwill"
BACKENDS = ("file", "lvm")
_TRUE, _FALSE = ("1", "t", "true", "on", "y", "yes"), ("0", "f", "false", "off", "n", "no")


def detail(value: str | None) -> bool:
    """?detail= as Cinder reads it (oslo's boolean strings); BadRequest otherwise."""
    if value is None:
        return False
    if value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise BadRequest(f"Value '{value}' for 'detail' is not a boolean.")


def pool_name(node_name: str) -> str:
    return f"{node_name}@{BACKEND_NAME}#{BACKEND_NAME}"


def backend(storage: dict[str, Any]) -> str:
    """The node's backend, 'file' when it does not say (nodes before the LVM backend)."""
    value = storage.get("backend")
    return value if value in BACKENDS else "file"


def _gb(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and value >= 0 else 0


def pool(node_name: str, storage: dict[str, Any], allocated_gb: int, volumes: int,
         updated: str | None, up: bool, detail: bool) -> dict[str, Any]:
    """One pool as Cinder lists it; with detail, its capabilities."""
    body: dict[str, Any] = {"name": pool_name(node_name)}
    if not detail:
        return body
    kind = backend(storage)
    location = (f"atwill:lvm:{storage.get('volume_group')}/{storage.get('thin_pool')}"
                if kind == "lvm" else f"atwill:file:{storage.get('path')}")
    body["capabilities"] = {
        "updated": updated, "volume_backend_name": BACKEND_NAME, "pool_name": BACKEND_NAME,
        "vendor_name": "atwill", "driver_version": "1.0.0", "storage_protocol": "nbd",
        "total_capacity_gb": _gb(storage.get("total_gb")),
        "free_capacity_gb": _gb(storage.get("free_gb")),
        "allocated_capacity_gb": allocated_gb, "provisioned_capacity_gb": allocated_gb,
        "reserved_percentage": 0, "max_over_subscription_ratio": "1.0",
        "thin_provisioning_support": True, "thick_provisioning_support": False,
        "total_volumes": volumes, "QoS_support": False, "multiattach": False,
        "backend_state": "up" if up else "down", "location_info": location,
        "filter_function": None, "goodness_function": None,
        # Which backend holds this node's volumes: sparse qcow2 files or LVM thin LVs.
        "atwill:backend": kind,
    }
    return body
