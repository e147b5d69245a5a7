"""The lean path's check (cluster/liveness.CHECK), in place of a full pass every 30 s: a
flush reads, for the nodes whose check is due, whether anything waits on them
(waiting_among: one statement, waiting()'s answer for each node) and sends such a node's
next beat the full way; a node nothing waits on stays lean past the old 30 s refresh,
until REFRESH. Both engines."""

from __future__ import annotations

import datetime as dt
import time
from types import SimpleNamespace

from sqlalchemy import select

from atwill.controller.cluster import liveness
from atwill.controller.cluster.liveness import (
    CHECK,
    REFRESH,
    Beat,
    Known,
    Liveness,
    waiting,
    waiting_among,
)
from atwill.controller.db.live_migrations import Migration
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeSnapshot, VolumeType

IDS = ["n0", "n1", "n2"]
BODY = SimpleNamespace(inventory=None, instances={}, volumes=None, overlay={}, running_vms=0)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _fleet(db: Database) -> None:
    migrate(db.engine)
    with db.session() as s:
        for index, node_id in enumerate(IDS):
            s.add(Node(id=node_id, name=f"node{index}", state="up", health="up",
                       last_heartbeat=_now(), host_status={}, cert_serial=f"s{index}"))
        vtype = s.scalar(select(VolumeType).limit(1))
        if vtype is None:
            vtype = VolumeType(name="__DEFAULT__")
            s.add(vtype)
            s.flush()
        s.add(Volume(id="v1", node_id="n1", status="available", size=1, project_id="p",
                     user_id="u", volume_type_id=vtype.id))


def test_waiting_among_answers_as_waiting_for_each_node(db: Database) -> None:
    _fleet(db)

    def both() -> tuple[set[str], set[str]]:
        with db.session() as s:
            return waiting_among(s, IDS), {n for n in IDS if waiting(s, n)}

    assert both() == (set(), set())
    with db.session() as s:
        s.get(Volume, "v1").status = "deleting"  # an admin's reset: no revision moves
    assert both() == ({"n1"}, {"n1"})
    with db.session() as s:
        s.get(Volume, "v1").status = "available"
        s.add(VolumeSnapshot(id="s1", volume_id="v1", status="creating", size=1,
                             project_id="p", user_id="u"))
    assert both() == ({"n1"}, {"n1"})
    with db.session() as s:
        s.get(VolumeSnapshot, "s1").status = "available"
        s.add(Instance(id="i1", name="vm", node_id="n0", project_id="p", user_id="u",
                       vcpus=1, memory_mb=64, disk_gb=1, task_state="rebooting"))
    assert both() == ({"n0"}, {"n0"})
    with db.session() as s:
        s.get(Instance, "i1").task_state = None
        s.add(Migration(instance_uuid="i1", source_node_id="n0", dest_node_id="n2",
                        status="running", migration_type="live-migration"))
    assert both() == ({"n0", "n2"}, {"n0", "n2"})
    with db.session() as s:
        s.scalar(select(Migration)).status = "completed"
    assert both() == (set(), set())
    # A compute node's attachment attaching or detaching (VolumeAttachment.node_id is the
    # compute node; v1's Volume.node_id the storage node n1): before, neither saw it.
    with db.session() as s:
        s.add(VolumeAttachment(id="a1", volume_id="v1", project_id="p", node_id="n2",
                               status="attaching"))
    assert both() == ({"n2"}, {"n2"})
    with db.session() as s:
        s.get(VolumeAttachment, "a1").status = "detaching"
    assert both() == ({"n2"}, {"n2"})
    with db.session() as s:
        s.get(VolumeAttachment, "a1").status = "attached"
    assert both() == (set(), set())
    with db.session() as s:
        assert waiting_among(s, []) == set()


def test_a_flush_checks_the_due_nodes_and_a_waited_on_one_goes_full(db: Database) -> None:
    _fleet(db)
    with db.session() as s:  # something waits on n1 and on n2; neither moved a revision
        s.get(Volume, "v1").status = "deleting"
        s.add(Instance(id="i2", name="vm", node_id="n2", project_id="p", user_id="u",
                       vcpus=1, memory_mb=64, disk_gb=1, task_state="rebooting"))
    live = Liveness(db)
    now = time.monotonic()
    for index, node_id in enumerate(IDS):
        due = node_id != "n2"  # n2 was checked (or passed in full) a moment ago
        live._known[node_id] = Known(b"c", f"s{index}", "", b"", 0, 0, True, now,
                                     checked_at=now - CHECK - 1 if due else now)
    later = _now() + dt.timedelta(seconds=0.5)
    live._buffer = {node_id: Beat(later, b"c", {}, {"uptime_s": 9}, 0) for node_id in IDS}
    assert live.flush() == 3
    known = live._known
    assert not known["n0"].waiting and known["n0"].checked_at >= now  # checked: nothing
    assert known["n1"].waiting  # checked: its next beat goes the full way
    assert not known["n2"].waiting and known["n2"].checked_at == now  # not due yet
    assert all(k.healthy for k in known.values())


def test_a_full_pass_refreshes_the_check_and_a_new_nodes_is_spread() -> None:
    live = Liveness(db=None)
    seen = liveness.Seen("s", "", True, 5, liveness.digest({}, None))
    before = time.monotonic()
    for index in range(100):
        live.full(f"n{index}", b"c", seen, live.token(f"n{index}"))
    checks = [before - k.checked_at for k in live._known.values()]
    assert all(-1 < age <= liveness.SPREAD * CHECK + 1 for age in checks)
    assert max(checks) - min(checks) > liveness.SPREAD * CHECK / 4
    again = time.monotonic()
    live.full("n0", b"c", seen, live.token("n0"))  # known: checked now
    assert live._known["n0"].checked_at >= again


def _lean_after(full_ago: float) -> bool:
    live = Liveness(db=None)
    now = time.monotonic()
    live._known["n0"] = Known(b"c", "s0", "", liveness.digest({}, None), 0, 0, True,
                              now - full_ago, checked_at=now)
    try:
        return live.lean("n0", b"c", "", BODY, {}) is not None
    finally:
        live.stop()


def test_a_node_nothing_waits_on_stays_lean_past_30_s_until_refresh() -> None:
    assert REFRESH > 30
    assert _lean_after(31.0)  # before: a full pass every 30 s (67 a second at 2,000 nodes)
    assert not _lean_after(REFRESH + 1)  # the belt: a full pass now and then still


def test_an_idle_beats_digest_is_the_one_computed() -> None:
    for instances in (None, {}):
        for volumes in (None, {}):
            assert liveness.digest(instances, volumes) == liveness._digest(instances, volumes)
    assert len({liveness.digest(i, v) for i in (None, {}) for v in (None, {})}) == 4
    busy = {"i1": {"state": "running", "metrics": {"cpu": 1}}}
    assert liveness.digest(busy, None) == liveness._digest(busy, None) \
        != liveness.digest({}, None)
