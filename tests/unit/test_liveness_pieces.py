"""The lean heartbeat path's database pieces on both engines: the HA monitor's one-query
"every node heard" check (ha/monitor._all_heard) and the batched flush
(cluster/liveness.py) — never over a noticed or down node, never backwards."""

from __future__ import annotations

import datetime as dt

from atwill.controller.cluster.liveness import Beat, Known, Liveness
from atwill.controller.db.models import Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.ha.monitor import _all_heard
from atwill.core import ha_health, restart_notice

LIMITS = ha_health.Thresholds()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _nodes(db: Database, **changes: object) -> None:
    migrate(db.engine)
    now = _now()
    with db.session() as s:
        for index in range(3):
            s.add(Node(id=f"n{index}", name=f"node{index}", state="up", health="up",
                       last_heartbeat=now, host_status={"uptime_s": 1}, cert_serial=f"s{index}"))
        s.flush()
        node = s.get(Node, "n1")
        for key, value in changes.items():
            setattr(node, key, value)


def _heard(db: Database) -> bool:
    with db.session() as s:
        return _all_heard(s, _now(), _now() - dt.timedelta(seconds=60), LIMITS)


def test_all_heard_only_when_every_node_is_up_healthy_unnoticed_and_recent(db) -> None:  # noqa: ANN001
    _nodes(db)
    assert _heard(db)
    with db.session() as s:
        s.get(Node, "n1").last_heartbeat = _now() - dt.timedelta(seconds=2)
    assert not _heard(db)


def test_a_notice_or_a_health_not_up_is_not_all_heard(db) -> None:  # noqa: ANN001
    _nodes(db, host_status={restart_notice.KEY: {"until": "2099-01-01T00:00:00"}})
    assert not _heard(db)
    with db.session() as s:
        s.get(Node, "n1").host_status = {"uptime_s": 2}
        s.get(Node, "n2").health = ha_health.SUSPECT
    assert not _heard(db)
    with db.session() as s:
        s.get(Node, "n2").health = ha_health.UP
    assert _heard(db)


def test_the_flush_writes_healthy_nodes_only_and_never_backwards(db) -> None:  # noqa: ANN001
    _nodes(db, host_status={restart_notice.KEY: {"until": "2099-01-01T00:00:00"}})
    live = Liveness(db)
    later = _now() + dt.timedelta(seconds=0.5)
    for node_id in ("n0", "n1", "n2"):
        live._known[node_id] = Known(b"c", f"s{node_id[1]}", "", b"", 1, 1, True, 0.0)
    with db.session() as s:
        old = s.get(Node, "n2").last_heartbeat
    live._buffer = {
        "n0": Beat(later, b"c", {"ok": 1}, {"uptime_s": 9}, 2),
        "n1": Beat(later, b"c", {}, {"uptime_s": 9}, 0),  # noticed: kept as it is
        "n2": Beat(old - dt.timedelta(seconds=1), b"c", {}, {"uptime_s": 9}, 0)}  # older
    assert live.flush() == 1
    with db.session() as s:
        n0, n1, n2 = (s.get(Node, f"n{i}") for i in range(3))
        assert n0.last_heartbeat == later and n0.host_status == {"uptime_s": 9}
        assert n0.overlay_status == {"ok": 1} and n0.running_vms == 2
        assert restart_notice.KEY in n1.host_status and n1.last_heartbeat < later
        assert n2.last_heartbeat == old
    assert live._known["n0"].healthy and not live._known["n1"].healthy
    assert not live._known["n2"].healthy  # its next beat goes the full way
