"""Cold migration and resize rules (core/resize_states.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from atwill.core import resize_states as rs
from atwill.core.errors import BadRequest, Forbidden
from atwill.core.microversion import Version

SMALL = {"id": "1", "vcpus": 1, "ram": 256, "disk": 1}
BIG = {"id": "2", "vcpus": 2, "ram": 512, "disk": 2}


def test_resize_body() -> None:
    assert rs.parse_resize({"flavorRef": "2"}).flavor_ref == "2"
    assert rs.parse_resize({"flavorRef": 7, "OS-DCF:diskConfig": "MANUAL"}).flavor_ref == "7"
    for bad in (None, [], {}, {"flavorRef": ""}, {"flavorRef": "2", "x": 1},
                {"flavorRef": "2", "OS-DCF:diskConfig": "SOME"}, {"flavorRef": True}):
        with pytest.raises(BadRequest):
            rs.parse_resize(bad)


def test_migrate_body_per_microversion() -> None:
    assert rs.parse_migrate(None, Version(2, 1)).host is None
    assert rs.parse_migrate({"host": "n2"}, Version(2, 56)).host == "n2"
    assert rs.parse_migrate({}, Version(2, 56)).host is None
    for bad, version in (({"host": "n2"}, Version(2, 55)), ({"x": 1}, Version(2, 56)),
                         ({"host": ""}, Version(2, 56)), ("n2", Version(2, 56))):
        with pytest.raises(BadRequest):
            rs.parse_migrate(bad, version)


def test_flavor_refusals() -> None:
    rs.check_flavors(SMALL, BIG)
    rs.check_flavors({**SMALL, "disk": 0}, BIG)  # from the image's size: allowed
    with pytest.raises(BadRequest, match="zero disk flavor"):
        rs.check_flavors(BIG, {**BIG, "id": "3", "disk": 0})
    with pytest.raises(BadRequest, match="must change flavor"):
        rs.check_flavors(SMALL, dict(SMALL))
    with pytest.raises(BadRequest, match="Unable to resize disk down"):
        rs.check_flavors(BIG, SMALL)


def test_upsize_quota() -> None:
    assert rs.upsize(SMALL, BIG) == {"cores": 1, "ram": 256}
    assert rs.upsize(BIG, SMALL) == {"cores": 0, "ram": 0}
    limits = {"cores": 4, "ram": -1}
    rs.check_upsize({"cores": 1, "ram": 10**6}, limits, {"cores": 3, "ram": 10**9})
    with pytest.raises(Forbidden, match="Quota exceeded for cores: Requested 2, but already "
                       "used 3 of 4 cores"):
        rs.check_upsize({"cores": 2, "ram": 0}, limits, {"cores": 3, "ram": 0})


def test_auto_confirm_window() -> None:
    now = dt.datetime(2026, 1, 1, 12)
    done = now - dt.timedelta(seconds=30)
    assert rs.confirm_due(done, now, 30) and not rs.confirm_due(done, now, 31)
    assert not rs.confirm_due(done, now, 0) and not rs.confirm_due(None, now, 1)
    assert rs.settled_vm_state("stopped") == "stopped"
    assert rs.settled_vm_state("running") == "active"


def test_null_bodies() -> None:
    rs.check_null_body("confirmResize", None)
    with pytest.raises(BadRequest):
        rs.check_null_body("revertResize", {})
