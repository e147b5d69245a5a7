"""Issue 12, the outcomes of attaches and detaches: each node's error is of one attempt,
each error event on its own request's action.

- A compute node's error names the attachment it tried (its desired entry's
  attachment_id, reported in volume_attempts); the storage node's export error the
  attachments its export was wanted for (export_error_attachments). An error of another
  attempt (read after a quick re-attach), or an attach's read while detaching, says
  nothing: it failed the new attach at once before.
- An attach's (detach's) error event goes on the action of the request that began it
  (attach_outcomes.asked), not on another of the same name in flight.

Controller rows on both engines (volume_world); the agents' halves without QEMU."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.storage.reconcile import StorageManager
from atwill.controller.compute import server_volumes_state as st
from atwill.controller.db.models import Instance, InstanceAction, InstanceActionEvent, Node
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment
from atwill.controller.servers import actions
from atwill.controller.volume import attach_outcomes as ao
from atwill.controller.volume import report
from atwill.controller.volume.desired import storage_desired
from atwill.core import volume_transitions as vt
from atwill.core.volume_devices import Volume as Wanted
from tests.unit.conftest import migrated_database
from tests.unit.volume_world import EXPORT, volume_world

CTL: Any = SimpleNamespace(settings=SimpleNamespace(volume_transition_timeout=600.0))


@pytest.fixture(scope="module")
def mdb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("attempts"))


@pytest.fixture
def rows(mdb: Database) -> Iterator[Session]:
    """A session in a transaction rolled back after the test (one migrated database of
    each engine for the module; each test's rows never meet the next's)."""
    with mdb.engine.connect() as conn:
        outer = conn.begin()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            yield session
        finally:
            session.close()
            outer.rollback()


def _beat(volumes: dict[str, str], attempts: dict[str, str] | None) -> dict[str, Any]:
    """The compute node's report of the server (attempts None: an older agent's)."""
    seen: dict[str, Any] = {"state": "running", "volumes": volumes}
    if attempts is not None:
        seen["volume_attempts"] = attempts
    return seen


def _later(hours: float = 1) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(hours=hours)


def _free(vol: Volume) -> None:
    """The storage node revoked the export of a rolled-back attach: available again."""
    vol.exports, vol.status = {}, "available"


# The rule ---------------------------------------------------------------------------
def test_an_error_counts_for_its_own_attempt_only() -> None:
    err = "error: cannot connect"
    assert vt.error_counts("attaching", "a2", err, "a2", named=True)
    assert not vt.error_counts("attaching", "a2", err, "a1", named=True)  # the old attempt
    assert not vt.error_counts("attaching", "a2", err, None, named=True)  # a detach's
    # Detaching: a detach's error is unnamed (the volume is no longer wanted); an attach's
    # error, of this attachment or another, is old news.
    assert vt.error_counts("detaching", "a2", err, None, named=True)
    assert not vt.error_counts("detaching", "a2", err, "a2", named=True)
    # What the node holds now counts whatever the attempt; an older agent is taken at
    # its word.
    assert vt.error_counts("attaching", "a2", "attached", "a1", named=True)
    assert vt.error_counts("attaching", "a2", err, None, named=False)
    assert vt.error_counts("attached", "a2", err, "a1", named=True)  # no transition
    assert vt.word("attaching", "a2", err, "a1", True) == vt.NO_WORD
    assert vt.on_node_word("detaching", True, vt.NO_WORD) == vt.WAIT
    assert vt.on_node_word("attaching", False, vt.NO_WORD) == vt.WAIT
    assert vt.export_error_counts("a2", ["a1", "a2"])
    assert not vt.export_error_counts("a2", ["a1"])
    assert not vt.export_error_counts("a2", "a2")  # malformed: nothing
    assert vt.export_error_counts("a2", None)  # unnamed (an older agent): as before


# The compute node's errors --------------------------------------------------------
def test_a_stale_attach_error_does_not_fail_a_quick_re_attach(rows: Session) -> None:
    """Failed before: the node's report made before it heard of the new attach still
    held the old attempt's error, which rolled the new attach back at once."""
    node, inst, vol = volume_world(rows)
    first = st.attach(rows, inst, vol, None, False)
    vol.exports = {node.id: EXPORT}
    (entry,) = st.desired(rows, inst)
    assert entry["attachment_id"] == first.id  # the attempt its errors name
    failed = _beat({vol.id: "error: cannot connect"}, {vol.id: first.id})
    st.report(rows, inst, failed)
    assert rows.get(VolumeAttachment, first.id) is None  # its own error: rolled back
    _free(vol)
    second = st.attach(rows, inst, vol, None, False)
    rows.flush()
    st.report(rows, inst, failed)  # the same report again: the old attempt's error
    assert rows.get(VolumeAttachment, second.id) is not None
    assert (second.status, vol.status) == ("attaching", "attaching")
    st.report(rows, inst, _beat({vol.id: "error: cannot connect"}, {vol.id: second.id}))
    assert rows.get(VolumeAttachment, second.id) is None
    assert vol.status == "available"


