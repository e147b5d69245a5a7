"""Pure volume helpers: Cinder's quota checks, storage placement, microversions."""

from __future__ import annotations

import pytest

from atwill.core import volume_microversion, volume_quotas
from atwill.core.errors import BadRequest, NotAcceptable, PayloadTooLarge
from atwill.core.volume_placement import Backend, free_gb, pick, storage_of


def test_quota_names_include_per_type_resources() -> None:
    names = volume_quotas.names(["__DEFAULT__"])
    assert names[:7] == list(volume_quotas.DEFAULTS)
    assert {"volumes___DEFAULT__", "gigabytes___DEFAULT__", "snapshots___DEFAULT__"} <= set(
        names)


def test_quota_check_messages_as_cinder() -> None:
    limits = {"volumes": 2, "gigabytes": 10, "snapshots": 1, "per_volume_gigabytes": 5}
    volume_quotas.check(limits, {"volumes": 1, "gigabytes": 9}, {"volumes": 1, "gigabytes": 1})
    with pytest.raises(PayloadTooLarge, match=r"allowed gigabytes quota. Requested 2G, quota "
                       r"is 10G and 9G has been consumed"):
        volume_quotas.check(limits, {"gigabytes": 9}, {"gigabytes": 2})
    with pytest.raises(PayloadTooLarge, match=r"Maximum number of snapshots allowed \(1\)"):
        volume_quotas.check(limits, {"snapshots": 1}, {"snapshots": 1})
    with pytest.raises(PayloadTooLarge, match="larger than maximum allowed limit 5G"):
        volume_quotas.check_size(6, limits)
    volume_quotas.check({"volumes": -1}, {"volumes": 10**6}, {"volumes": 1})


def test_quota_values_parsed() -> None:
    assert volume_quotas.parse_limit("volumes", "5") == 5
    assert volume_quotas.parse_limit("volumes", -1) == -1
    for bad in (-2, True, "x", 1.5, 2**31):
        with pytest.raises(BadRequest):
            volume_quotas.parse_limit("volumes", bad)


def test_pick_the_backend_with_most_room_that_fits() -> None:
    backends = [Backend("a", "a", 10, 8), Backend("b", "b", 20, 5), Backend("c", "c", 4, 0)]
    assert pick(backends, 3).node_id == "b"
    assert pick(backends, 15).node_id == "b"
    assert pick(backends, 16) is None
    assert pick([], 1) is None


def test_storage_inventory() -> None:
    assert storage_of({"vcpus": 2}) is None and free_gb(None) == 0
    assert free_gb({"storage": {"free_gb": 7}}) == 7
    assert free_gb({"storage": {"free_gb": True}}) == 0


def test_volume_microversions() -> None:
    assert str(volume_microversion.requested({})) == "3.0"
    assert str(volume_microversion.requested({"openstack-api-version": "volume 3.44"})) == "3.44"
    assert str(volume_microversion.requested(
        {"openstack-api-version": "compute 2.5, volume latest"})) == "3.70"
    with pytest.raises(NotAcceptable):
        volume_microversion.requested({"openstack-api-version": "volume 3.71"})
    with pytest.raises(BadRequest):
        volume_microversion.requested({"openstack-api-version": "volume x"})
