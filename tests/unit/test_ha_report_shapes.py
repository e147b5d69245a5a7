"""A node's peer report of any shape never raises in the HA monitor's loop (review of
the peers' rules: a `peers` that is not a mapping, or a `peers_never_heard` that is not a
list, made every pass raise while that node was fresh: no node judged down anywhere)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from atwill.controller.ha import lease, monitor
from atwill.core import peer_view

NOW = dt.datetime(2026, 12, 7, 18, 0, 0)
BAD = [5, "x", [[1]], ["a", 2], {"n1": "soon"}, {"n1": float("nan")}, {"n1": 10**400},
       {"n1": True}, {3: 1.0}, None]


def _node(node_id: str, status: dict) -> SimpleNamespace:
    return SimpleNamespace(id=node_id, state="up", last_heartbeat=NOW, host_status=status)


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_a_malformed_report_is_kept_out_when_stored(bad: object) -> None:
    stored = lease.host_report({"uptime_s": 5, "peers": bad,
                                peer_view.NEVER_HEARD_KEY: bad}, None)
    assert "peers" not in stored and stored[lease.HEARD_KEY] is True
    assert stored[peer_view.NEVER_HEARD_KEY] == peer_view.never_heard(bad)
    assert all(isinstance(p, str) for p in stored[peer_view.NEVER_HEARD_KEY])
    assert lease.host_report({}, {"n1": 1.5, "n2": float("inf")})["peers"] == {"n1": 1.5}


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_a_malformed_stored_report_is_read_as_nothing(bad: object,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows written before the check (or by hand) are read through the same shape."""
    monkeypatch.setattr(monitor, "_grace", lambda: dt.timedelta(0))
    good = _node("n2", {"peers": {"n1": 4.0}})
    odd = _node("n3", {"peers": bad, peer_view.NEVER_HEARD_KEY: bad})
    reports = monitor._peer_reports([good, odd], NOW)
    assert reports["n1"]["n2"] == (4.0, 0.0)
    assert "n3" not in reports.get("n1", {})
    target = _node("n1", {"peers": bad})
    assert lease.verdict(target, [good, odd], NOW, 1.0) in (
        peer_view.DEAD, peer_view.PARTITIONED, peer_view.UNKNOWN)


def test_a_sign_just_after_the_report_reads_as_now() -> None:
    """The agent's age of a sign that came a moment after it stamped its report is a
    little negative: heard now (dropping it turned a vouching peer into a silent one)."""
    assert peer_view.reported_ages({"n1": -0.01, "n2": 0, "n3": 2}) == \
        {"n1": 0.0, "n2": 0.0, "n3": 2.0}


@pytest.mark.parametrize("told", [10**400, float("inf"), float("nan"), "6", True, -1])
def test_a_lease_figure_that_is_no_finite_number_is_not_kept(told: object) -> None:
    """Review: a 400-digit ha_lease (JSON keeps any integer) made lease_of raise at every
    pass of the leader's loop once its node was a candidate for fencing by lease."""
    stored = lease.host_report({lease.LEASE_KEY: told}, None)
    assert lease.LEASE_KEY not in stored
    ctl = SimpleNamespace(settings=SimpleNamespace(ha_lease=6.0))
    node = _node("n1", {lease.LEASE_KEY: told})
    assert lease.lease_of(ctl, node) == 6.0  # a row stored before: read as none
    assert lease.host_report({lease.LEASE_KEY: 9}, None)[lease.LEASE_KEY] == 9.0
