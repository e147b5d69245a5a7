"""Seed 003's "Advanced stack" run as written with the real CLI: a server in zone nova, a
1 GB volume attached to it (the seed asks for /dev/vdc), and its first address as the
output; then deleted, leaving neither server nor volume.

Its own cloud, where the seed's names exist (m1.small, an image named centos7, the zone
nova) and the only nodes are this module's: an agent-less compute node and a storage node
whose small fake agent does what the real ones do (runs what it is given, attaches the
volumes its instances list, exports what the storage asks for).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.api.aggregate_nodes import JoinedNode
from tests.api.lockout_cloud import own_cloud
from tests.api.test_orchestration_actions import SEED_ADVANCED
from tests.api.test_orchestration_stacks import TABLES, Env, make_env
from tests.api.volume_nodes import StorageNode
from tests.cloud import Cloud, unique


class SeedAgents:
    """Every 0.2 s: the storage converges, and each node reports its instances running with
    the volumes it is asked to attach."""

    def __init__(self, compute: JoinedNode, storage: StorageNode) -> None:
        self.compute, self.storage = compute, storage
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stopping.wait(0.2):
            try:
                self.storage.converge()
                for node in (self.compute, self.storage):  # either may be given the server
                    with node.http() as client:
                        desired = client.get(f"/cluster/v1/nodes/{node.id}/desired",
                                             params={"wait": 0}).json()
                    node.beat({i["id"]: {
                        "state": "running", "rebuild_serial": i.get("rebuild_serial", 0),
                        "volumes": {v["volume_id"]: "attached"
                                    for v in i.get("volumes") or []}}
                        for i in desired.get("instances", [])})
            except Exception as err:  # noqa: BLE001 - shown when the test fails
                self.errors.append(repr(err))

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)


@dataclass
class Seed:
    env: Env
    agents: SeedAgents


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False)


@pytest.fixture(scope="module")
def seed(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seed]:
    tmp = tmp_path_factory.mktemp("seed003")
    compute, storage = JoinedNode(cloud, tmp, "seedcpu"), StorageNode(cloud, tmp, "seedstor")
    agents = SeedAgents(compute, storage)
    data = tmp / "centos7.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", "centos7",
                            "-f", "json")["id"]
    if cloud.openstack("flavor", "show", "m1.small", check=False).returncode != 0:
        cloud.openstack("flavor", "create", "--ram", "512", "--disk", "5", "--vcpus", "1",
                        "m1.small")
    envs = make_env(cloud, tmp_path_factory, "seed")
    try:
        env = next(envs)
        # The seed's admin makes the project's network before its stacks (seed 003's
        # "neutron net-create fabric"); the server's networks are Nova's "auto".
        net = cloud.openstack("network", "create", unique("fabric"), "-f", "json",
                              user=env.user)["id"]
        cloud.openstack("subnet", "create", "--network", net, "--subnet-range",
                        "192.168.2.0/23", unique("subnetfabric"), user=env.user)
        yield Seed(env, agents)
        # (The cloud is this module's: a failed test's leftovers go with it.)
        cloud.openstack("network", "delete", net, user=env.user, check=False)
    finally:
        envs.close()
        agents.stop()
        compute.remove()
        storage.remove()
        cloud.openstack("image", "delete", image)


def test_seed_003_advanced_template_runs_as_written(seed: Seed) -> None:
    env = seed.env
    before = env.rows(*TABLES, "volumes", "volume_attachments")
    name = unique("seedadv")
    env.stack("create", "-t", env.template(yaml.safe_load(SEED_ADVANCED), "seed003.yaml"),
              name)
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_COMPLETE", (shown["stack_status_reason"],
                                                        seed.agents.errors[-3:])
    ids = env.physical(name)
    server = env.cloud.openstack("server", "show", ids["nova_instance"], "-f", "json",
                                 user=env.user)
    assert server["status"] == "ACTIVE" and server["OS-EXT-AZ:availability_zone"] == "nova"
    assert "m1.small" in str(server["flavor"]) and "centos7" in str(server["image"])
    volume = env.cloud.openstack("volume", "show", ids["cinder_volume"], "-f", "json",
                                 user=env.user)
    assert (volume["status"], volume["size"], volume["availability_zone"]) == (
        "in-use", 1, "nova"), volume
    # The seed's mountpoint /dev/vdc is asked for; the next free name is given, as Nova's
    # libvirt driver has done since Liberty ("no longer honors a user-supplied device").
    assert [(a["server_id"], a["device"]) for a in volume["attachments"]] == [
        (ids["nova_instance"], "/dev/vdb")]
    address = env.outputs(name)["instance_ip"]
    assert address.startswith("192.168.") and address in str(server["addresses"]), server
    env.delete(name)
    assert env.cloud.openstack("volume", "show", ids["cinder_volume"],
                               check=False).returncode != 0
    assert env.cloud.openstack("server", "show", ids["nova_instance"],
                               check=False).returncode != 0
    assert env.rows(*TABLES, "volumes", "volume_attachments") == before
