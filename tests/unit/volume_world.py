"""A compute node, its server and an available volume on a storage node, as rows: the
world of the attachment tests (server_volumes_state, attach_outcomes)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from atwill.controller.db.models import Instance, Node
from atwill.controller.db.volume import Volume, VolumeType

EXPORT = {"host": "10.0.0.1", "port": 10809}


def volume_world(session: Session, **volume: Any) -> tuple[Node, Instance, Volume]:
    """Node c1 running server s, and a 1 GiB volume of node sn (stor1); `volume` sets the
    volume's columns (status available, no exports by default)."""
    node = Node(name="c1")
    session.add(node)
    session.flush()
    inst = Instance(name="s", hostname="s", project_id="p", user_id="u", flavor={}, vcpus=1,
                    memory_mb=64, disk_gb=1, node_id=node.id, node_name=node.name,
                    vm_state="active")
    # A migrated database has its default type already (the schema alone has none).
    vtype = session.scalar(select(VolumeType).where(VolumeType.name == "__DEFAULT__"))
    if vtype is None:
        vtype = VolumeType(name="__DEFAULT__")
        session.add(vtype)
    session.add(inst)
    session.flush()
    vol = Volume(project_id="p", user_id="u", size=1, volume_type_id=vtype.id, node_id="sn",
                 node_name="stor1", meta={}, image_meta={},
                 **{"status": "available", "exports": {}, **volume})
    session.add(vol)
    session.flush()
    return node, inst, vol
