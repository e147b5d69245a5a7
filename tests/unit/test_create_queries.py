"""What a server create and a node's instances build read (issue 19, bench creates): a
create's first step reads neither the image's tags and members, nor the network's
subnets, nor the quota limits twice, and the flavor with its extra specs in one
statement; its second step reads the image's properties with the server's row and the
network with its subnets; a build reads each image and network once, not once per server
(session.get finds an object only while something holds it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import delete, event, select

from atwill.config import Settings
from atwill.controller.compute import servers
from atwill.controller.compute.server_input import parse_create
from atwill.controller.db.image import Image
from atwill.controller.db.models import Flavor, FlavorExtraSpec, Instance, Node, Quota
from atwill.controller.db.network import IPAllocation, Network, Port, Subnet
from atwill.controller.db.session import Database
from atwill.controller.servers import create_steps
from atwill.controller.servers import ports as server_ports
from atwill.controller.servers.desired import instances_desired
from atwill.core.errors import Forbidden, NotFound
from atwill.core.microversion import Version
from atwill.core.policy import Credentials
from tests.unit.conftest import migrated_database

CTL: Any = SimpleNamespace(settings=Settings())
P = "queries-project"


@pytest.fixture(scope="module")
def qdb(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    yield from migrated_database(engine, tmp_path_factory.mktemp("queries"))


@pytest.fixture
def cloud(qdb: Database) -> Iterator[Database]:
    """Node a, a flavor, an image, a shared network with a subnet, another project's
    private network; the project's quotas unlimited."""
    with qdb.session() as session:
        session.add(Node(id="id-a", name="node-a", state="up", vcpus=64, memory_mb=65536,
                         local_gb=1000, inventory={}))
        flavor = Flavor(flavorid="one", name="one", ram=256, vcpus=1, disk=1)
        session.add(flavor)
        session.flush()
        session.add(FlavorExtraSpec(flavor_id=flavor.id, key="quota:cpu_shares", value="512"))
        session.add(Image(id="img", name="img", status="active", visibility="public",
                          disk_format="raw", container_format="bare", size=1))
        for resource in ("instances", "cores", "ram"):
            session.add(Quota(project_id=P, resource=resource, hard_limit=-1))
        session.add(Network(id="net", name="net", project_id="admin", shared=True,
                            mtu=1450, segmentation_id=811))
        session.add(Network(id="theirs", name="theirs", project_id="other", mtu=1450,
                            segmentation_id=812))
        session.flush()
        session.add(Subnet(id="sub", network_id="net", ip_version=4, cidr="10.66.0.0/24",
                           project_id="admin", gateway_ip="10.66.0.1",
                           allocation_pools=[{"start": "10.66.0.2", "end": "10.66.0.254"}]))
    yield qdb
    with qdb.session() as session:
        for table in (IPAllocation, Port, Instance, Subnet, Network, Quota, Image,
                      FlavorExtraSpec, Flavor, Node):
            session.execute(delete(table))


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def log(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))
    event.listen(db.engine, "before_cursor_execute", log)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", log)


def _creds() -> Credentials:
    return Credentials(user_id="u", project_id=P, roles=frozenset({"member"}))


def _record(db: Database, network: str = "net") -> list[str]:
    """Step 1 of a create on network, as compute/servers.py makes it: the ids."""
    spec = parse_create({"server": {"name": "s", "flavorRef": "one", "imageRef": "img",
                                    "networks": [{"uuid": network}]}}, Version(2, 1))
    with db.session() as session:
        servers.check_metadata_quota(session, P, spec["metadata"])
        return [i.id for i in create_steps.record(session, CTL, _creds(), spec, "req")]


def _reads(seen: list[str], table: str) -> int:
    """The statements that load the table's rows (not those naming it in a subquery)."""
    return sum(1 for s in seen if s.startswith(f"SELECT {table}."))


def test_a_creates_first_step_reads_what_it_uses_once(cloud: Database) -> None:
    with statements(cloud) as seen:
        ids = _record(cloud)
    # Before: tags and members with the image, subnets with the network, the quota
    # limits read by the metadata check and again by the quota check, the flavor's
    # extra specs in a statement of their own.
    assert _reads(seen, "image_tags") == _reads(seen, "image_members") == 0
    assert _reads(seen, "subnets") == _reads(seen, "flavor_extra_specs") == 0
    assert _reads(seen, "quota_classes") == _reads(seen, "quotas") == 1
    with cloud.session() as session:
        server = session.get(Instance, ids[0])
        assert server is not None
        assert server.flavor["extra_specs"] == {"quota:cpu_shares": "512"}


