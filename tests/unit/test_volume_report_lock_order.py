"""A node's report against a server's attach and delete, on PostgreSQL: the order is
server -> volume -> attachment (volume/lock_order.py) for them all.

A storage node's report that a boot volume failed to be made updated the volume's row,
then the row of the server booting from it (fail_boots_on: the server to ERROR); the
server's delete holds its row FOR UPDATE, then locks its volumes: the two at once
deadlocked. Nova's attach and detach hold the server FOR KEY SHARE and never write its
row, so a compute node's report that updates the server and then the volume does not
wait on them for ever (pinned here: a write of the server after the volume would).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, text, update

from atwill.controller.compute import server_volumes, server_volumes_state, servers
from atwill.controller.db.base import utcnow
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.controller.volume.report import storage_report
from atwill.core.errors import NotFound
from atwill.core.microversion import Version
from tests.unit.test_attach_server_key_share import _request
from tests.unit.test_create_steps import _creds, _record, cloud  # noqa: F401
from tests.unit.test_server_delete_volume_lock_order import (
    WAIT,
    _postgres,
    _run,
    _until_waiting_or_done,
    _volume,
)


def _placed(db: Database, server_id: str, vm_state: str, task_state: str | None) -> str:
    with db.session() as session:
        node_id = session.scalar(select(Node.id).where(Node.name == "node-a"))
        assert node_id is not None
        session.execute(update(Instance).where(Instance.id == server_id).values(
            node_id=node_id, node_name="node-a", vm_state=vm_state, task_state=task_state))
        return node_id


def _booting_from(db: Database, server_id: str, node_id: str) -> None:
    """The server's boot volume, still being made on node-a (its storage node too)."""
    _volume(db, "boot", server_id)
    with db.session() as session:
        session.execute(update(Volume).where(Volume.id == "boot").values(
            status="creating", node_id=node_id, node_name="node-a"))
        session.execute(update(VolumeAttachment).where(VolumeAttachment.id == "att-boot")
                        .values(status="attaching", boot_index=0, node_id=node_id,
                                node_name="node-a", device="/dev/vda"))


def _delete_while(db: Database, server_id: str, report: Callable[[], None]) -> None:
    """The server's delete with report run in another transaction once the delete holds
    the server's row (its first lock, server_volumes_state.lock_for_delete); then its
    volumes: a report that held a volume and waited for the server deadlocked with it
    (PostgreSQL's deadlock error, one of the two rolled back). Neither may fail."""
    delete_errors: list[BaseException] = []
    with db.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        session.execute(select(Instance.id).where(Instance.id == server_id)
                        .with_for_update())
        thread, errors = _run(report)
        _until_waiting_or_done(db, thread)
        try:
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
            servers.delete(session, inst, "req-delete", _creds())
            session.flush()
        except Exception as exc:  # noqa: BLE001 - asserted below
            delete_errors.append(exc)
            session.rollback()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert delete_errors == [] and errors == []


def test_a_failed_boot_volumes_report_and_the_servers_delete_do_not_deadlock(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "building", "block_device_mapping")
    _booting_from(cloud, server_id, node_id)

    def report() -> None:
        with cloud.session() as session:
            node = session.get(Node, node_id)
            assert node is not None
            storage_report(session, node, {"boot": {"state": "error", "error": "no room"}})

    _delete_while(cloud, server_id, report)
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.deleted and inst.vm_state == "deleted"
        assert session.get(VolumeAttachment, "att-boot") is None
        vol = session.get(Volume, "boot")
        # The report, read again after the delete, still says the volume was not made.
        assert vol is not None and vol.status == "error" and vol.error == "no room"


def test_an_export_error_failing_a_boot_and_the_servers_delete_do_not_deadlock(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "building", "block_device_mapping")
    _booting_from(cloud, server_id, node_id)
    with cloud.session() as session:  # made, not exported to the server's node yet
        session.execute(update(Volume).where(Volume.id == "boot").values(status="attaching"))

    def report() -> None:
        with cloud.session() as session:
            node = session.get(Node, node_id)
            assert node is not None
            # Its exports changed (the volume's row written), then the failed export
            # fails the build (attach_outcomes.export_errors: the server's row).
            storage_report(session, node, {"boot": {
                "state": "available", "exports": {"elsewhere": {"host": "h", "port": 1}},
                "export_errors": {node_id: "no route"}}})

    _delete_while(cloud, server_id, report)
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.deleted and inst.vm_state == "deleted"
        vol = session.get(Volume, "boot")
        assert vol is not None and vol.status == "available"
        assert vol.exports == {"elsewhere": {"host": "h", "port": 1}}


def test_a_failed_boot_volumes_report_still_fails_its_server(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "building", "block_device_mapping")
    _booting_from(cloud, server_id, node_id)
    with cloud.session() as session:
        node = session.get(Node, node_id)
        assert node is not None
        assert storage_report(session, node, {"boot": {"state": "error", "error": "x"}})
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.vm_state == "error" and not inst.deleted
        vol = session.get(Volume, "boot")
        assert vol is not None and vol.status == "error"


def test_a_deleted_servers_boot_volume_still_being_made_is_settled_by_its_report(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "building", "block_device_mapping")
    _booting_from(cloud, server_id, node_id)
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None
        servers.delete(session, inst, "req-delete", _creds())
    with cloud.session() as session:
        vol = session.get(Volume, "boot")
        # Not made yet: it was made "available", and the report of its failure ignored.
        assert vol is not None and vol.status == "creating"
        node = session.get(Node, node_id)
        assert node is not None
        assert storage_report(session, node, {"boot": {"state": "error", "error": "x"}})
    with cloud.session() as session:
        vol = session.get(Volume, "boot")
        assert vol is not None and vol.status == "error"


