"""The lean heartbeat path answers only beats whose full pass would change nothing
(cluster/liveness.py): a bump of the node's revision notified here makes the node stale
until its next full pass (also when it raced that pass), and a node with something
waiting on its reports (waiting()) is never lean. waiting() on both engines."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from atwill.controller import revision_signal
from atwill.controller.cluster import liveness
from atwill.controller.cluster.liveness import Liveness, Seen, waiting
from atwill.controller.db.live_migrations import Migration
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.db.volume import Volume, VolumeSnapshot, VolumeType

CERT = b"cert"
BODY = SimpleNamespace(inventory=None, instances={}, volumes={}, overlay={}, running_vms=0)
DIGEST = liveness.digest({}, {})


def _seen(revision: int = 5, waits: bool = False) -> Seen:
    return Seen("serial", "10.0.0.1", True, revision, DIGEST, waits)


def _lean(live: Liveness, node: str = "n1") -> bool:
    return live.lean(node, CERT, "", BODY, {}) is not None


def test_a_bump_notified_sends_the_next_beat_the_full_way() -> None:
    live = Liveness(db=None)
    try:
        live.full("n1", CERT, _seen(), live.token("n1"))
        live.full("n2", CERT, _seen(), live.token("n2"))
        assert _lean(live) and _lean(live, "n2")
        live.moved({"n1"})  # n1's revision moved: its same report may now mean something
        assert not _lean(live) and _lean(live, "n2")
        live.full("n1", CERT, _seen(6), live.token("n1"))  # its full pass: lean again
        assert _lean(live)
        live.moved(None)  # every node's
        assert not _lean(live) and not _lean(live, "n2")
    finally:
        live.stop()


def test_a_bump_that_raced_the_full_pass_leaves_the_node_stale() -> None:
    live = Liveness(db=None)
    try:
        token = live.token("n1")  # the full pass starts, reads revision 5 ...
        live.moved({"n1"})  # ... a bump commits meanwhile ...
        live.full("n1", CERT, _seen(5), token)  # ... and the pass ends: not trusted
        assert not _lean(live)
        token = live.token("n1")
        live.moved(None)
        live.full("n1", CERT, _seen(5), token)
        assert not _lean(live)
    finally:
        live.stop()


def test_a_node_waited_on_is_never_lean() -> None:
    live = Liveness(db=None)
    try:
        live.full("n1", CERT, _seen(waits=True), live.token("n1"))
        assert not _lean(live)
    finally:
        live.stop()


def test_the_revision_signal_reaches_every_liveness_of_the_process() -> None:
    db = type("Db", (), {})()  # any key: no database is read here
    live = liveness.of(db)
    live.full("n9", CERT, _seen(), live.token("n9"))
    assert _lean(live, "n9")
    revision_signal.changed.notify({"n9"})
    assert not _lean(live, "n9")
    live.stop()


def test_waiting_reads_volumes_snapshots_servers_and_live_migrations(db: Database) -> None:
    migrate(db.engine)
    with db.session() as s:
        s.add(Node(id="n1", name="node1", state="up", health="up"))
        vtype = s.scalar(select(VolumeType).limit(1))
        if vtype is None:
            vtype = VolumeType(name="__DEFAULT__")
            s.add(vtype)
            s.flush()
        s.add(Volume(id="v1", node_id="n1", status="available", size=1, project_id="p",
                     user_id="u", volume_type_id=vtype.id))
    checks = [
        (Volume, "v1", "status", "deleting", "available"),
        (Volume, "v1", "status", "creating", "in-use"),
    ]

    def waits() -> bool:
        with db.session() as s:
            return waiting(s, "n1")

    assert not waits()
    for model, ident, column, busy, settled in checks:
        with db.session() as s:
            setattr(s.get(model, ident), column, busy)
        assert waits(), busy
        with db.session() as s:
            setattr(s.get(model, ident), column, settled)
        assert not waits(), settled
    with db.session() as s:
        s.add(VolumeSnapshot(id="s1", volume_id="v1", status="creating", size=1,
                             project_id="p", user_id="u"))
    assert waits()
    with db.session() as s:
        s.get(VolumeSnapshot, "s1").status = "available"
        s.add(Instance(id="i1", name="vm", node_id="n1", project_id="p", user_id="u",
                       vcpus=1, memory_mb=64, disk_gb=1, task_state="rebooting"))
    assert waits()
    with db.session() as s:
        s.get(Instance, "i1").task_state = None
        s.add(Migration(instance_uuid="i1", source_node_id="n1", dest_node_id="n2",
                        status="running", migration_type="live-migration"))
    assert waits()
    with db.session() as s:
        s.scalar(select(Migration)).status = "completed"
    assert not waits()
