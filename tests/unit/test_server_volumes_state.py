"""Nova's attachments as rows: what the compute node is given, and how its report and a
server's deletion settle them (SQLite; the API tier drives the same through the nodes)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from atwill.controller.compute import server_volumes_state as st
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.volume import Volume
from atwill.controller.volume.desired import storage_desired
from atwill.core.errors import BadRequest
from tests.unit.volume_world import EXPORT, volume_world


def test_attach_export_report_detach(session: Session) -> None:
    node, inst, vol = volume_world(session)
    assert st.desired(session, inst) is None  # never had a volume: no key at all
    att = st.attach(session, inst, vol, "t", True)
    assert (st.desired(session, inst), vol.status, att.device) == ([], "attaching", "/dev/vdb")
    vol.exports = {node.id: EXPORT}
    # The attachment's own NBD identity: a key of its own, not the node's certificate.
    assert len(att.nbd_key) == 64 and int(att.nbd_key, 16) >= 0
    assert st.desired(session, inst) == [{
        "volume_id": vol.id, "serial": vol.id, "device": "/dev/vdb", "host": "10.0.0.1",
        "port": 10809, "export": vol.id, "boot_index": None, "read_only": False,
        "tls_hostname": "stor1",
        "psk": {"identity": f"atwill-att-{att.id}", "key": att.nbd_key},
        "attachment_id": att.id}]
    st.report(session, inst, {"state": "running", "volumes": {vol.id: "attached"}})
    assert (att.status, vol.status) == ("attached", "in-use")
    vol.exports = {}  # the storage node restarting: the guest keeps its disk
    assert [v["port"] for v in st.desired(session, inst)] == [10809]
    vol.exports = {node.id: EXPORT}
    assert st.volumes_attached(session, inst, True) == [{"id": vol.id,
                                                          "delete_on_termination": True}]
    with pytest.raises(BadRequest, match="already attached"):
        st.attach(session, inst, vol, None, False)
    st.detach(session, att)
    assert (st.desired(session, inst), vol.status) == ([], "detaching")
    st.report(session, inst, {"state": "running", "volumes": {vol.id: "attached"}})
    assert st.of_server(session, inst.id) == [att]  # the node still holds it
    st.report(session, inst, {"state": "running", "volumes": {}})
    assert st.of_server(session, inst.id) == []
    assert vol.status == "detaching"  # until the storage node drops the export


def test_a_failed_attach_is_rolled_back(session: Session) -> None:
    _node, inst, vol = volume_world(session)
    st.attach(session, inst, vol, None, False)
    st.report(session, inst, {"volumes": {vol.id: "error: no route"}})
    assert (st.of_server(session, inst.id), vol.status) == ([], "available")


def test_server_delete_frees_and_deletes_on_termination(session: Session) -> None:
    node, inst, vol = volume_world(session)
    other = Volume(project_id="p", user_id="u", size=1, volume_type_id=vol.volume_type_id,
                   status="available", node_id="sn", node_name="stor1", meta={},
                   image_meta={}, exports={node.id: EXPORT})
    session.add(other)
    session.flush()
    st.attach(session, inst, vol, None, False)
    st.attach(session, inst, other, None, True)
    st.on_server_delete(session, inst)
    assert st.of_server(session, inst.id) == []
    assert (vol.status, other.status) == ("available", "deleting")


def test_delete_on_termination_spares_other_projects_and_shared_volumes(
        session: Session) -> None:
    node, inst, vol = volume_world(session)
    vol.project_id = "q"  # an admin attached project q's volume to p's server
    shared = Volume(project_id="p", user_id="u", size=1, volume_type_id=vol.volume_type_id,
                    status="available", node_id="sn", node_name="stor1", meta={},
                    image_meta={}, exports={}, multiattach=True)
    twin = Instance(name="t", hostname="t", project_id="p", user_id="u", flavor={}, vcpus=1,
                    memory_mb=64, disk_gb=1, node_id=node.id, node_name=node.name,
                    vm_state="active")
    session.add_all([shared, twin])
    session.flush()
    st.attach(session, inst, vol, None, True)
    st.attach(session, inst, shared, None, True)
    shared.status = "available"  # as if held through Cinder's attachments API too
    st.attach(session, twin, shared, None, False)
    st.on_server_delete(session, inst)
    assert st.of_server(session, inst.id) == []
    assert vol.status != "deleting" and shared.status != "deleting"
    assert [a.volume_id for a in st.of_server(session, twin.id)] == [shared.id]


def test_a_boot_volume_holds_the_build_until_exported(session: Session) -> None:
    node, inst, vol = volume_world(session, status="creating")
    inst.vm_state = "building"
    att = st.add(session, inst, vol, None, True, 0)
    assert (att.device, vol.status) == ("/dev/vda", "creating")
    assert st.boot_pending(session, inst)
    vol.exports = {node.id: EXPORT}
    assert not st.boot_pending(session, inst)
    assert st.desired(session, inst)[0]["boot_index"] == 0


def test_exports_follow_the_server_to_its_new_node(session: Session) -> None:
    node, inst, vol = volume_world(session)
    storage = Node(id="sn", name="stor1")
    moved = Node(name="c2")
    session.add_all([storage, moved])
    session.flush()
    att = st.attach(session, inst, vol, None, False)
    key = [f"atwill-att-{att.id}:{att.nbd_key}"]  # the export admits that key alone
    wanted = storage_desired(session, storage)["volumes"][0]["exports"]
    assert wanted == [{"node_id": node.id, "client_cn": "c1", "psk": key,
                       "attachments": [att.id]}]
    inst.node_id, inst.node_name = moved.id, moved.name  # evacuated
    wanted = storage_desired(session, storage)["volumes"][0]["exports"]
    assert wanted == [{"node_id": moved.id, "client_cn": "c2", "psk": key,
                       "attachments": [att.id]}]
    att.nbd_key = None  # made before migration 0026: the node's certificate
    wanted = storage_desired(session, storage)["volumes"][0]["exports"]
    assert wanted == [{"node_id": moved.id, "client_cn": "c2", "psk": None,
                       "attachments": [att.id]}]
    vol.exports = {node.id: EXPORT}
    assert st.desired(session, inst) == []  # the old node's export is not the new one's
    vol.exports = {moved.id: EXPORT}
    assert st.desired(session, inst)[0]["host"] == "10.0.0.1"
    inst.vm_state, inst.task_state = "active", "rebuilding"  # as an evacuation
    att = st.of_server(session, inst.id)[0]
    att.boot_index = 0
    assert not st.boot_pending(session, inst)
    vol.exports = {node.id: EXPORT}
    assert st.boot_pending(session, inst)
    vol.exports = {moved.id: EXPORT}
    st.report(session, inst, {"volumes": {vol.id: "attached"}})
    (att,) = st.of_server(session, inst.id)
    assert (att.node_id, att.node_name, att.status) == (moved.id, "c2", "attached")


def test_an_evacuated_server_keeps_its_volume_through_a_storage_restart(
        session: Session) -> None:
    """Plugged in on the node it was evacuated to, the volume stays in its desired state
    while the storage node restarts (reporting no exports for a while), as it did on the
    node it was first attached on: the guest keeps its (boot) disk."""
    node, inst, vol = volume_world(session)
    moved = Node(name="c2")
    session.add(moved)
    session.flush()
    att = st.add(session, inst, vol, None, False, 0)
    vol.exports = {node.id: EXPORT}
    st.report(session, inst, {"volumes": {vol.id: "attached"}})
    assert att.status == "attached"
    inst.node_id, inst.node_name = moved.id, moved.name  # evacuated
    vol.exports = {moved.id: {"host": "10.0.0.1", "port": 10810}}
    st.report(session, inst, {"volumes": {vol.id: "attached"}})
    vol.exports = {}  # the storage node restarting
    assert [(v["volume_id"], v["port"]) for v in st.desired(session, inst)] == [
        (vol.id, 10810)]
