"""A server's deletion (or a failed create's undo) against Cinder's attachment API, on
PostgreSQL: one lock order, server -> volume -> attachment (volume/lock_order.py).

on_server_delete deleted an attachment row first and updated its volume after, while
DELETE /v3/attachments/{id} locks the volume first and the attachment after: the two at
once deadlocked. And POST /v3/attachments read the server unlocked, so a reserve that read
it before an undo committed was kept, reserved for a deleted server.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select, text

from atwill.controller.compute import server_volumes_state
from atwill.controller.db.models import Instance
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeType
from atwill.controller.servers import create_steps
from atwill.controller.volume import attachments
from atwill.controller.volume.access import find_volume
from atwill.core.errors import NotFound
from atwill.core.microversion import Version
from tests.unit.test_create_steps import _creds, _record, cloud  # noqa: F401

WAIT = 10.0


def _postgres(db: Database) -> None:
    if db.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer: its transactions never wait for each other")


def _volume(db: Database, vid: str, server_id: str | None) -> None:
    with db.session() as session:
        if session.get(VolumeType, "vt") is None:
            session.add(VolumeType(id="vt", name="lock-order-type"))
            session.flush()
        session.add(Volume(id=vid, project_id="proj", user_id="u", size=1,
                           status="reserved" if server_id else "available",
                           volume_type_id="vt"))
        session.flush()
        if server_id:
            session.add(VolumeAttachment(id=f"att-{vid}", volume_id=vid,
                                         instance_id=server_id, project_id="proj",
                                         status="reserved"))


def _until_waiting_or_done(db: Database, thread: threading.Thread) -> None:
    """Until another transaction of this database waits for a row lock, or thread ends."""
    deadline = time.monotonic() + WAIT
    with db.engine.connect() as conn:
        while time.monotonic() < deadline and thread.is_alive():
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()")).scalar()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.05)


def _run(target: Any) -> tuple[threading.Thread, list[BaseException]]:
    errors: list[BaseException] = []

    def wrapped() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=wrapped, daemon=True)
    thread.start()
    return thread, errors


def test_server_delete_and_attachment_delete_do_not_deadlock(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "v1", server_id)

    def delete_server() -> None:
        with cloud.session() as session:
            inst = session.get(Instance, server_id)
            assert inst is not None
            server_volumes_state.on_server_delete(session, inst)
            session.flush()

    # Cinder's DELETE /attachments (attachments._locked): the volume locked first...
    cinder_errors: list[BaseException] = []
    with cloud.session() as session:
        att = session.get(VolumeAttachment, "att-v1")
        assert att is not None
        vol = find_volume(session, _creds(), "v1", lock=True)
        thread, errors = _run(delete_server)
        _until_waiting_or_done(cloud, thread)
        try:
            # ...the attachment after: it waited for a delete that waited for the
            # volume (PostgreSQL's deadlock error, one of the two rolled back).
            session.execute(text("SET LOCAL lock_timeout = '5s'"))
            session.refresh(att, with_for_update=True)
            session.delete(att)
            session.flush()
            vol.status = "available"
        except Exception as exc:  # noqa: BLE001 - asserted below
            cinder_errors.append(exc)
            session.rollback()
    thread.join(WAIT)
    assert not thread.is_alive()
    assert cinder_errors == [] and errors == []
    with cloud.session() as session:
        assert session.get(VolumeAttachment, "att-v1") is None
        vol = session.get(Volume, "v1")
        assert vol is not None and vol.status == "available"


def test_attachment_reserved_while_an_undo_deletes_its_server_is_refused(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _record(cloud)
    _volume(cloud, "free", None)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        ctl=SimpleNamespace(db=cloud))))
    body = {"attachment": {"volume_uuid": "free", "instance_uuid": server_id}}

    def reserve() -> None:
        attachments.attachment_post(request, body=body, creds=_creds(),  # type: ignore[arg-type]
                                    version=Version(3, 27))

    with cloud.session() as session:
        create_steps.undo(session, [server_id], "req-undo", _creds())
        session.flush()
        thread, errors = _run(reserve)
        _until_waiting_or_done(cloud, thread)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotFound), errors
    with cloud.session() as session:
        inst = session.get(Instance, server_id)
        assert inst is not None and inst.deleted
        assert list(session.scalars(select(VolumeAttachment.id).where(
            VolumeAttachment.instance_id == server_id))) == []
        vol = session.get(Volume, "free")
        assert vol is not None and vol.status == "available"
