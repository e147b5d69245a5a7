"""A node's network desired state from the shared lists (network/desired_lists.py): the
same remote ports, vteps and group members as the per-node ORM reads gave, read again
once the clock moves, and never shared by a session with writes of its own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import delete, select

from atwill.controller.db.models import ClusterRevision, Node, NodeRevision
from atwill.controller.db.network import (
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from atwill.controller.db.session import Database
from atwill.controller.network import desired_lists
from atwill.controller.network.desired import network_desired
from atwill.controller.revision import bump
from tests.unit.conftest import migrated_database

P = "lists-project"


@pytest.fixture(scope="module")
def ldb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("lists"))


def _port(session: Any, pid: str, net: str, host: str, addresses: list[str],
          groups: tuple[str, ...] = ("g1",), pairs: list[dict[str, str]] | None = None,
          owner: str = "compute:nova") -> None:
    session.add(Port(id=pid, network_id=net, project_id=P, host_id=host, device_owner=owner,
                     mac_address="fa:16:3e:00:" + ":".join(f"{ord(c):02x}" for c in pid[1:]),
                     allowed_address_pairs=pairs or []))
    session.flush()
    for address in addresses:
        session.add(IPAllocation(port_id=pid, network_id=net, ip_address=address,
                                 subnet_id="s6" if ":" in address else f"s-{net}"))
    for group in groups:
        session.add(PortSecurityGroup(port_id=pid, security_group_id=group))


@pytest.fixture
def fleet(ldb: Database) -> Iterator[Database]:
    """Nodes a, b, c with overlay addresses and d without; networks n1 (ports on a, b, c,
    d, and one unbound) and n2 (ports on a and c); group g1 whose rules name g1 and g2."""
    desired_lists.clear()
    with ldb.session() as session:
        session.merge(ClusterRevision(id=1, revision=5, everyone_at=1))
        for k, ip in (("a", "100.64.0.2"), ("b", "100.64.0.3"), ("c", "100.64.0.4"),
                      ("d", None)):
            session.add(Node(id=f"id-{k}", name=f"node-{k}", overlay_ip=ip))
        for net, vni in (("n1", 901), ("n2", 902)):
            session.add(Network(id=net, name=net, project_id=P, segmentation_id=vni, mtu=1450))
            session.add(Subnet(id=f"s-{net}", network_id=net, ip_version=4, project_id=P,
                               cidr="10.1.0.0/24" if net == "n1" else "10.2.0.0/24"))
        session.add(Subnet(id="s6", network_id="n1", ip_version=6, cidr="fd00::/64",
                           project_id=P))
        for gid in ("g1", "g2"):
            session.add(SecurityGroup(id=gid, name=gid, project_id=P))
        session.flush()
        session.add(SecurityGroupRule(id="r1", security_group_id="g1", project_id=P,
                                      direction="ingress", ethertype="IPv4",
                                      remote_group_id="g1"))
        session.add(SecurityGroupRule(id="r2", security_group_id="g1", project_id=P,
                                      direction="ingress", ethertype="IPv6",
                                      remote_group_id="g2"))
        _port(session, "pa1", "n1", "node-a", ["10.1.0.5", "fd00::5"])
        _port(session, "pa2", "n2", "node-a", ["10.2.0.5"])
        _port(session, "pb1", "n1", "node-b", ["10.1.0.7", "10.1.0.8"],
              pairs=[{"ip_address": "10.9.0.0/24", "mac_address": "fa:16:3e:aa:bb:cc"}])
        _port(session, "pc1", "n1", "node-c", ["fd00::9"], groups=("g2",))
        _port(session, "pc2", "n2", "node-c", [], groups=())
        _port(session, "pd1", "n1", "node-d", ["10.1.0.11"], groups=("g1", "g2"))
        _port(session, "px1", "n1", "", ["10.1.0.12"],
              pairs=[{"ip_address": "fd00::77"}])
        _port(session, "pr1", "n1", "node-b", ["10.1.0.1"], groups=(),
              owner="network:router_interface")
    yield ldb
    with ldb.session() as session:
        for table in (PortSecurityGroup, IPAllocation, Port, SecurityGroupRule, SecurityGroup,
                      Subnet, Network, NodeRevision, Node, ClusterRevision):
            session.execute(delete(table))
    desired_lists.clear()


def _oracle_remote(session: Any, network_id: str, node: Node) -> list[dict[str, Any]]:
    """The per-node read network/desired.py made before the shared lists."""
    rows = session.execute(select(Port, Node.overlay_ip, Node.name).join(
        Node, Node.name == Port.host_id).where(
        Port.network_id == network_id, Port.host_id != node.name,
        Node.overlay_ip.is_not(None)).order_by(Port.id))
    return [{"id": p.id, "mac_address": p.mac_address, "node": name, "vtep": vtep,
             "ip_addresses": [a.ip_address for a in p.fixed_ips]} for p, vtep, name in rows]


def _oracle_members(session: Any, group_id: str) -> dict[str, list[str]]:
    ports = session.scalars(select(Port).where(Port.id.in_(
        select(PortSecurityGroup.port_id).where(
            PortSecurityGroup.security_group_id == group_id))))
    out: dict[str, set[str]] = {"IPv4": set(), "IPv6": set()}
    for port in ports:
        for address in [a.ip_address for a in port.fixed_ips] + \
                [p["ip_address"] for p in port.allowed_address_pairs]:
            out["IPv6" if ":" in address else "IPv4"].add(address)
    return {k: sorted(v) for k, v in out.items()}


def _check(db: Database, name: str) -> dict[str, Any]:
    with db.session() as session:
        node = session.scalar(select(Node).where(Node.name == name))
        state = network_desired(session, node)
        for net in state["networks"]:
            remote = _oracle_remote(session, net["id"], node)
            assert net["remote_ports"] == remote, (name, net["id"])
            assert net["vteps"] == sorted({r["vtep"] for r in remote})
        for group in state["security_groups"]:
            for gid, members in group["remote_group_members"].items():
                assert members == _oracle_members(session, gid), (name, gid)
        return state


def test_every_node_gets_what_its_own_reads_gave(fleet: Database) -> None:
    for shared in (False, True):  # lists read for each node, then shared at one clock
        states = {k: _check(fleet, f"node-{k}") for k in "abcd"}
        if not shared:
            desired_lists.clear()
    a = {n["id"]: n for n in states["a"]["networks"]}
    assert [p["id"] for p in a["n1"]["remote_ports"]] == ["pb1", "pc1", "pr1"]
    assert a["n1"]["remote_ports"][0]["ip_addresses"] == ["10.1.0.7", "10.1.0.8"]
    assert a["n1"]["remote_ports"][1]["ip_addresses"] == ["fd00::9"]
    assert a["n1"]["vteps"] == ["100.64.0.3", "100.64.0.4"]
    assert a["n2"]["remote_ports"][0]["ip_addresses"] == []  # a port with no address
    members = states["a"]["security_groups"][0]["remote_group_members"]
    assert members["g1"] == {"IPv4": ["10.1.0.11", "10.1.0.12", "10.1.0.5", "10.1.0.7",
                                      "10.1.0.8", "10.2.0.5", "10.9.0.0/24"],
                             "IPv6": ["fd00::5", "fd00::77"]}  # any node's, unbound too
    assert members["g2"] == {"IPv4": ["10.1.0.11"], "IPv6": ["fd00::9"]}
    assert states["d"]["networks"][0]["remote_ports"][0]["id"] == "pa1"  # d has no vtep


def test_a_change_with_its_bump_is_read_again(fleet: Database) -> None:
    before = _check(fleet, "node-a")
    with fleet.session() as session:
        _port(session, "pb2", "n1", "node-b", ["10.1.0.20"])
        bump(session, touched=True)
    after = _check(fleet, "node-a")
    ids = [p["id"] for p in after["networks"][0]["remote_ports"]]
    assert ids == ["pb1", "pb2", "pc1", "pr1"] != \
        [p["id"] for p in before["networks"][0]["remote_ports"]]
    assert "10.1.0.20" in after["security_groups"][0]["remote_group_members"]["g1"]["IPv4"]


def test_a_session_with_its_own_writes_neither_uses_nor_fills_them(fleet: Database) -> None:
    _check(fleet, "node-a")  # the lists kept at this clock
    with fleet.session() as session:
        _port(session, "pc9", "n1", "node-c", ["10.1.0.30"])  # flushed, not committed
        node = session.scalar(select(Node).where(Node.name == "node-a"))
        state = network_desired(session, node)
        assert "pc9" in [p["id"] for p in state["networks"][0]["remote_ports"]]
        session.rollback()
    state = _check(fleet, "node-a")  # the clock did not move: the kept lists, without it
    assert "pc9" not in [p["id"] for p in state["networks"][0]["remote_ports"]]
    assert "10.1.0.30" not in state["security_groups"][0]["remote_group_members"]["g1"]["IPv4"]


def test_the_lists_are_read_again_only_for_a_node_whose_revision_passed_them(
        fleet: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[str] = []
    for name in ("_read_ports", "_read_members"):
        real = getattr(desired_lists, name)
        monkeypatch.setattr(desired_lists, name,
                            lambda s, ids, real=real, name=name: reads.append(name) or real(s, ids))
    for k in "abc":
        _check(fleet, f"node-{k}")
    assert sorted(reads) == ["_read_members", "_read_ports"]  # once for the three
    with fleet.session() as session:  # a change elsewhere: the clock moves, no node
        session.get(ClusterRevision, 1).revision += 1
    _check(fleet, "node-a")
    assert len(reads) == 2  # what it was read at is still node a's newest
    with fleet.session() as session:
        bump(session, nodes={"id-b"})  # a change for node b alone
    _check(fleet, "node-a")
    assert len(reads) == 2
    _check(fleet, "node-b")  # b's revision is past them: read again, and kept
    assert len(reads) == 4
    _check(fleet, "node-c")
    _check(fleet, "node-a")
    assert len(reads) == 4  # newer than a's and c's revisions: theirs too


def _remote_ids(db: Database, name: str) -> list[str]:
    with db.session() as session:
        node = session.scalar(select(Node).where(Node.name == name))
        return [p["id"] for p in network_desired(session, node)["networks"][0]["remote_ports"]]


def test_a_clock_that_went_back_drops_the_kept_lists(fleet: Database) -> None:
    """A database restored (or a failover to a lagging replica) while the controller runs:
    the lists kept at the later clock describe rows that no longer exist."""
    with fleet.session() as session:
        _port(session, "pb2", "n1", "node-b", ["10.1.0.20"])
        bump(session, touched=True)  # clock 6, node a at 6
    assert "pb2" in _remote_ids(fleet, "node-a")  # kept at clock 6
    with fleet.session() as session:  # back to the clock-5 state: pb2 never existed
        for table in (PortSecurityGroup, IPAllocation, Port):
            column = table.id if table is Port else table.port_id
            session.execute(delete(table).where(column == "pb2"))
        session.execute(delete(NodeRevision))
        row = session.get(ClusterRevision, 1)
        row.revision, row.everyone_at = 5, 1
    assert "pb2" not in _remote_ids(fleet, "node-a")
    with fleet.session() as session:
        node = session.scalar(select(Node).where(Node.name == "node-a"))
        members = network_desired(session, node)["security_groups"][0]["remote_group_members"]
    assert "10.1.0.20" not in members["g1"]["IPv4"]


def test_a_build_whose_snapshot_is_older_than_a_kept_list_drops_nothing(
        fleet: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build whose transaction began before another's read a newer clock is no rewind:
    the committed clock, read again on a connection of its own, says so."""
    _check(fleet, "node-a")  # kept at clock 5
    with fleet.session() as session:
        session.get(ClusterRevision, 1).revision += 1  # the clock moves, no node
    with fleet.session() as stale:
        node = stale.scalar(select(Node).where(Node.name == "node-a"))
        network_desired(stale, node)  # this build's snapshot: clock 6
        with fleet.session() as newer:  # meanwhile another change, another build
            newer.get(ClusterRevision, 1).revision += 1
        desired_lists._kept[fleet.engine].high = 7  # as if a build had kept a list at 7
        reads: list[str] = []
        real = desired_lists._read_ports
        monkeypatch.setattr(desired_lists, "_read_ports",
                            lambda s, ids: reads.append("ports") or real(s, ids))
        network_desired(stale, node)  # clock 6 < 7 read in its snapshot: not a rewind
        assert reads == [] and desired_lists._kept[fleet.engine].drops == 0


def test_the_states_own_their_lists(fleet: Database) -> None:
    """The kept lists are shared by every node's state: changing one state's copy changes
    no other's."""
    first = _check(fleet, "node-a")
    first["networks"][0]["remote_ports"][0]["ip_addresses"].append("192.0.2.1")
    first["networks"][0]["remote_ports"][0]["id"] = "changed"
    first["security_groups"][0]["remote_group_members"]["g1"]["IPv4"].append("192.0.2.2")
    again = _check(fleet, "node-a")
    assert again["networks"][0]["remote_ports"][0]["id"] != "changed"
    assert "192.0.2.1" not in again["networks"][0]["remote_ports"][0]["ip_addresses"]
    assert "192.0.2.2" not in again["security_groups"][0]["remote_group_members"]["g1"]["IPv4"]
