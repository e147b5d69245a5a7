"""The scheduler and aggregates: zones, aggregate_instance_extra_specs and capabilities.

Servers are placed at create on nodes joined through the real join API (no agent):
the node chosen is the server's host, which an admin reads back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.api.aggregate_nodes import INVENTORY, JoinedNode
from tests.cloud import Cloud, unique

V = "/compute/v2.1"


@dataclass
class Env:
    cloud: Cloud
    gpu: JoinedNode
    cpu: JoinedNode
    zones: tuple[str, str]
    tag: str
    image: str
    model: str

    def flavor(self, **specs: str) -> str:
        name = unique("aggflv")
        self.cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1",
                             *[a for k, v in specs.items() for a in ("--property", f"{k}={v}")],
                             name)
        return name

    def server(self, flavor: str, zone: str | None = None) -> dict:
        for node in (self.gpu, self.cpu):
            node.beat()
        made = self.cloud.openstack(
            "server", "create", "--flavor", flavor, "--image", self.image, "--no-network",
            *(["--availability-zone", zone] if zone else []), unique("aggsrv"), "-f", "json")
        deadline = time.monotonic() + 20
        while True:
            shown = self.cloud.openstack("server", "show", made["id"], "-f", "json")
            if shown["OS-EXT-SRV-ATTR:host"] or shown["status"] == "ERROR":
                self.cloud.openstack("server", "delete", made["id"])
                return shown
            assert time.monotonic() < deadline, shown
            time.sleep(0.3)


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp("aggsched")
    model = unique("cpumodel")
    gpu = JoinedNode(cloud, tmp, "gpunode")
    cpu = JoinedNode(cloud, tmp, "cpunode", {**INVENTORY, "cpu_model": model})
    zones, tag = (unique("gpuaz"), unique("cpuaz")), unique("t4")
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", unique("aggimg"), "-f", "json")["id"]
    aggs = []
    for node, zone, extra in ((gpu, zones[0], ["--property", f"gpu={tag},other"]),
                              (cpu, zones[1], [])):
        aggs.append(cloud.openstack("aggregate", "create", "--zone", zone, *extra,
                                    unique("agg"), "-f", "json")["name"])
        cloud.openstack("aggregate", "add", "host", aggs[-1], node.name)
    try:
        yield Env(cloud, gpu, cpu, zones, tag, image, model)
    finally:
        for agg, node in zip(aggs, (gpu, cpu), strict=True):
            cloud.openstack("aggregate", "remove", "host", agg, node.name)
            cloud.openstack("aggregate", "delete", agg)
        for node in (gpu, cpu):
            node.remove()
        cloud.openstack("image", "delete", image)


def test_zone_from_aggregates_confines_placement(env: Env) -> None:
    plain = env.flavor()
    for _ in range(2):
        assert env.server(plain, env.zones[0])["OS-EXT-SRV-ATTR:host"] == env.gpu.name
        assert env.server(plain, env.zones[1])["OS-EXT-SRV-ATTR:host"] == env.cpu.name
    shown = env.server(plain, env.zones[1])
    assert shown["OS-EXT-AZ:availability_zone"] == env.zones[1]


def test_aggregate_extra_specs_match_or_no_valid_host(env: Env) -> None:
    wants_gpu = env.flavor(**{"aggregate_instance_extra_specs:gpu": env.tag})
    for _ in range(2):
        assert env.server(wants_gpu)["OS-EXT-SRV-ATTR:host"] == env.gpu.name
    either = env.flavor(**{"aggregate_instance_extra_specs:gpu": f"<or> nope <or> {env.tag}"})
    assert env.server(either)["OS-EXT-SRV-ATTR:host"] == env.gpu.name
    nowhere = env.flavor(**{"aggregate_instance_extra_specs:gpu": unique("a100")})
    failed = env.server(nowhere)
    assert failed["status"] == "ERROR" and not failed["OS-EXT-SRV-ATTR:host"]
    assert "No valid host was found" in str(failed["fault"])
    assert "AggregateInstanceExtraSpecsFilter eliminated" in str(failed["fault"])


def test_capabilities_match_what_the_node_reported(env: Env) -> None:
    model = env.flavor(**{"capabilities:cpu_info:model": env.model})
    for _ in range(2):
        assert env.server(model)["OS-EXT-SRV-ATTR:host"] == env.cpu.name
    never = env.flavor(**{"capabilities:cpu_info:model": unique("nosuchcpu")})
    failed = env.server(never)
    assert failed["status"] == "ERROR"
    assert "ComputeCapabilitiesFilter eliminated" in str(failed["fault"])


def test_bad_scheduler_specs_are_refused_at_flavor_update(env: Env) -> None:
    """From 2.86, as Nova: a capability no host reports is a 400 and nothing is stored;
    any aggregate metadata key and a nested capability are taken."""
    flavor = env.cloud.openstack("flavor", "show", env.flavor(), "-f", "json")["id"]
    path = f"{V}/flavors/{flavor}/os-extra_specs"
    at = {"OpenStack-API-Version": "compute 2.86"}
    with env.cloud.http(env.cloud.token()) as client:
        for bad in ({"capabilities:no_such_thing": "1"},
                    {"capabilities:vcpus_total:nested": "1"},
                    {"aggregate_instance_extra_specs:gpu": env.tag,
                     "capabilities:colour": "red"}):
            resp = client.post(path, json={"extra_specs": bad}, headers=at)
            assert resp.status_code == 400, resp.text
            assert "does not appear to be a valid extra spec" in resp.text, resp.text
        assert client.get(path).json() == {"extra_specs": {}}
        good = {"aggregate_instance_extra_specs:any_key": "<in> t4",
                "capabilities:cpu_info:model": env.model}
        resp = client.post(path, json={"extra_specs": good}, headers=at)
        assert resp.status_code == 200 and resp.json() == {"extra_specs": good}, resp.text
