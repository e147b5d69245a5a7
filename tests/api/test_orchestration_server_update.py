"""Stack update of an OS::Nova::Server with the real CLI, as Heat: a new flavor resizes the
server in place (flavor_update_policy RESIZE: resize, VERIFY_RESIZE, confirm), a new image
rebuilds it (image_update_policy REBUILD), new user_data replaces it
(user_data_update_policy REPLACE), and IGNORE keeps it; new metadata is set in place.
The server has a key, metadata and a server group as its scheduler hint.

One joined node, agent-less, whose small fake agent (tests/api/test_server_resize.py) does
what the real one does for a resize; its own cloud, as resizing to the same host is
allowed only by a setting (Nova's allow_resize_to_same_host).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.api.aggregate_nodes import JoinedNode
from tests.api.lockout_cloud import own_cloud
from tests.api.test_orchestration_stacks import Env, make_env
from tests.api.test_server_resize import ResizingAgent
from tests.cloud import Cloud, unique

TEMPLATE = {
    "heat_template_version": "2021-04-16",
    "parameters": {"flavor": {"type": "string"}, "image": {"type": "string"},
                   "boot": {"type": "string"},
                   "boot_policy": {"type": "string", "default": "REPLACE"},
                   "role": {"type": "string", "default": "web"}},
    "resources": {
        "key": {"type": "OS::Nova::KeyPair", "properties": {
            "name": {"list_join": ["-", [{"get_param": "OS::stack_name"}, "key"]]}}},
        "group": {"type": "OS::Nova::ServerGroup", "properties": {
            "policies": ["affinity"]}},  # one node: the replacement beside the old
        "net": {"type": "OS::Neutron::Net"},
        "subnet": {"type": "OS::Neutron::Subnet", "properties": {
            "network": {"get_resource": "net"}, "cidr": "10.78.0.0/24"}},
        "server": {"type": "OS::Nova::Server", "depends_on": "subnet", "properties": {
            "flavor": {"get_param": "flavor"}, "image": {"get_param": "image"},
            "networks": [{"network": {"get_resource": "net"}}],
            "user_data_format": "RAW", "user_data": {"get_param": "boot"},
            "user_data_update_policy": {"get_param": "boot_policy"},
            "key_name": {"get_resource": "key"}, "metadata": {"role": {"get_param": "role"}},
            "scheduler_hints": {"group": {"get_resource": "group"}}}},
    },
}


@dataclass
class Setup:
    env: Env
    image: str
    other_image: str
    small: str
    big: str


@pytest.fixture(scope="module")
def cloud(engine: str) -> Iterator[Cloud]:
    yield from own_cloud(engine, ha_auto_evacuate=False, resize_confirm_window=60,
                         allow_resize_to_same_host=True)


@pytest.fixture(scope="module")
def setup(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp("heatrz")
    node = JoinedNode(cloud, tmp, "heatrz")
    agent = ResizingAgent(node)
    data = tmp / "disk.img"
    data.write_bytes(os.urandom(64 * 1024))
    image = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("heatrzimg"),
                            "-f", "json")["id"]
    other = cloud.openstack("image", "create", "--file", str(data), "--disk-format", "raw",
                            "--container-format", "bare", "--public", unique("heatrzimg2"),
                            "-f", "json")["id"]
    small, big = unique("heatrz-small"), unique("heatrz-big")
    cloud.openstack("flavor", "create", "--vcpus", "1", "--ram", "64", "--disk", "1", small)
    cloud.openstack("flavor", "create", "--vcpus", "2", "--ram", "128", "--disk", "2", big)
    envs = make_env(cloud, tmp_path_factory, "heatrz")
    try:
        yield Setup(next(envs), image, other, small, big)
    finally:
        envs.close()
        agent.stop()
        node.remove()
        cloud.openstack("image", "delete", image)
        cloud.openstack("image", "delete", other)
        cloud.openstack("flavor", "delete", small)
        cloud.openstack("flavor", "delete", big)


def server_show(env: Env, server: str) -> dict:
    return env.cloud.openstack("server", "show", server, "-f", "json")


def test_flavor_resizes_image_rebuilds_and_user_data_replaces(setup: Setup) -> None:
    env = setup.env
    before = env.rows("orchestration_stacks", "networks", "subnets")
    name = unique("rzstack")
    path = env.template(TEMPLATE)
    env.stack("create", "-t", path, "--parameter", f"flavor={setup.small}", "--parameter",
              f"image={setup.image}", "--parameter", "boot=#!/bin/sh\necho one", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_COMPLETE", shown
    first = env.physical(name)["server"]
    server = server_show(env, first)
    assert server["key_name"] == f"{name}-key" and server["properties"] == {"role": "web"}
    group = env.cloud.openstack("server", "group", "show", env.physical(name)["group"],
                                "-f", "json")
    assert group["members"] == [first], group
    # The metadata: changed in place.
    env.stack("update", "--existing", "--parameter", "role=db", name)
    assert env.wait(name)["stack_status"] == "UPDATE_COMPLETE"
    assert env.physical(name)["server"] == first
    assert server_show(env, first)["properties"] == {"role": "db"}
    # The flavor: resized and confirmed by the engine, the same server.
    env.stack("update", "--existing", "--parameter", f"flavor={setup.big}", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "UPDATE_COMPLETE", shown["stack_status_reason"]
    assert env.physical(name)["server"] == first
    server = server_show(env, first)
    assert server["status"] == "ACTIVE" and setup.big in str(server["flavor"]), server
    migrations = env.cloud.openstack("server", "migration", "list", "--server", first,
                                     "-f", "json")
    assert [(m["Type"], m["Status"]) for m in migrations] == [("resize", "confirmed")]
    events = [(e["resource_name"], e["resource_status"])
              for e in env.get(f"stacks/{name}/events").json()["events"]]
    assert ("server", "UPDATE_COMPLETE") in events
    # The image: rebuilt, the same server.
    env.stack("update", "--existing", "--parameter", f"image={setup.other_image}", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "UPDATE_COMPLETE", shown["stack_status_reason"]
    assert env.physical(name)["server"] == first
    server = server_show(env, first)
    assert server["status"] == "ACTIVE" and setup.other_image in str(server["image"]), server
    # The user_data: a new server replaces the old one, which is deleted.
    env.stack("update", "--existing", "--parameter", "boot=#!/bin/sh\necho two", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "UPDATE_COMPLETE", shown["stack_status_reason"]
    second = env.physical(name)["server"]
    assert second != first
    group = env.cloud.openstack("server", "group", "show", env.physical(name)["group"],
                                "-f", "json")
    assert group["members"] == [second], group
    assert env.cloud.openstack("server", "show", first, check=False).returncode != 0
    assert setup.big in str(server_show(env, second)["flavor"])
    # user_data_update_policy IGNORE: the change is taken, the server kept.
    env.stack("update", "--existing", "--parameter", "boot=#!/bin/sh\necho three",
              "--parameter", "boot_policy=IGNORE", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "UPDATE_COMPLETE", shown["stack_status_reason"]
    assert env.physical(name)["server"] == second
    # A policy Heat does not know is refused before anything changes.
    bad = dict(TEMPLATE, resources=dict(TEMPLATE["resources"]))
    bad["resources"]["server"] = yaml.safe_load(yaml.safe_dump(TEMPLATE["resources"][
        "server"]))
    bad["resources"]["server"]["properties"]["flavor_update_policy"] = "SOMETIMES"
    refused = env.stack("update", "--existing", "-t", env.template(bad), name, check=False)
    assert refused.returncode != 0
    assert '"SOMETIMES" is not an allowed value [RESIZE, REPLACE]' in refused.stderr
    env.delete(name)
    assert env.cloud.openstack("server", "show", second, check=False).returncode != 0
    assert env.rows("orchestration_stacks", "networks", "subnets") == before