def _report_holding_the_server_then(db: Database, server_id: str, change: object,
                                    volume_status: str) -> list[BaseException]:
    """A compute node's report (lifecycle.report, then server_volumes_state.report): the
    server's row updated, then its volume's, while `change` runs in another thread."""
    report_errors: list[BaseException] = []
    with db.session() as session:
        session.execute(update(Instance).where(Instance.id == server_id)
                        .values(updated_at=utcnow()))
        thread, errors = _run(change)
        _until_waiting_or_done(db, thread)
        try:
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
            session.execute(update(Volume).where(Volume.id == "v")
                            .values(status=volume_status))
        except Exception as exc:  # noqa: BLE001 - asserted by the caller
            report_errors.append(exc)
            session.rollback()
    thread.join(WAIT)
    assert not thread.is_alive()
    return report_errors + errors


def test_nova_attach_does_not_wait_for_a_report_holding_the_server(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _placed(cloud, server_id, "active", None)
    _volume(cloud, "v", None)

    def attach() -> None:
        server_volumes.volume_attachments_post(
            server_id, _request(cloud),  # type: ignore[arg-type]
            body={"volumeAttachment": {"volumeId": "v"}}, creds=_creds(),
            version=Version(2, 1))

    assert _report_holding_the_server_then(cloud, server_id, attach, "attaching") == []
    with cloud.session() as session:
        assert [a.instance_id for a in session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.volume_id == "v"))] == [server_id]


def test_nova_detach_does_not_wait_for_a_report_holding_the_server(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _placed(cloud, server_id, "active", None)
    _volume(cloud, "v", server_id)
    with cloud.session() as session:
        session.execute(update(VolumeAttachment).where(VolumeAttachment.id == "att-v")
                        .values(status="attached", device="/dev/vdb"))
        session.execute(update(Volume).where(Volume.id == "v").values(status="in-use"))

    def detach() -> None:
        server_volumes.volume_attachment_delete(
            server_id, "v", _request(cloud), creds=_creds())  # type: ignore[arg-type]

    assert _report_holding_the_server_then(cloud, server_id, detach, "detaching") == []
    with cloud.session() as session:
        att = session.get(VolumeAttachment, "att-v")
        assert att is not None and att.status == "detaching"


def test_a_detach_committed_while_the_nodes_report_of_the_attach_runs_is_kept(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "active", None)
    _volume(cloud, "v", server_id)
    with cloud.session() as session:
        session.execute(update(Volume).where(Volume.id == "v").values(
            status="attaching", node_id=node_id, node_name="node-a",
            exports={node_id: {"host": "h", "port": 1}}))
        session.execute(update(VolumeAttachment).where(VolumeAttachment.id == "att-v")
                        .values(status="attaching", node_id=node_id, node_name="node-a",
                                device="/dev/vdb"))

    def report() -> None:  # the compute node: the volume is plugged in
        with cloud.session() as session:
            inst = session.get(Instance, server_id)
            assert inst is not None
            server_volumes_state.report(session, inst, {"volumes": {"v": "attached"}})

    with cloud.session() as session:
        # The detach (os-volume_attachments): its volume and attachment written...
        att = session.get(VolumeAttachment, "att-v")
        assert att is not None
        server_volumes_state.detach(session, att)
        session.flush()
        thread, errors = _run(report)
        _until_waiting_or_done(cloud, thread)
        # ...and committed while the report, which read the attachment attaching,
        # waits: it wrote "attached" and "in-use" over the detach.
    thread.join(WAIT)
    assert not thread.is_alive() and errors == []
    with cloud.session() as session:
        att = session.get(VolumeAttachment, "att-v")
        vol = session.get(Volume, "v")
        assert att is not None and att.status == "detaching"
        assert vol is not None and vol.status == "detaching"


def test_a_detach_of_an_attach_whose_failure_commits_meanwhile_is_not_found(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    node_id = _placed(cloud, server_id, "active", None)
    _volume(cloud, "v", server_id)
    with cloud.session() as session:
        session.execute(update(Volume).where(Volume.id == "v").values(
            status="attaching", node_id=node_id, node_name="node-a"))
        session.execute(update(VolumeAttachment).where(VolumeAttachment.id == "att-v")
                        .values(status="attaching", node_id=node_id, node_name="node-a",
                                device="/dev/vdb"))

    def detach() -> None:
        server_volumes.volume_attachment_delete(
            server_id, "v", _request(cloud), creds=_creds())  # type: ignore[arg-type]

    with cloud.session() as session:
        # The compute node's report: the attach failed, rolled back (row deleted)...
        inst = session.get(Instance, server_id)
        assert inst is not None
        server_volumes_state.report(session, inst, {"volumes": {"v": "error: no disk"}})
        session.flush()
        thread, errors = _run(detach)
        _until_waiting_or_done(cloud, thread)
        # ...committed while the detach, which read the attachment, waits: it updated the
        # volume, then no row (StaleDataError, a 500).
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotFound), errors
    with cloud.session() as session:
        assert session.get(VolumeAttachment, "att-v") is None
        vol = session.get(Volume, "v")
        assert vol is not None and vol.status == "available"
