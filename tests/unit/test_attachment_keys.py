"""attachment_keys.moved: new NBD keys when, and only when, a server changes node; the
storage node's export then admits the new key alone (SQLite; the API tier drives the
same through cold migration, resize, revert and evacuation: test_volume_move_keys.py)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from atwill.controller.compute import server_volumes_state as st
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.volume import Volume, VolumeType
from atwill.controller.volume import attachment_keys
from atwill.controller.volume.desired import storage_desired


def _world(session: Session) -> tuple[Node, Node, Node, Instance, list[Volume]]:
    a, b, stor = Node(name="a"), Node(name="b"), Node(name="stor")
    session.add_all([a, b, stor])
    session.flush()
    inst = Instance(name="s", hostname="s", project_id="p", user_id="u", flavor={}, vcpus=1,
                    memory_mb=64, disk_gb=1, node_id=a.id, node_name=a.name,
                    vm_state="active")
    vtype = VolumeType(name="__DEFAULT__")
    session.add_all([inst, vtype])
    session.flush()
    vols = [Volume(project_id="p", user_id="u", size=1, volume_type_id=vtype.id,
                   node_id=stor.id, node_name=stor.name, meta={}, image_meta={},
                   status="available", exports={}) for _ in range(2)]
    session.add_all(vols)
    session.flush()
    return a, b, stor, inst, vols


def _admitted(session: Session, stor: Node) -> dict[str, list[tuple[str, list[str] | None]]]:
    return {v["id"]: [(e["node_id"], e["psk"]) for e in v["exports"]]
            for v in storage_desired(session, stor)["volumes"]}


def test_a_move_rekeys_every_attachment_and_the_export_follows(session: Session) -> None:
    a, b, stor, inst, (v1, v2) = _world(session)
    first, second = st.attach(session, inst, v1, None, False), \
        st.attach(session, inst, v2, None, False)
    old = {first.id: first.nbd_key, second.id: second.nbd_key}
    assert _admitted(session, stor)[v1.id] == [(a.id, [f"atwill-att-{first.id}:{old[first.id]}"])]
    st.detach(session, second)  # detaching: still exported until the node says it is gone

    inst.node_id, inst.node_name = b.id, b.name
    assert attachment_keys.moved(session, inst, a.id) == 2
    assert first.nbd_key != old[first.id] and second.nbd_key != old[second.id]
    assert len(first.nbd_key) == 64 and int(first.nbd_key, 16) >= 0
    admitted = _admitted(session, stor)
    assert admitted[v1.id] == [(b.id, [f"atwill-att-{first.id}:{first.nbd_key}"])]
    assert admitted[v2.id] == [(b.id, [f"atwill-att-{second.id}:{second.nbd_key}"])]
    assert all(key not in str(admitted) for key in old.values())

    st.report(session, inst, {"state": "running", "volumes": {}})  # b: v2 is not here
    assert _admitted(session, stor)[v2.id] == []


def test_no_move_no_new_key(session: Session) -> None:
    """A resize on its own node, a server not placed: the keys stay."""
    a, _, _, inst, (v1, _) = _world(session)
    att = st.attach(session, inst, v1, None, False)
    key = att.nbd_key
    assert attachment_keys.moved(session, inst, a.id) == 0
    inst.node_id = None
    assert attachment_keys.moved(session, inst, a.id) == 0
    assert att.nbd_key == key


def test_an_attachment_without_a_key_gets_none(session: Session) -> None:
    """Made before migration 0026: its export admits the node's certificate, after the
    move the new node's (a key of its own would not be in its running QEMU)."""
    a, b, stor, inst, (v1, _) = _world(session)
    att = st.attach(session, inst, v1, None, False)
    att.nbd_key = None
    inst.node_id, inst.node_name = b.id, b.name
    assert attachment_keys.moved(session, inst, None) == 0
    assert att.nbd_key is None
    assert _admitted(session, stor)[v1.id] == [(b.id, None)]


def test_a_deleted_server_leaves_no_export(session: Session) -> None:
    a, b, stor, inst, (v1, _) = _world(session)
    st.attach(session, inst, v1, None, False)
    inst.node_id, inst.node_name = b.id, b.name
    attachment_keys.moved(session, inst, a.id)
    st.on_server_delete(session, inst)
    assert _admitted(session, stor)[v1.id] == []


def test_an_offloaded_server_is_exported_nothing(session: Session) -> None:
    """Shelved offloaded, the server runs nowhere: not exported to the node it left (its
    attachment's connector node), whose QEMU held the key."""
    a, _, stor, inst, (v1, _) = _world(session)
    st.attach(session, inst, v1, None, False)
    inst.node_id, inst.node_name = None, None
    assert _admitted(session, stor)[v1.id] == []
    inst.node_id, inst.node_name = a.id, a.name  # unshelved onto the same node
    assert attachment_keys.moved(session, inst, None) == 1
