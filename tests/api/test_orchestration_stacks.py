"""Orchestration v1 with the real `openstack stack …` CLI (python-heatclient).

Stacks are made by a project member; the engine calls atwill's own APIs as that
member, so what the stack makes belongs to the member's project.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cloud import Cloud, CommandFailed, unique

NETWORK_STACK = {
    "heat_template_version": "2018-08-31",
    "description": "A private network behind a router, a security group and a key",
    "parameters": {
        "cidr": {"type": "string", "default": "10.42.0.0/24",
                 "constraints": [{"allowed_pattern": "[0-9./]+"}]},
        "key_name": {"type": "string"},
        "ssh_port": {"type": "number", "default": 22,
                     "constraints": [{"range": {"min": 1, "max": 65535}}]},
    },
    "resources": {
        "net": {"type": "OS::Neutron::Net",
                "properties": {"name": {"list_join": ["-", [{"get_param": "OS::stack_name"},
                                                            "net"]]}}},
        "subnet": {"type": "OS::Neutron::Subnet", "properties": {
            "network": {"get_resource": "net"}, "cidr": {"get_param": "cidr"},
            "dns_nameservers": ["10.0.0.53"]}},
        "router": {"type": "OS::Neutron::Router"},
        "interface": {"type": "OS::Neutron::RouterInterface", "properties": {
            "router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
        "secgroup": {"type": "OS::Neutron::SecurityGroup", "properties": {
            "rules": [{"protocol": "tcp", "port_range_min": {"get_param": "ssh_port"},
                       "port_range_max": {"get_param": "ssh_port"},
                       "remote_ip_prefix": "0.0.0.0/0"}]}},
        "key": {"type": "OS::Nova::KeyPair", "properties": {
            "name": {"get_param": "key_name"}, "save_private_key": True}},
        "password": {"type": "OS::Heat::RandomString", "properties": {"length": 12}},
    },
    "outputs": {
        "net_id": {"description": "The network", "value": {"get_resource": "net"}},
        "gateway": {"value": {"get_attr": ["subnet", "gateway_ip"]}},
        "summary": {"value": {"str_replace": {
            "template": "net=$NET cidr=$CIDR", "params": {
                "$NET": {"get_attr": ["net", "name"]},
                "$CIDR": {"get_attr": ["subnet", "cidr"]}}}}},
        "password_length": {"value": {"str_split": ["x", {"get_attr": ["password", "value"]}]}},
    },
}


@dataclass
class Env:
    cloud: Cloud
    user: str
    project_id: str
    tmp: Path

    def stack(self, *args: str, check: bool = True) -> Any:
        return self.cloud.openstack("stack", *args, user=self.user, check=check)

    def create(self, *args: str) -> dict[str, Any]:
        """stack create --wait: the event log the CLI prints, then the stack as JSON."""
        out = self.cloud.openstack("stack", "create", "--wait", *args, "-f", "json",
                                   user=self.user, parse=False)
        return json.loads(out[out.index("\n{") + 1:])

    def template(self, body: dict[str, Any], name: str = "t.yaml") -> str:
        path = self.tmp / f"{unique('tmpl')}-{name}"
        path.write_text(yaml.safe_dump(body))
        return str(path)

    def networks(self) -> list[str]:
        return [n["Name"] for n in self.cloud.openstack("network", "list", "-f", "json",
                                                        user=self.user)]

    def rows(self, *tables: str) -> dict[str, list[tuple]]:
        snap = self.cloud.db_snapshot()
        return {t: snap.get(t, []) for t in tables}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    project, user = unique("heatproj"), unique("heatuser")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    try:
        yield Env(cloud, user, project_id, tmp_path_factory.mktemp("heat"))
    finally:
        cloud.openstack("user", "delete", user)
        cloud.openstack("project", "delete", project)


TABLES = ("orchestration_stacks", "orchestration_resources", "orchestration_events",
          "networks", "subnets", "routers", "security_groups", "keypairs")


def test_version_discovery_and_catalog(env: Env) -> None:
    with env.cloud.http() as client:
        resp = client.get("/orchestration/")
    assert resp.status_code == 300
    assert resp.json()["versions"][0]["id"] == "v1.0"
    catalog = env.cloud.openstack("catalog", "show", "orchestration", "-f", "json",
                                  user=env.user)
    assert f"/orchestration/v1/{env.project_id}" in json.dumps(catalog["endpoints"])


def test_network_stack_create_show_outputs_resources_events_delete(env: Env) -> None:
    name, key = unique("netstack"), unique("heatkey")
    # The project's default security group exists before, as Neutron makes it on sight.
    env.cloud.openstack("security", "group", "list", user=env.user)
    before = env.rows(*TABLES)
    made = env.create("-t", env.template(NETWORK_STACK), "--parameter", f"key_name={key}",
                      name)
    assert made["stack_status"] == "CREATE_COMPLETE", made
    assert made["stack_status_reason"] == "Stack CREATE completed successfully"
    shown = env.stack("show", name, "-f", "json")
    assert shown["id"] == made["id"] and shown["parameters"]["key_name"] == key
    assert shown["parameters"]["ssh_port"] == "22"
    outputs = {o["output_key"]: o["output_value"] for o in shown["outputs"]}
    assert outputs["gateway"] == "10.42.0.1"
    assert outputs["summary"] == f"net={name}-net cidr=10.42.0.0/24"
    assert len(outputs["password_length"]) == 1 and len(outputs["password_length"][0]) == 12
    assert f"{name}-net" in env.networks()
    net = env.stack("output", "show", name, "net_id", "-f", "json")
    assert net["output_value"] == outputs["net_id"]
    listed = env.stack("output", "list", name, "-f", "json")
    assert {o["output_key"] for o in listed} == set(outputs)
    resources = {r["resource_name"]: r for r in env.stack("resource", "list", name,
                                                          "-f", "json")}
    assert set(resources) == set(NETWORK_STACK["resources"])
    assert {r["resource_status"] for r in resources.values()} == {"CREATE_COMPLETE"}
    assert resources["net"]["physical_resource_id"] == outputs["net_id"]
    assert resources["key"]["physical_resource_id"] == key
    events = env.stack("event", "list", name, "-f", "json")
    assert events[0]["resource_name"] == name and events[-1]["resource_name"] == name
    assert events[-1]["resource_status"] == "CREATE_COMPLETE"
    assert ("subnet", "CREATE_COMPLETE") in [(e["resource_name"], e["resource_status"])
                                              for e in events]
    keypair = env.cloud.openstack("keypair", "show", key, "-f", "json", user=env.user)
    assert keypair["name"] == key
    template = env.stack("template", "show", name, "-f", "json")
    assert template["resources"]["net"]["type"] == "OS::Neutron::Net"
    assert name in [s["Stack Name"] for s in env.stack("list", "-f", "json")]
    env.stack("delete", "--yes", "--wait", name)
    assert env.stack("show", name, check=False).returncode != 0
    assert env.rows(*TABLES) == before
