"""One node's network desired state on a shared network with P ports, in process.

    .venv/bin/python benchmarks/network_build.py [--nodes 50] [--ports 1000] [--builds 100]
                                                 [--url URL]

N node rows with overlay addresses, one VXLAN network with a /16 subnet, the project's
default security group (Neutron's rules: ingress from the group itself), and P ports on
the network spread round robin over the nodes, each with one address and the group, each a
server's on its node: what `atwill bench creates` leaves after P creates. Then
`network_desired` for --builds nodes round robin, CPU per build: each with the shared
per-network lists cleared (a build at a new revision), and at one revision (the lists
shared: what one change's wake-ups cost); and `instances_desired` (the node's P / N
servers).
Run it with PYTHONPATH=OLD/src (a `git archive` of an older commit) for the cost before.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from atwill.controller.db.models import ClusterRevision, Instance, Node
from atwill.controller.db.network import (
    IPAllocation,
    Network,
    Port,
    PortSecurityGroup,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
)
from atwill.controller.db.session import Database, migrate
from atwill.controller.network import desired as network_module
from atwill.controller.servers.desired import instances_desired

try:
    from atwill.controller.network import desired_lists
except ImportError:  # an older tree: every build reads the whole network
    desired_lists = None  # type: ignore[assignment]

PROJECT = "p" * 32


def fill(db: Database, nodes: int, ports: int) -> list[str]:
    with db.session() as session:
        session.merge(ClusterRevision(id=1, revision=10, everyone_at=3))
        for i in range(nodes):
            session.add(Node(id=f"n{i:05}", name=f"node{i:05}",
                             overlay_ip=f"10.99.{i // 250}.{i % 250 + 2}"))
        net = Network(id="net", name="bench", project_id=PROJECT, segmentation_id=77, mtu=1450)
        session.add(net)
        session.add(Subnet(id="sub", network_id="net", ip_version=4, cidr="10.0.0.0/16",
                           gateway_ip="10.0.0.1", project_id=PROJECT))
        group = SecurityGroup(id="sg", name="default", project_id=PROJECT)
        session.add(group)
        session.flush()
        for n, (direction, ethertype, remote) in enumerate((
                ("ingress", "IPv4", "sg"), ("ingress", "IPv6", "sg"),
                ("egress", "IPv4", None), ("egress", "IPv6", None))):
            session.add(SecurityGroupRule(id=f"r{n}", security_group_id="sg", project_id=PROJECT,
                                          direction=direction, ethertype=ethertype,
                                          remote_group_id=remote))
        for i in range(ports):
            port_id = f"port{i:06}"
            session.add(Instance(id=f"vm{i}", name=f"vm{i}", project_id=PROJECT, user_id="u",
                                 vcpus=1, memory_mb=64, disk_gb=1, vm_state="active",
                                 node_id=f"n{i % nodes:05}", node_name=f"node{i % nodes:05}"))
            session.add(Port(id=port_id, network_id="net", project_id=PROJECT,
                             mac_address=f"fa:16:3e:00:{i // 256:02x}:{i % 256:02x}",
                             device_owner="compute:nova", device_id=f"vm{i}",
                             host_id=f"node{i % nodes:05}"))
            session.flush()
            session.add(IPAllocation(port_id=port_id, subnet_id="sub", network_id="net",
                                     ip_address=f"10.0.{2 + i // 250}.{i % 250 + 2}"))
            session.add(PortSecurityGroup(port_id=port_id, security_group_id="sg"))
    return [f"n{i:05}" for i in range(nodes)]


@contextlib.contextmanager
def filled(url: str, nodes: int, ports: int) -> Iterator[tuple[Database, list[str]]]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        migrate(db.engine)
        try:
            yield db, fill(db, nodes, ports)
        finally:
            db.dispose()


def per_build(db: Database, ids: list[str], builds: int, shared: bool) -> float:
    started = time.process_time()
    for k in range(builds):
        if not shared and desired_lists is not None:
            desired_lists.clear()
        with db.session() as session:
            network_module.network_desired(session, session.get(Node, ids[k % len(ids)]))
    return (time.process_time() - started) / builds


def per_instances(db: Database, ids: list[str], builds: int) -> float:
    started = time.process_time()
    for k in range(builds):
        with db.session() as session:
            instances_desired(session, session.get(Node, ids[k % len(ids)]))
    return (time.process_time() - started) / builds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=50)
    parser.add_argument("--ports", type=int, default=1000)
    parser.add_argument("--builds", type=int, default=100)
    parser.add_argument("--url", default="")
    args = parser.parse_args()
    with filled(args.url, args.nodes, args.ports) as (db, ids):
        per_build(db, ids, 3, False)  # warm
        rebuilt = per_build(db, ids, args.builds, False)
        shared = per_build(db, ids, args.builds, True)
        instances = per_instances(db, ids, args.builds)
        tree = "whole network per build (old tree)" if desired_lists is None else "this tree"
        print(f"{args.nodes} nodes, {args.ports} ports, {db.engine.dialect.name}, {tree}: "
              f"network_desired {rebuilt * 1000:.2f} ms CPU a build at a new revision, "
              f"{shared * 1000:.2f} ms at one revision; instances_desired "
              f"({args.ports // args.nodes} a node) {instances * 1000:.2f} ms")


if __name__ == "__main__":
    main()