def test_a_creates_second_step_reads_the_image_and_subnets_with_their_rows(
        cloud: Database) -> None:
    ids = _record(cloud)
    with cloud.session() as session, statements(cloud) as seen:
        create_steps.place(session, CTL, _creds(), ids)
    # Before: the image's properties and the network's subnets in statements of their own.
    assert not [s for s in seen if s.startswith("SELECT images.properties")]
    assert _reads(seen, "subnets") == 0
    with cloud.session() as session:
        server = session.get(Instance, ids[0])
        assert server is not None and server.node_id == "id-a"
        address = session.scalar(select(IPAllocation.ip_address).join(
            Port, Port.id == IPAllocation.port_id).where(Port.device_id == ids[0]))
        assert address == "10.66.0.2"


def test_metadata_past_its_limit_is_still_refused(cloud: Database) -> None:
    with cloud.session() as session:
        session.add(Quota(project_id=P, resource="metadata_items", hard_limit=1))
    with cloud.session() as session:
        servers.check_metadata_quota(session, P, {})
        servers.check_metadata_quota(session, P, {"a": "1"})
        with pytest.raises(Forbidden, match="metadata_items"):
            servers.check_metadata_quota(session, P, {"a": "1", "b": "2"})


def test_a_network_not_visible_is_the_same_404(cloud: Database) -> None:
    for ident in ("theirs", "nowhere"):
        with cloud.session() as session, pytest.raises(NotFound) as refused:
            server_ports.validate(session, _creds(), [{"uuid": ident}])
        assert refused.value.message == f"Network {ident} could not be found."
    with cloud.session() as session:
        assert server_ports.validate(session, _creds(), [{"uuid": "net"}]) == [
            {"network": "net"}]


def _place(db: Database, count: int) -> None:
    for _ in range(count):
        ids = _record(db)
        with db.session() as session:
            create_steps.place(session, CTL, _creds(), ids)


def _build(db: Database) -> tuple[list[dict[str, Any]], int]:
    with db.session() as session, statements(db) as seen:
        node = session.get(Node, "id-a")
        specs = instances_desired(session, node)
    return specs, len(seen)


def test_a_build_reads_each_image_and_network_once(cloud: Database) -> None:
    _place(cloud, 2)
    two, two_reads = _build(cloud)
    _place(cloud, 4)
    six, six_reads = _build(cloud)
    assert len(two) == 2 and len(six) == 6
    assert all(s["image"]["id"] == "img" and s["nics"][0]["mtu"] == 1450
               and s["nics"][0]["fixed_ips"][0]["cidr"] == "10.66.0.0/24" for s in six)
    # Before: the image, the network and its subnets read again for each server.
    assert six_reads == two_reads


def test_another_projects_external_network_is_an_admins_to_attach_to(
        cloud: Database) -> None:
    """Review finding: a member booted on another project's external network that is not
    shared (everyone sees an external network); Nova answers 403
    (ExternalNetworkAttachForbidden, network:attach_external_network is admin's)."""
    with cloud.session() as session:
        session.add(Network(id="ext", name="ext", project_id="other", external=True,
                            shared=False, mtu=1450, segmentation_id=813))
        session.add(Network(id="ext-shared", name="ext-shared", project_id="other",
                            external=True, shared=True, mtu=1450, segmentation_id=814))
    with cloud.session() as session, pytest.raises(Forbidden) as refused:
        server_ports.validate(session, _creds(), [{"uuid": "ext"}])
    assert refused.value.message == (
        "It is not allowed to create an interface on external network ext")
    admin = Credentials(user_id="a", project_id="admin", roles=frozenset({"admin"}),
                        is_admin_project=True)
    with cloud.session() as session:
        assert server_ports.validate(session, admin, [{"uuid": "ext"}]) == [
            {"network": "ext"}]
        assert server_ports.validate(session, _creds(), [{"uuid": "ext-shared"}]) == [
            {"network": "ext-shared"}]
