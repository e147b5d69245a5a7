"""Orchestration: a stack with an OS::Nova::Server completes once its node runs it.

The node is an agent-less FakeNode (tests/api/test_server_image.py) that keeps
beating; its report of the instance as running makes the server ACTIVE.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.api.test_server_image import FakeNode
from tests.cloud import Cloud, unique


def wait_for(check: Any, what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def setup(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("heat-servers")
    zone = unique("heataz")
    node = FakeNode(cloud, tmp, zone)
    data = tmp / "base.img"
    data.write_bytes(os.urandom(64 * 1024))
    flavor = unique("heatflv")
    cloud.openstack("flavor", "create", "--ram", "64", "--disk", "1", "--vcpus", "1", flavor)
    image_name = unique("heatimg")
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", image_name,
                            "-f", "json")["id"]
    project, user = unique("heatsrvproj"), unique("heatsrvuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield {"node": node, "zone": zone, "flavor": flavor, "image": image, "user": user,
               "tmp": tmp, "image_name": image_name, "project_id": project_id}
    finally:
        node.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("flavor", "delete", flavor)
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


def template(setup: dict[str, Any]) -> dict[str, Any]:
    return {
        "heat_template_version": "2021-04-16",
        "parameters": {"flavor": {"type": "string"}, "image": {"type": "string"},
                       "zone": {"type": "string"}},
        "resources": {
            "net": {"type": "OS::Neutron::Net"},
            "subnet": {"type": "OS::Neutron::Subnet", "properties": {
                "network": {"get_resource": "net"}, "cidr": "10.77.0.0/24"}},
            "boot": {"type": "OS::Heat::CloudConfig", "properties": {
                "cloud_config": {"runcmd": ["echo hello"]}}},
            "server": {"type": "OS::Nova::Server", "depends_on": "subnet", "properties": {
                "flavor": {"get_param": "flavor"}, "image": {"get_param": "image"},
                "availability_zone": {"get_param": "zone"},
                "networks": [{"network": {"get_resource": "net"}}],
                "user_data_format": "SOFTWARE_CONFIG",
                "user_data": {"get_resource": "boot"}}},
        },
        "outputs": {"address": {"value": {"get_attr": ["server", "first_address"]}},
                    "networks": {"value": {"get_attr": ["server", "networks"]}}},
    }


# Seed 003's "Simple example", as written but for the image and flavor names.
SEED_SIMPLE = """\
heat_template_version: 2015-04-30
description: Simple template to deploy a single compute instance
resources:
 my_instance:
   type: OS::Nova::Server
   properties:
     image: centos7
     flavor: m1.small
"""


def test_server_stack_completes_when_the_node_runs_it(cloud: Cloud,
                                                      setup: dict[str, Any]) -> None:
    user, name = setup["user"], unique("srvstack")
    path = Path(setup["tmp"]) / f"{name}.yaml"
    path.write_text(yaml.safe_dump(template(setup)))

    def stack(*args: str, **kw: Any) -> Any:
        return cloud.openstack("stack", *args, user=user, **kw)

    stack("create", "-t", str(path), "--parameter", f"flavor={setup['flavor']}",
          "--parameter", f"image={setup['image']}", "--parameter", f"zone={setup['zone']}",
          name)
    # Seed 003's simple template beside it (the node is the only one up to run it).
    seed, seed_path = unique("seed003"), Path(setup["tmp"]) / "seed003.yaml"
    seed_path.write_text(SEED_SIMPLE.replace("centos7", setup["image_name"]).replace(
        "m1.small", setup["flavor"]))
    stack("create", "-t", str(seed_path), seed)

    api = cloud.http(cloud.token(user))
    base = f"/orchestration/v1/{setup['project_id']}/stacks"

    def status(stack_name: str) -> dict[str, Any] | None:
        resp = api.get(f"{base}/{stack_name}", follow_redirects=True)
        return resp.json()["stack"] if resp.status_code == 200 else None

    def server_id(stack_name: str, resource: str) -> str | None:
        shown = status(stack_name)
        assert shown["stack_status"] == "CREATE_IN_PROGRESS", shown["stack_status_reason"]
        rows = api.get(f"{base}/{stack_name}/resources", follow_redirects=True).json()
        return {r["resource_name"]: r["physical_resource_id"]
                for r in rows["resources"]}[resource] or None

    def ended(stack_name: str) -> dict[str, Any] | bool:
        shown = status(stack_name)
        return shown["stack_status"] != "CREATE_IN_PROGRESS" and shown

    server = wait_for(lambda: server_id(name, "server"), "the server to be made")
    seed_server = wait_for(lambda: server_id(seed, "my_instance"), "the seed's server")
    # The engine looks at a building server several times a second: it must keep waiting.
    time.sleep(0.5)
    assert stack("show", name, "-f", "json")["stack_status"] == "CREATE_IN_PROGRESS"
    shown = cloud.openstack("server", "show", server, "-f", "json", user=user)
    assert shown["status"] == "BUILD"
    setup["node"].beat({server: {"state": "running", "rebuild_serial": 0},
                        seed_server: {"state": "running", "rebuild_serial": 0}})
    assert wait_for(lambda: ended(name), "the stack")["stack_status"] == "CREATE_COMPLETE"
    done = stack("show", name, "-f", "json")
    assert done["stack_status"] == "CREATE_COMPLETE", done
    outputs = {o["output_key"]: o["output_value"] for o in done["outputs"]}
    assert outputs["address"].startswith("10.77.0.")
    assert json.dumps(outputs["networks"]).count(outputs["address"]) == 1
    with cloud.http(cloud.token()) as client:
        body = client.get(f"/compute/v2.1/servers/{server}",
                          headers={"OpenStack-API-Version": "compute 2.96"}).json()["server"]
    assert body["OS-EXT-SRV-ATTR:user_data"]
    net = {r["resource_name"]: r["physical_resource_id"]
           for r in stack("resource", "list", name, "-f", "json")}["net"]
    seeded = wait_for(lambda: ended(seed), "the seed's stack")
    assert seeded["stack_status"] == "CREATE_COMPLETE", seeded
    setup["node"].beat({})
    # The seed's server (networks "auto") has its port on the other stack's network:
    # its stack goes first, or that network's deletion may meet the port (409).
    stack("delete", "--yes", seed)
    try:
        wait_for(lambda: status(seed) is None, "the seed stack's deletion")
        stack("delete", "--yes", name)
        wait_for(lambda: status(name) is None, "the stack's deletion")
    except AssertionError:
        left = [(s["stack_name"], s["stack_status"], s["stack_status_reason"])
                for s in (status(name), status(seed)) if s]
        raise AssertionError(f"stacks not deleted: {left}") from None
    api.close()
    listed = cloud.openstack("server", "list", "-f", "json", user=user)
    assert server not in [s["ID"] for s in listed]
    assert net not in [n["ID"] for n in cloud.openstack("network", "list", "-f", "json",
                                                        user=user)]