def test_an_attach_error_is_not_read_as_the_detachs(rows: Session) -> None:
    """Failed before: an attach's error still in the node's report (the volume still
    wanted there) was noted as the detach's failure; the timer then restored a detach
    the node had not even tried, with a false 'could not detach' event."""
    node, inst, vol = volume_world(rows)
    att = st.attach(rows, inst, vol, None, False)
    vol.exports = {node.id: EXPORT}
    st.report(rows, inst, _beat({vol.id: "attached"}, {vol.id: att.id}))
    st.detach(rows, att)
    st.report(rows, inst, _beat({vol.id: "error: busy"}, {vol.id: att.id}))
    assert ao.DETACH_ERROR_KEY not in (att.connector or {})
    # Its detach's own error (the volume no longer wanted: unnamed) is noted.
    st.report(rows, inst, _beat({vol.id: "error: the guest kept it"}, {}))
    assert att.connector[ao.DETACH_ERROR_KEY] == "the guest kept it"
    # An unwind (the timer's) is settled by the node's unplug, not by an attach's error.
    att.connector = {"host": "c1", ao.UNWIND_KEY: "timed out"}
    st.report(rows, inst, _beat({vol.id: "error: cannot connect"}, {vol.id: att.id}))
    assert att.status == "detaching"
    st.report(rows, inst, _beat({}, {}))  # not listed: rolled back
    assert rows.get(VolumeAttachment, att.id) is None


def test_an_older_agents_errors_count_as_before(rows: Session) -> None:
    _, inst, vol = volume_world(rows)
    att = st.attach(rows, inst, vol, None, False)
    st.report(rows, inst, _beat({vol.id: "error: cannot connect"}, None))
    assert rows.get(VolumeAttachment, att.id) is None


# The storage node's export errors -------------------------------------------------
def _storage_beat(vol: Volume, node: Node, why: str,
                  tried: list[str] | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"state": "available", "size_gb": 1, "snapshots": {},
                             "exports": {}, "export_errors": {node.id: why}}
    if tried is not None:
        entry["export_error_attachments"] = {node.id: tried}
    return {vol.id: entry}


def test_a_stale_export_error_does_not_fail_a_quick_re_attach(rows: Session) -> None:
    """Failed before: the storage node's error for the failed attach's export, still
    reported until its next converge, failed the new attach of that volume at once."""
    node, inst, vol = volume_world(rows)
    storage = Node(id="sn", name="stor1")
    rows.add(storage)
    rows.flush()
    first = st.attach(rows, inst, vol, None, False)
    (wanted,) = storage_desired(rows, storage)["volumes"][0]["exports"]
    assert wanted["attachments"] == [first.id]  # the attempts its error will name
    assert report.storage_report(rows, storage, _storage_beat(vol, node, "port taken",
                                                              [first.id]))
    assert rows.get(VolumeAttachment, first.id) is None
    assert vol.status == "available"
    second = st.attach(rows, inst, vol, None, False)
    rows.flush()
    report.storage_report(rows, storage, _storage_beat(vol, node, "port taken", [first.id]))
    assert rows.get(VolumeAttachment, second.id) is not None
    assert second.status == "attaching"
    assert report.storage_report(rows, storage, _storage_beat(vol, node, "port taken",
                                                              [second.id]))
    assert rows.get(VolumeAttachment, second.id) is None
    # An older storage agent (no attempts named): any attach of that export fails.
    third = st.attach(rows, inst, vol, None, False)
    rows.flush()
    assert report.storage_report(rows, storage, _storage_beat(vol, node, "gone", None))
    assert rows.get(VolumeAttachment, third.id) is None


