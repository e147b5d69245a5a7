"""Orchestration v1 with the real `openstack stack …` CLI (python-heatclient).

Stacks are made by a project member; the engine calls atwill's own APIs as that
member, so what the stack makes belongs to the member's project.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import MetaData, create_engine, select
from sqlalchemy.engine import Engine

from tests.cloud import Cloud, unique

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
        "password_length": {"value": {"str_split": [",", {"get_attr": ["password", "value"]}]}},
    },
}


@dataclass
class Env:
    """The CLI for what is judged; plain HTTP as the same user for waiting and reading back."""

    cloud: Cloud
    user: str
    project_id: str
    tmp: Path
    api: httpx.Client
    db: Engine

    def stack(self, *args: str, check: bool = True) -> Any:
        return self.cloud.openstack("stack", *args, user=self.user, check=check)

    def create(self, *args: str) -> dict[str, Any]:
        """stack create --wait: the event log the CLI prints, then the stack as JSON."""
        out = self.cloud.openstack("stack", "create", "--wait", "--poll", "1", *args,
                                   "-f", "json", user=self.user, parse=False)
        return json.loads(out[out.index("\n{") + 1:])

    def template(self, body: dict[str, Any], name: str = "t.yaml") -> str:
        path = self.tmp / f"{unique('tmpl')}-{name}"
        path.write_text(yaml.safe_dump(body))
        return str(path)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.api.get(f"/orchestration/v1/{self.project_id}/{path}", params=params,
                            follow_redirects=True)

    def shown(self, name: str) -> dict[str, Any] | None:
        resp = self.get(f"stacks/{name}")
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        return resp.json()["stack"]

    def wait(self, name: str, gone: bool = False, action: str = "") -> dict[str, Any] | None:
        """The stack once its action (or the given one: a rollback follows a failure) has
        ended, or None once deleted; polled every 50 ms."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stack = self.shown(name)
            if stack is None:
                return None
            status = stack["stack_status"]
            if not gone and not status.endswith("_IN_PROGRESS") and status.startswith(
                    action):
                return stack
            time.sleep(0.05)
        raise AssertionError(f"stack {name} still in progress: {stack}")

    def delete(self, name: str) -> None:
        """stack delete (no --wait: heatclient would poll every 5 s); gone within 60 s."""
        self.stack("delete", "--yes", name)
        assert self.wait(name, gone=True) is None

    def resources(self, name: str) -> dict[str, dict[str, Any]]:
        resp = self.get(f"stacks/{name}/resources")
        return {r["resource_name"]: r for r in resp.json()["resources"]}

    def physical(self, name: str) -> dict[str, str]:
        return {n: r["physical_resource_id"] for n, r in self.resources(name).items()}

    def outputs(self, name: str) -> dict[str, Any]:
        stack = self.shown(name) or {}
        return {o["output_key"]: o.get("output_value") for o in stack.get("outputs", [])}

    def networks(self) -> list[str]:
        return [n["name"] for n in self.api.get("/network/v2.0/networks").json()["networks"]]

    def rows(self, *tables: str) -> dict[str, list[tuple]]:
        """Every row of these tables: what a test must leave as it found it."""
        meta = MetaData()
        meta.reflect(self.db, only=list(tables))
        with self.db.connect() as conn:
            return {t: sorted(map(tuple, conn.execute(select(meta.tables[t]))), key=repr)
                    for t in tables}


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    yield from make_env(cloud, tmp_path_factory, "heat")


def make_env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory,
             prefix: str) -> Iterator[Env]:
    project, user = unique(f"{prefix}proj"), unique(f"{prefix}user")
    project_id = cloud.openstack("project", "create", project, "-f", "json")["id"]
    cloud.openstack("user", "create", "--password", "pw-" + user, user)
    cloud.openstack("role", "add", "--project", project, "--user", user, "member")
    cloud.add_user(user, "pw-" + user, project)
    db = create_engine(cloud.db_url())
    try:
        with cloud.http(cloud.token(user)) as api:
            # The project's default security group exists before, as Neutron makes it on
            # sight: tests compare rows before and after.
            api.get("/network/v2.0/security-groups")
            yield Env(cloud, user, project_id, tmp_path_factory.mktemp(prefix), api, db)
    finally:
        db.dispose()
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
    keypair = env.api.get(f"/compute/v2.1/os-keypairs/{key}")
    assert keypair.status_code == 200 and keypair.json()["keypair"]["name"] == key
    template = env.stack("template", "show", name, "-f", "json")
    assert template["resources"]["net"]["type"] == "OS::Neutron::Net"
    assert name in [s["Stack Name"] for s in env.stack("list", "-f", "json")]
    env.delete(name)
    assert env.rows(*TABLES) == before


