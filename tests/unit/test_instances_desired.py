"""A node's instances in its desired state (servers/desired.py): their ports and volumes
read for all at once give each server the spec it got read one by one; and a node's
report (servers/lifecycle.report) still settles the attachments of the servers that
have them, which it now reads for all at once."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from sqlalchemy import delete, select

from atwill.controller.db.models import Instance, Node
from atwill.controller.db.network import IPAllocation, Network, Port, Subnet
from atwill.controller.db.session import Database
from atwill.controller.db.volume import Volume, VolumeAttachment, VolumeType
from atwill.controller.servers.desired import instance_spec, instances_desired
from atwill.controller.servers.lifecycle import report
from tests.unit.conftest import migrated_database

P = "spec-project"
T0 = dt.datetime(2026, 12, 7, 12, 0, 0)


@pytest.fixture(scope="module")
def sdb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("specs"))


@pytest.fixture
def node(sdb: Database) -> Iterator[Database]:
    """Node a runs s1 (two ports, made in the reverse order of their ids), s2 (none, an
    attachment detaching), s3 (one port, an attachment detached: not listed); node b runs
    s4 (a port); s5 on a is deleted."""
    with sdb.session() as session:
        session.add_all([Node(id="id-a", name="node-a"), Node(id="id-b", name="node-b")])
        session.add(Network(id="n1", name="n1", project_id=P, segmentation_id=801, mtu=1400))
        session.add(Subnet(id="s-n1", network_id="n1", ip_version=4, cidr="10.3.0.0/24",
                           gateway_ip="10.3.0.1", project_id=P, dns_nameservers=["9.9.9.9"]))
        session.add(VolumeType(id="vt", name="spec-type"))
        for n, (sid, where) in enumerate((("s1", "a"), ("s2", "a"), ("s3", "a"),
                                          ("s4", "b"), ("s5", "a"))):
            session.add(Instance(id=sid, name=sid, project_id=P, user_id="u", vcpus=1,
                                 memory_mb=64, disk_gb=1, vm_state="active",
                                 node_id=f"id-{where}", node_name=f"node-{where}",
                                 deleted=sid == "s5", created_at=T0 + dt.timedelta(seconds=n)))
        session.flush()
        for n, (pid, sid) in enumerate((("pz", "s1"), ("pa", "s1"), ("pc", "s3"),
                                        ("pd", "s4"), ("pe", "s5"))):
            session.add(Port(id=pid, network_id="n1", project_id=P, device_id=sid,
                             device_owner="compute:nova", host_id="node-a",
                             mac_address=f"fa:16:3e:00:01:{n:02x}",
                             created_at=T0 + dt.timedelta(seconds=n)))
            session.flush()
            session.add(IPAllocation(port_id=pid, subnet_id="s-n1", network_id="n1",
                                     ip_address=f"10.3.0.{10 + n}"))
        for vid, sid, status in (("v2", "s2", "detaching"), ("v3", "s3", "detached")):
            session.add(Volume(id=vid, project_id=P, user_id="u", size=1, status="in-use",
                               volume_type_id="vt"))
            session.flush()
            session.add(VolumeAttachment(volume_id=vid, instance_id=sid, project_id=P,
                                         status=status, device="/dev/vdb"))
    yield sdb
    with sdb.session() as session:
        for table in (VolumeAttachment, Volume, VolumeType, IPAllocation, Port, Subnet,
                      Network, Instance, Node):
            session.execute(delete(table))


def test_each_server_gets_the_spec_it_got_read_alone(node: Database) -> None:
    with node.session() as session:
        a = session.get(Node, "id-a")
        together = instances_desired(session, a)
        alone = [instance_spec(session, inst) for inst in session.scalars(
            select(Instance).where(Instance.node_id == "id-a", Instance.deleted.is_(False))
            .order_by(Instance.created_at))]
    assert together == alone
    by_id = {s["id"]: s for s in together}
    assert list(by_id) == ["s1", "s2", "s3"]
    assert [n["port_id"] for n in by_id["s1"]["nics"]] == ["pz", "pa"]  # made first, first
    assert by_id["s1"]["nics"][0]["fixed_ips"][0]["dns"] == ["9.9.9.9"]
    assert by_id["s2"]["nics"] == [] and by_id["s2"]["volumes"] == []  # listed, no export
    assert "volumes" not in by_id["s3"]  # detached: none listed


def test_a_nodes_report_settles_the_attachments_of_the_servers_that_have_them(
        node: Database) -> None:
    with node.session() as session:
        session.add(Volume(id="v4", project_id=P, user_id="u", size=1, status="attaching",
                           volume_type_id="vt"))
        session.flush()
        session.add(VolumeAttachment(id="att4", volume_id="v4", instance_id="s3",
                                     project_id=P, status="attaching", device="/dev/vdc"))
    running = {"state": "running", "reboot_serial": 0, "rebuild_serial": 0}
    with node.session() as session:
        report(session, None, session.get(Node, "id-a"),  # type: ignore[arg-type]
               {"s1": running, "s3": {**running, "volumes": {"v4": "attached"}}})
    with node.session() as session:
        assert session.get(VolumeAttachment, "att4").status == "attached"
        assert session.get(Volume, "v4").status == "in-use"
        assert session.get(Instance, "s1").power_state == 1  # the others' reports applied
