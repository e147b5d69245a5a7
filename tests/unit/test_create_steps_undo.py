"""A failed step 2's undo (servers/create_steps.py) lets go what a delete lets go.

Between the steps the server is BUILD on no node, and a tenant may already point things
at it: a volume attachment reserved through Cinder's POST /attachments (instance_uuid),
a port whose device_id names it. undo() deleted the server and left them held: the
volume stayed reserved to a deleted server and the port kept its address.
"""

from __future__ import annotations

from sqlalchemy import select

from atwill.controller.db.models import ClusterRevision
from atwill.controller.db.network import IPAllocation, Network, Port, Subnet
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeType
from atwill.controller.servers import create_steps
from tests.unit.test_create_steps import _creds, _record, _server, cloud  # noqa: F401


def _everyone_at(db: Database) -> int:
    with db.session() as session:
        row = session.get(ClusterRevision, 1)
        return row.everyone_at if row else 0


def test_undo_releases_the_attachments_and_ports_made_between_the_steps(
        cloud: Database) -> None:  # noqa: F811 - the fixture imported above
    server_id = _record(cloud)
    with cloud.session() as session:
        session.add(VolumeType(id="vt", name="undo-type"))
        session.add(Network(id="n1", name="n1", project_id="proj", segmentation_id=901,
                            mtu=1400))
        session.add(Subnet(id="s1", network_id="n1", ip_version=4, cidr="10.9.0.0/24",
                           project_id="proj"))
        session.flush()
        for vid, dispose in (("kept", False), ("disposed", True)):
            session.add(Volume(id=vid, project_id="proj", user_id="u", size=1,
                               status="reserved", volume_type_id="vt"))
            session.flush()
            session.add(VolumeAttachment(id=f"att-{vid}", volume_id=vid,
                                         instance_id=server_id, project_id="proj",
                                         status="reserved", delete_on_termination=dispose))
        session.add(Port(id="p1", network_id="n1", project_id="proj", device_id=server_id,
                         device_owner="compute:nova", mac_address="fa:16:3e:00:09:01"))
        session.flush()
        session.add(IPAllocation(port_id="p1", subnet_id="s1", network_id="n1",
                                 ip_address="10.9.0.5"))
    everyone = _everyone_at(cloud)
    with cloud.session() as session:
        create_steps.undo(session, [server_id], "req-undo", _creds())
    assert _server(cloud, server_id).deleted
    with cloud.session() as session:
        assert list(session.scalars(select(VolumeAttachment.id).where(
            VolumeAttachment.instance_id == server_id))) == []
        kept = session.get(Volume, "kept")
        assert kept is not None and kept.status == "available"
        # delete_on_termination, as a delete: on no storage node, gone at once.
        assert session.get(Volume, "disposed") is None
        assert session.get(Port, "p1") is None
        assert list(session.scalars(select(IPAllocation.ip_address).where(
            IPAllocation.network_id == "n1"))) == []
    # No node ever had the server: what it released wakes the nodes it concerns, not all.
    assert _everyone_at(cloud) == everyone
