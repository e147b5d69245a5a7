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
        time.sleep(0.5)
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
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("heatimg"),
                            "-f", "json")["id"]
    project, user = unique("heatsrvproj"), unique("heatsrvuser")
    cloud.openstack("project", "create", project)
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield {"node": node, "zone": zone, "flavor": flavor, "image": image, "user": user,
               "tmp": tmp}
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

    def server_id() -> str | None:
        status = stack("show", name, "-f", "json")
        assert status["stack_status"] == "CREATE_IN_PROGRESS", status["stack_status_reason"]
        rows = {r["resource_name"]: r for r in stack("resource", "list", name, "-f", "json")}
        return rows["server"]["physical_resource_id"] or None

    server = wait_for(server_id, "the server to be made")
    time.sleep(1.5)
    assert stack("show", name, "-f", "json")["stack_status"] == "CREATE_IN_PROGRESS"
    shown = cloud.openstack("server", "show", server, "-f", "json", user=user)
    assert shown["status"] == "BUILD"
    setup["node"].beat({server: {"state": "running", "rebuild_serial": 0}})
    done = wait_for(lambda: (s := stack("show", name, "-f", "json"))["stack_status"] !=
                    "CREATE_IN_PROGRESS" and s, "the stack to complete")
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
    setup["node"].beat({})
    stack("delete", "--yes", "--wait", name)
    listed = cloud.openstack("server", "list", "-f", "json", user=user)
    assert server not in [s["ID"] for s in listed]
    assert net not in [n["ID"] for n in cloud.openstack("network", "list", "-f", "json",
                                                        user=user)]
