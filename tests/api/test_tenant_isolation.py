"""filter_tenant_id on an aggregate (Nova's AggregateMultiTenancyIsolation): the nodes
someone brought take only their projects' servers; other nodes stay open to everyone.
Nodes are joined through the real join API; aggregates are set with the openstack CLI.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.aggregate_nodes import JoinedNode
from tests.cloud import Cloud, unique


@dataclass
class Env:
    cloud: Cloud
    owned: JoinedNode
    shared: JoinedNode
    zone: str
    owned_agg: str
    image: str
    flavor: str
    owner: str  # a user of the owning project
    other: str  # a user of another project

    def place(self, user: str, flavor: str | None = None) -> dict:
        for node in (self.owned, self.shared):
            node.beat()
        made = self.cloud.openstack(
            "server", "create", "--flavor", flavor or self.flavor, "--image", self.image,
            "--no-network", "--availability-zone", self.zone, unique("isosrv"), "-f", "json",
            user=user)
        deadline = time.monotonic() + 20
        while True:
            shown = self.cloud.openstack("server", "show", made["id"], "-f", "json")
            if shown["OS-EXT-SRV-ATTR:host"] or shown["status"] == "ERROR":
                self.cloud.openstack("server", "delete", made["id"])
                return shown
            assert time.monotonic() < deadline, shown
            time.sleep(0.3)


def member(cloud: Cloud, prefix: str) -> tuple[str, str, str]:
    """(project name, project id, user) with quota for a few servers."""
    project, user = unique(prefix), unique(prefix + "u")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    return project, project_id, user


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("isolation")
    owned, shared = JoinedNode(cloud, tmp, "ownednode"), JoinedNode(cloud, tmp, "sharednode")
    zone = unique("isoaz")
    (owner_project, owner_id, owner), (other_project, _, other) = (
        member(cloud, "isoown"), member(cloud, "isooth"))
    aggs = [unique("isoagg"), unique("isoagg")]
    cloud.openstack("aggregate", "create", "--zone", zone, "--property",
                    f"filter_tenant_id={owner_id}", "--property", "owner=brought", aggs[0])
    cloud.openstack("aggregate", "create", "--zone", zone, aggs[1])
    cloud.openstack("aggregate", "add", "host", aggs[0], owned.name)
    cloud.openstack("aggregate", "add", "host", aggs[1], shared.name)
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("isoimg"),
                            "-f", "json")["id"]
    flavor = unique("isoflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    try:
        yield Env(cloud, owned, shared, zone, aggs[0], image, flavor, owner, other)
    finally:
        for agg, node in zip(aggs, (owned, shared), strict=True):
            cloud.openstack("aggregate", "remove", "host", agg, node.name)
            cloud.openstack("aggregate", "delete", agg)
        for node in (owned, shared):
            node.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        for project, user in ((owner_project, owner), (other_project, other)):
            cloud.openstack("user", "delete", user)
            cloud.openstack("project", "delete", project)


def test_other_projects_never_land_on_owned_nodes(env: Env) -> None:
    for _ in range(4):
        assert env.place(env.other)["OS-EXT-SRV-ATTR:host"] == env.shared.name


def test_the_owner_lands_on_its_nodes_and_others_get_no_valid_host(env: Env) -> None:
    flavor = unique("isoflv")
    env.cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                        "--property", "aggregate_instance_extra_specs:owner=brought", flavor)
    try:
        assert env.place(env.owner, flavor)["OS-EXT-SRV-ATTR:host"] == env.owned.name
        failed = env.place(env.other, flavor)
        assert failed["status"] == "ERROR" and not failed["OS-EXT-SRV-ATTR:host"]
        assert "AggregateMultiTenancyIsolation eliminated 1 of 1" in str(failed["fault"])
        # Unset, the nodes are open to every project again.
        env.cloud.openstack("aggregate", "unset", "--property", "filter_tenant_id",
                            env.owned_agg)
        assert env.place(env.other, flavor)["OS-EXT-SRV-ATTR:host"] == env.owned.name
    finally:
        env.cloud.openstack("flavor", "delete", flavor)
