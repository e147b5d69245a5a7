"""Nova's attachment update (2.85) against a detach that deletes the attachment, on
PostgreSQL: the update read the attachment unlocked and its UPDATE then matched no row
(StaleDataError: a 500). It now reads it again under its row lock: a 404."""

from __future__ import annotations

from types import SimpleNamespace

from sqlalchemy import select

from atwill.controller.compute.server_volumes import volume_attachment_put
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.core.errors import NotFound
from atwill.core.microversion import Version
from tests.unit.test_create_steps import _creds, _record, cloud  # noqa: F401
from tests.unit.test_server_delete_volume_lock_order import (
    WAIT,
    _postgres,
    _run,
    _until_waiting_or_done,
    _volume,
)


def _attached(db: Database) -> str:
    server_id = _record(db)
    _volume(db, "v1", server_id)
    with db.session() as session:
        att = session.get(VolumeAttachment, "att-v1")
        vol = session.get(Volume, "v1")
        assert att is not None and vol is not None
        att.status, vol.status = "attached", "in-use"
    return server_id


def _put(db: Database, server_id: str) -> None:
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        ctl=SimpleNamespace(db=db))))
    volume_attachment_put(server_id, "v1", request,  # type: ignore[arg-type]
                          body={"volumeAttachment": {"volumeId": "v1",
                                                     "delete_on_termination": True}},
                          creds=_creds(), version=Version(2, 85))


def test_an_update_of_an_attachment_deleted_meanwhile_is_a_404(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    _postgres(cloud)
    server_id = _attached(cloud)
    with cloud.session() as session:
        # A detach: the volume, then the attachment, locked; the attachment deleted.
        session.scalars(select(Volume).where(Volume.id == "v1").with_for_update()).all()
        att = session.scalars(select(VolumeAttachment).where(
            VolumeAttachment.id == "att-v1").with_for_update()).one()
        session.delete(att)
        session.flush()
        thread, errors = _run(lambda: _put(cloud, server_id))
        _until_waiting_or_done(cloud, thread)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], NotFound), errors


def test_an_update_still_sets_the_flag(cloud: Database) -> None:  # noqa: F811
    server_id = _attached(cloud)
    _put(cloud, server_id)
    with cloud.session() as session:
        att = session.get(VolumeAttachment, "att-v1")
        assert att is not None and att.delete_on_termination is True