def test_bad_parameters_are_refused_as_heat_and_make_nothing(env: Env) -> None:
    before = env.rows(*TABLES)
    path = env.template(NETWORK_STACK)
    bad = env.stack("create", "-t", path, "--parameter", "key_name=k", "--parameter",
                    "ssh_port=70000", unique("bad"), check=False)
    assert bad.returncode != 0
    assert "Parameter 'ssh_port' is invalid: 70000 is out of range (min: 1, max: 65535)" in (
        bad.stderr)
    missing = env.stack("create", "-t", path, unique("bad"), check=False)
    assert "The Parameter (key_name) was not provided." in missing.stderr
    unknown = env.stack("create", "-t", path, "--parameter", "key_name=k", "--parameter",
                        "nope=1", unique("bad"), check=False)
    assert "The Parameter (nope) was not defined in template." in unknown.stderr
    assert env.rows(*TABLES) == before


def test_unknown_types_and_functions_are_named_and_make_nothing(env: Env) -> None:
    before = env.rows(*TABLES)
    body = {"heat_template_version": "2016-10-14", "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "odd": {"type": "OS::Atwill::Nonesuch"}}}
    failed = env.stack("create", "-t", env.template(body), unique("bad"), check=False)
    assert "The Resource Type (OS::Atwill::Nonesuch) could not be found." in failed.stderr
    body["resources"]["odd"] = {"type": "OS::Heat::Value", "properties": {
        "value": {"yaql": {"expression": "1"}}}}
    failed = env.stack("create", "-t", env.template(body), unique("bad"), check=False)
    assert 'The function "yaql" (in resources.odd.properties.value)' in failed.stderr
    body["resources"]["odd"] = {"type": "OS::Heat::Value", "properties": {
        "value": {"list_concat": [[1], [2]]}}}
    failed = env.stack("create", "-t", env.template(body), unique("bad"), check=False)
    assert '"list_concat" (in resources.odd.properties.value) is not supported in ' \
        "heat_template_version 2016-10-14" in failed.stderr
    body["resources"]["odd"] = {"type": "OS::Neutron::Net", "properties": {"nmae": "x"}}
    failed = env.stack("create", "-t", env.template(body), unique("bad"), check=False)
    assert "Property error: resources.odd.properties: Unknown Property nmae" in failed.stderr
    assert env.rows(*TABLES) == before


def test_template_validate_describes_parameters(env: Env) -> None:
    shown = env.cloud.openstack("orchestration", "template", "validate", "-t",
                                env.template(NETWORK_STACK), "-f", "json", user=env.user)
    assert shown["Description"] == NETWORK_STACK["description"]
    assert shown["Parameters"]["ssh_port"] == {
        "Type": "Number", "Description": "", "Label": "ssh_port", "NoEcho": "false",
        "Default": 22, "MinValue": 1, "MaxValue": 65535}
    bad = env.cloud.openstack("orchestration", "template", "validate", "-t",
                              env.template({"heat_template_version": "2099-01-01"}),
                              user=env.user, check=False)
    assert bad.returncode != 0 and "The template version is invalid" in bad.stderr


def test_resource_types(env: Env) -> None:
    types = env.cloud.openstack("orchestration", "resource", "type", "list", "-f", "json",
                                user=env.user)
    names = {t["Resource Type"] for t in types}
    assert {"OS::Nova::Server", "OS::Neutron::Net", "OS::Heat::RandomString"} <= names
    shown = env.cloud.openstack("orchestration", "resource", "type", "show",
                                "OS::Neutron::Subnet", "-f", "json", user=env.user)
    assert shown["properties"]["cidr"]["type"] == "string"


FAILING = {
    "heat_template_version": "2021-04-16",
    "resources": {
        "net": {"type": "OS::Neutron::Net"},
        "words": {"type": "OS::Heat::RandomString"},
        "subnet": {"type": "OS::Neutron::Subnet", "depends_on": "words", "properties": {
            "network": {"get_resource": "net"}, "cidr": "10.9.0.0/33"}},
    },
}


def test_a_failing_resource_fails_the_stack_and_rollback_leaves_nothing(env: Env) -> None:
    before = env.rows("networks", "subnets")
    name, rolled = unique("failing"), unique("rolled")
    # Both at once: the one without rollback through `create --wait` (which must fail).
    env.stack("create", "-t", env.template(FAILING), "--enable-rollback", rolled)
    kept = env.stack("create", "-t", env.template(FAILING), "--wait", "--poll", "1", name,
                     check=False)
    assert kept.returncode != 0
    shown = env.wait(name)
    assert shown["stack_status"] == "CREATE_FAILED"
    assert shown["stack_status_reason"].startswith(
        "Resource CREATE failed: BadRequest: resources.subnet: ")
    resources = {n: r["resource_status"] for n, r in env.resources(name).items()}
    assert resources == {"net": "CREATE_COMPLETE", "words": "CREATE_COMPLETE",
                         "subnet": "CREATE_FAILED"}
    env.delete(name)
    shown = env.wait(rolled, action="ROLLBACK")
    assert shown["stack_status"] == "ROLLBACK_COMPLETE"
    assert shown["stack_status_reason"] == "Stack ROLLBACK completed successfully"
    assert env.resources(rolled) == {}
    assert env.rows("networks", "subnets") == before
    statuses = [e["resource_status"] for e in env.stack("event", "list", rolled, "-f", "json")
                if e["resource_name"] == rolled]
    assert statuses == ["CREATE_IN_PROGRESS", "CREATE_FAILED", "ROLLBACK_IN_PROGRESS",
                        "ROLLBACK_COMPLETE"]
    env.delete(rolled)


UPDATABLE = {
    "heat_template_version": "2021-04-16",
    "parameters": {"net_name": {"type": "string"}, "cidr": {"type": "string"}},
    "resources": {
        "net": {"type": "OS::Neutron::Net", "properties": {"name": {"get_param": "net_name"}}},
        "subnet": {"type": "OS::Neutron::Subnet", "properties": {
            "network": {"get_resource": "net"}, "cidr": {"get_param": "cidr"}}},
        "label": {"type": "OS::Heat::Value", "properties": {"value": {"get_param": "cidr"}}},
    },
    "outputs": {"label": {"value": {"get_attr": ["label", "value"]}}},
}


def test_update_in_place_by_replacement_and_rolled_back(env: Env) -> None:
    before = env.rows("networks", "subnets")
    name, net_name = unique("upd"), unique("updnet")
    env.stack("create", "-t", env.template(UPDATABLE), "--parameter", f"net_name={net_name}",
              "--parameter", "cidr=10.61.0.0/24", name)
    assert env.wait(name)["stack_status"] == "CREATE_COMPLETE"
    first = env.physical(name)
    # A network's name may change in place (Heat's update_allowed): same network.
    env.stack("update", "--existing", "--parameter", f"net_name={net_name}-2", name)
    shown = env.wait(name)
    assert shown["stack_status"] == "UPDATE_COMPLETE", shown
    assert shown["stack_status_reason"] == "Stack UPDATE completed successfully"
    assert env.physical(name) == first
    assert f"{net_name}-2" in env.networks()
    # A subnet's cidr may not: a new subnet replaces the old one, which is deleted.
    env.stack("update", "--existing", "--parameter", "cidr=10.62.0.0/24", name)
    assert env.wait(name)["stack_status"] == "UPDATE_COMPLETE"
    second = env.physical(name)
    assert second["net"] == first["net"] and second["subnet"] != first["subnet"]
    subnets = env.api.get("/network/v2.0/subnets", params={"network_id": first["net"]})
    assert [s["cidr"] for s in subnets.json()["subnets"]] == ["10.62.0.0/24"]
    assert env.outputs(name)["label"] == "10.62.0.0/24"
    # A failing update with rollback enabled: the renamed network is named back, the
    # replaced subnet put back, and the stack is ROLLBACK_COMPLETE (as Heat).
    env.stack("update", "--existing", "--rollback", "enabled", "--parameter",
              f"net_name={net_name}-3", "--parameter", "cidr=10.63.0.0/33", name)
    shown = env.wait(name, action="ROLLBACK")
    assert shown["stack_status"] == "ROLLBACK_COMPLETE", shown
    assert env.physical(name) == second
    assert f"{net_name}-2" in env.networks() and f"{net_name}-3" not in env.networks()
    assert env.outputs(name)["label"] == "10.62.0.0/24"
    statuses = [e["resource_status"] for e in env.get(f"stacks/{name}/events").json()["events"]
                if e["resource_name"] == name]
    assert statuses[-4:] == ["UPDATE_IN_PROGRESS", "UPDATE_FAILED", "ROLLBACK_IN_PROGRESS",
                             "ROLLBACK_COMPLETE"]
    # A full update (PUT) with a template that drops a resource deletes it.
    smaller = {**UPDATABLE, "resources": {k: v for k, v in UPDATABLE["resources"].items()
                                          if k != "label"}, "outputs": {}}
    env.stack("update", "-t", env.template(smaller), "--parameter", f"net_name={net_name}",
              "--parameter", "cidr=10.62.0.0/24", name)
    assert env.wait(name)["stack_status"] == "UPDATE_COMPLETE"
    assert env.physical(name) == {"net": second["net"], "subnet": second["subnet"]}
    env.delete(name)
    assert env.rows("networks", "subnets") == before


def test_resource_group_of_five(env: Env) -> None:
    before = env.rows("networks")
    name = unique("group")
    body = {"heat_template_version": "2021-04-16", "resources": {"nets": {
        "type": "OS::Heat::ResourceGroup", "properties": {"count": 5, "resource_def": {
            "type": "OS::Neutron::Net", "properties": {"name": f"{name}-%index%"}}}}},
        "outputs": {"ids": {"value": {"get_attr": ["nets", "refs"]}},
                    "names": {"value": {"get_attr": ["nets", "name"]}},
                    "third": {"value": {"get_attr": ["nets", "resource.2.name"]}}}}
    env.stack("create", "-t", env.template(body), name)
    assert env.wait(name)["stack_status"] == "CREATE_COMPLETE"
    outputs = env.outputs(name)
    assert outputs["names"] == [f"{name}-{i}" for i in range(5)]
    assert outputs["third"] == f"{name}-2" and len(set(outputs["ids"])) == 5
    assert sorted(n for n in env.networks() if n.startswith(name)) == outputs["names"]
    env.delete(name)
    assert env.rows("networks") == before
