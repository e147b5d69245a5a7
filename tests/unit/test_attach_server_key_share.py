"""The server an attach names is locked FOR KEY SHARE, after its ownership check, on
PostgreSQL (volume/lock_order.py: server -> volume -> attachment).

POST /v3/attachments held the server FOR SHARE, which waits for any UPDATE of the row: a
node's report updating a multiattach volume and then the server deadlocked with a reserve
of the two. It locked the row before checking whose it was. Nova's os-volume_attachments
attach read the server unlocked: one whose delete committed meanwhile got the volume.
"""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select, text, update

from atwill.controller.compute import server_volumes, servers
from atwill.controller.db.base import utcnow
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.controller.volume import attachments
from atwill.core.errors import NotFound
from atwill.core.microversion import Version
from atwill.core.policy import Credentials
from tests.unit.test_create_steps import _creds, _record, cloud  # noqa: F401
from tests.unit.test_server_delete_volume_lock_order import (
    WAIT,
    _postgres,
    _run,
    _until_waiting_or_done,
    _volume,
)


def _request(db: Database) -> SimpleNamespace:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        ctl=SimpleNamespace(db=db))), scope={"state": {"request_id": "req-attach"}})


def _reserve(db: Database, vid: str, server_id: str, creds: Credentials) -> None:
    attachments.attachment_post(
        _request(db), body={"attachment": {"volume_uuid": vid, "instance_uuid": server_id}},
        creds=creds, version=Version(3, 27))  # type: ignore[arg-type]


def test_reserve_and_a_node_report_updating_volume_then_server_do_not_deadlock(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "multi", None)
    with cloud.session() as session:
        session.execute(update(Volume).where(Volume.id == "multi").values(multiattach=True))
    thread_errors: list[BaseException] = []
    report_errors: list[BaseException] = []
    # A node's report: the multiattach volume in use first (server_volumes_state.report)...
    with cloud.session() as session:
        session.execute(update(Volume).where(Volume.id == "multi").values(status="in-use"))
        thread, thread_errors = _run(lambda: _reserve(cloud, "multi", server_id, _creds()))
        _until_waiting_or_done(cloud, thread)
        try:
            # ...then the server's row (lifecycle.report): it waited for the reserve's
            # FOR SHARE, which waited for the volume (PostgreSQL's deadlock error).
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
            session.execute(update(Instance).where(Instance.id == server_id)
                            .values(updated_at=utcnow()))
        except Exception as exc:  # noqa: BLE001 - asserted below
            report_errors.append(exc)
            session.rollback()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert report_errors == [] and thread_errors == []
    with cloud.session() as session:
        assert [a.instance_id for a in session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == "multi"))] == [server_id]


def test_reserve_naming_another_projects_server_does_not_lock_it(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "free", None)
    other = Credentials(user_id="x", project_id="other", roles=frozenset({"member"}))
    with cloud.session() as session:
        # The server's row held (its delete, say): a stranger's reserve naming it was
        # queued behind it, its lock then held against the owner's work.
        session.execute(select(Instance.id).where(Instance.id == server_id)
                        .with_for_update())
        thread, errors = _run(lambda: _reserve(cloud, "free", server_id, other))
        thread.join(3.0)
        waited = thread.is_alive()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert not waited
    assert len(errors) == 1 and isinstance(errors[0], NotFound), errors


def test_nova_attach_while_the_servers_delete_commits_is_refused(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "free", None)
    with cloud.session() as session:
        node_id = session.scalar(select(Node.id).where(Node.name == "node-a"))
        session.execute(update(Instance).where(Instance.id == server_id).values(
            node_id=node_id, vm_state="active", task_state=None))

    def attach() -> None:
        server_volumes.volume_attachments_post(
            server_id, _request(cloud),  # type: ignore[arg-type]
            body={"volumeAttachment": {"volumeId": "free"}}, creds=_creds(),
            version=Version(2, 1))

    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        servers.delete(session, inst, "req-delete", _creds())
        session.flush()
        thread, errors = _run(attach)
        _until_waiting_or_done(cloud, thread)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotFound), errors
    with cloud.session() as session:
        assert list(session.scalars(select(VolumeAttachment.id).where(
            VolumeAttachment.instance_id == server_id))) == []
        vol = session.get(Volume, "free")
        assert vol is not None and vol.status == "available"


def test_server_delete_locks_its_volumes_before_its_compute_node_row(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "held", server_id)
    with cloud.session() as session:
        node_id = session.scalar(select(Node.id).where(Node.name == "node-a"))
        session.execute(update(Node).where(Node.id == node_id).values(
            vcpus_used=1, memory_mb_used=1024, local_gb_used=1))
        session.execute(update(Instance).where(Instance.id == server_id).values(
            node_id=node_id, vm_state="active", task_state=None))

    def delete() -> None:
        with cloud.session() as session:
            inst = session.get(Instance, server_id)
            assert inst is not None
            servers.delete(session, inst, "req-delete", _creds())

    with cloud.session() as session:
        # A boot's order (volume/lock_order.py): its volumes first...
        session.execute(select(Volume.id).where(Volume.id == "held").with_for_update())
        thread, errors = _run(delete)
        _until_waiting_or_done(cloud, thread)
        # ...then the compute node's row: the delete, waiting for the volume, does not
        # hold it (placement.release had updated it first: the two deadlocked).
        session.execute(text("SET LOCAL lock_timeout = '2s'"))
        session.execute(select(Node.id).where(Node.id == node_id).with_for_update())
    thread.join(WAIT)
    assert not thread.is_alive() and errors == []
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.deleted and inst.node_id is None
        assert session.get(VolumeAttachment, "att-held") is None