# The actions ------------------------------------------------------------------------
def _errors_by_request(session: Session) -> list[tuple[str, str]]:
    return sorted((a.request_id, e.traceback or "") for e, a in session.execute(
        select(InstanceActionEvent, InstanceAction).join(
            InstanceAction, InstanceAction.id == InstanceActionEvent.action_id)
        .where(InstanceActionEvent.result == "Error")))


def _second_volume(session: Session, vol: Volume) -> Volume:
    other = Volume(project_id="p", user_id="u", size=1, volume_type_id=vol.volume_type_id,
                   node_id="sn", node_name="stor1", meta={}, image_meta={},
                   status="available", exports={})
    session.add(other)
    session.flush()
    return other


def _asked(session: Session, inst: Instance, att: VolumeAttachment, action: str,
           request: str) -> None:
    """As compute/server_volumes does: the action started, the attachment told."""
    ao.asked(att, actions.start(session, inst.id, action, request, "u", "p"))


def test_each_attach_error_goes_on_its_own_action(rows: Session) -> None:
    """Failed before (the time guess): the first attach's error went on the second
    attach_volume action, begun within the slack after it (the latest one)."""
    _, inst, vol = volume_world(rows)
    other = _second_volume(rows, vol)
    first = st.attach(rows, inst, vol, None, False)
    _asked(rows, inst, first, "attach_volume", "req-first")
    second = st.attach(rows, inst, other, None, False)
    _asked(rows, inst, second, "attach_volume", "req-second")
    assert first.connector[ao.ATTACH_REQUEST] == "req-first"
    st.report(rows, inst, _beat({vol.id: "error: cannot connect"}, {vol.id: first.id}))
    assert _errors_by_request(rows) == [
        ("req-first", f"Failed to attach volume {vol.id}: {ao.NODE_ATTACH_FAILED}")]
    st.report(rows, inst, _beat({other.id: "error: cannot connect"}, {other.id: second.id}))
    assert [r for r, _ in _errors_by_request(rows)] == ["req-first", "req-second"]


def test_each_detach_error_goes_on_its_own_action(rows: Session) -> None:
    node, inst, vol = volume_world(rows)
    other = _second_volume(rows, vol)
    atts = [st.attach(rows, inst, v, None, False) for v in (vol, other)]
    vol.exports = other.exports = {node.id: EXPORT}
    st.report(rows, inst, _beat({vol.id: "attached", other.id: "attached"},
                                {vol.id: atts[0].id, other.id: atts[1].id}))
    for att, request in zip(atts, ("req-d1", "req-d2"), strict=True):
        st.detach(rows, att)
        _asked(rows, inst, att, "detach_volume", request)
    st.report(rows, inst, _beat({vol.id: "error: busy", other.id: "error: busy"}, {}))
    # An hour on, past Nova's retries: each restore's event on its own detach.
    assert ao.sweep(rows, CTL, _later()) == 2
    found = _errors_by_request(rows)
    assert [r for r, _ in found] == ["req-d1", "req-d2"]
    assert vol.id in found[0][1] and other.id in found[1][1]
    assert all(ao.DETACH_REQUEST not in (a.connector or {}) for a in atts)


