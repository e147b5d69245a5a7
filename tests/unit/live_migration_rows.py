"""A live migration's rows for the controller's unit tests: two nodes, a migrating
instance on the first, and its migration to the second."""

from __future__ import annotations

from sqlalchemy.orm import Session

from atwill.controller.db.models import Instance, Migration, Node


def made(session: Session, status: str) -> tuple[Node, Node, Instance, Migration]:
    src, dst = Node(name="node1"), Node(name="node2", overlay_ip="10.99.0.2")
    session.add_all([src, dst])
    session.flush()
    inst = Instance(name="vm", project_id="p", user_id="u", vcpus=1, memory_mb=256,
                    disk_gb=1, vm_state="active", task_state="migrating", node_id=src.id,
                    node_name=src.name)
    session.add(inst)
    session.flush()
    record = Migration(instance_uuid=inst.id, source_compute="node1", source_node_id=src.id,
                       dest_compute="node2", dest_node_id=dst.id, dest_host="10.99.0.2",
                       status=status, nbd_port=10809, incoming_port=49152)
    session.add(record)
    session.flush()
    return src, dst, inst, record
