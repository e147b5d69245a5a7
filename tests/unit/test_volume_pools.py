"""Cinder's back-end pools from storage nodes' inventories (core/volume_pools.py)."""

from __future__ import annotations

import pytest

from atwill.core import volume_pools
from atwill.core.errors import BadRequest

FILES = {"path": "/srv/volumes", "total_gb": 100, "free_gb": 60, "formats": ["qcow2"]}
LVM = {"path": "/var/lib/atwill-node/storage", "backend": "lvm", "volume_group": "vg0",
       "thin_pool": "thin", "total_gb": 500, "free_gb": 420, "formats": ["raw"]}


def test_a_pool_without_detail_is_its_name() -> None:
    assert volume_pools.pool("stor1", FILES, 5, 2, None, True, False) == {
        "name": "stor1@atwill#atwill"}


def test_a_pool_reports_its_backend_and_capacity() -> None:
    files = volume_pools.pool("stor1", FILES, 5, 2, "2026-12-07T00:00:00.000000", True, True)
    caps = files["capabilities"]
    assert (caps["total_capacity_gb"], caps["free_capacity_gb"],
            caps["allocated_capacity_gb"], caps["total_volumes"]) == (100, 60, 5, 2)
    assert caps["atwill:backend"] == "file"  # a node that does not say is a file node
    assert caps["location_info"] == "atwill:file:/srv/volumes"
    assert caps["backend_state"] == "up" and caps["storage_protocol"] == "nbd"
    lvm = volume_pools.pool("stor2", LVM, 0, 0, None, False, True)["capabilities"]
    assert (lvm["atwill:backend"], lvm["total_capacity_gb"], lvm["free_capacity_gb"]) == (
        "lvm", 500, 420)
    assert lvm["location_info"] == "atwill:lvm:vg0/thin" and lvm["backend_state"] == "down"


def test_nonsense_in_an_inventory_reports_nothing() -> None:
    odd = {"backend": "zfs", "total_gb": True, "free_gb": -3}
    caps = volume_pools.pool("n", odd, 0, 0, None, True, True)["capabilities"]
    assert (caps["atwill:backend"], caps["total_capacity_gb"], caps["free_capacity_gb"]) == (
        "file", 0, 0)


def test_detail_is_a_boolean_or_a_400() -> None:
    assert volume_pools.detail(None) is False
    assert volume_pools.detail("True") is True and volume_pools.detail("0") is False
    with pytest.raises(BadRequest, match="Value 'maybe' for 'detail' is not a boolean."):
        volume_pools.detail("maybe")