# The agents -------------------------------------------------------------------------
VOL = "0b6c4c3e-7a57-4bd4-8d6e-3c1a4a0e9f01"
BAD = "9f1d2c3b-4a5e-4f60-8a7b-1c2d3e4f5a6b"
GONE = "3d2c1b0a-9f8e-4d7c-8b6a-5f4e3d2c1b0a"


class OneInstance:
    """A running instance whose attach of BAD fails and whose GONE will not unplug."""

    def uuids(self) -> list[str]:
        return ["i"]

    def state(self, uuid: str) -> str:
        return "running"

    def sync_volumes(self, uuid: str, wanted: list[Wanted]) -> dict[str, str]:
        out = {v.volume_id: "error: cannot connect" if v.volume_id == BAD else "attached"
               for v in wanted}
        return {**out, GONE: "error: the guest kept it"}


def _entry(volume_id: str, attachment: str) -> dict[str, Any]:
    return {"volume_id": volume_id, "device": "/dev/vdb", "host": "10.9.0.3",
            "port": 10809, "attachment_id": attachment}


def test_the_compute_agent_names_the_attempt_of_each_outcome(tmp_path: Path) -> None:
    manager = instances.InstanceManager(AgentConfig(
        state_dir=tmp_path, controller_url="https://c:1", node_id="n", name="node1"))
    manager.driver = OneInstance()  # type: ignore[assignment]
    wanted = {"id": "i", "power": "running", "reboot_serial": 0, "rebuild_serial": 0,
              "volumes": [_entry(VOL, "a-vol"), _entry(BAD, "a-bad"),
                          {**_entry("c" * 36, "a-odd"), "port": 0}]}
    manager.converge([wanted])
    assert manager.lanes.wait(timeout=5)
    seen = manager.report()["i"]
    assert seen["volumes"][BAD] == "error: cannot connect"
    # GONE is not wanted: a detach's outcome, named by no attempt.
    assert seen["volume_attempts"] == {VOL: "a-vol", BAD: "a-bad", "c" * 36: "a-odd"}
    manager.converge([{**wanted, "volumes": [_entry(BAD, "a-again")]}])
    assert manager.lanes.wait(timeout=5)
    assert manager.report()["i"]["volume_attempts"] == {BAD: "a-again"}


class FailingExports:
    def records(self) -> dict:
        return {}

    def ensure(self, *args: object) -> None:
        raise OSError("port taken")


def test_the_storage_agent_names_the_attempts_of_an_export_error(tmp_path: Path) -> None:
    manager = StorageManager(tmp_path / "vols", tmp_path / "ca", tmp_path / "c",
                             tmp_path / "k", lambda source, dest: None)
    manager.exports = FailingExports()  # type: ignore[assignment]
    manager.store.root.mkdir(parents=True)
    manager.store.volume(VOL).touch()
    export = {"node_id": "n1", "client_cn": "c1", "psk": [], "attachments": ["a1"]}
    volume = {"id": VOL, "size_gb": 1, "exports": [export]}
    manager._latest = {VOL: volume}
    manager._exports(volume, "127.0.0.1")
    entry = manager.report()[VOL]
    assert entry["export_errors"] == {"n1": "port taken"}
    assert entry["export_error_attachments"] == {"n1": ["a1"]}
    # Re-attached: the next try's error names the new attempt.
    volume = {**volume, "exports": [{**export, "attachments": ["a2"]}]}
    manager._latest = {VOL: volume}
    manager._exports(volume, "127.0.0.1")
    assert manager.report()[VOL]["export_error_attachments"] == {"n1": ["a2"]}
    manager._revoke({VOL: {**volume, "exports": []}})  # not wanted: forgotten
    assert "export_errors" not in manager.report()[VOL]
    assert manager._export_tried == {}
    # A controller that names no attachments: the error is reported unnamed.
    unnamed = {**volume, "exports": [{"node_id": "n1", "client_cn": "c1", "psk": []}]}
    manager._latest = {VOL: unnamed}
    manager._exports(unnamed, "127.0.0.1")
    assert "export_error_attachments" not in manager.report()[VOL]
