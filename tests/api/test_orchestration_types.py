"""Orchestration with the real CLI: one stack with each resource type the other modules do
not make (OS::Nova::Flavor and ServerGroup, OS::Neutron::Port, SecurityGroupRule,
FloatingIP and FloatingIPAssociation, OS::Heat::SoftwareConfig, MultipartMime and None),
read back through the APIs, and deleted without a trace; then parameter_groups,
parameter_defaults, conditions across an update, `stack resource show` and the 302.

The stack is the cloud admin's (in the admin project), as only admins make flavors.
"""

from __future__ import annotations

import email
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine

from tests.api.test_orchestration_stacks import Env
from tests.cloud import Cloud, unique

TABLES = ("orchestration_stacks", "orchestration_resources", "flavors", "flavor_extra_specs",
          "server_groups", "networks", "subnets", "ports", "routers", "floating_ips",
          "security_groups", "security_group_rules")


def template(name: str) -> dict:
    return {
        "heat_template_version": "2021-04-16",
        "resources": {
            "flavor": {"type": "OS::Nova::Flavor", "properties": {
                "name": f"{name}-flavor", "ram": 64, "vcpus": 2, "disk": 1,
                "extra_specs": {"hw:cpu_policy": "dedicated"}}},
            "group": {"type": "OS::Nova::ServerGroup", "properties": {
                "name": f"{name}-group", "policies": ["anti-affinity"]}},
            "net": {"type": "OS::Neutron::Net"},
            "subnet": {"type": "OS::Neutron::Subnet", "properties": {
                "network": {"get_resource": "net"}, "cidr": "10.79.0.0/24"}},
            "router": {"type": "OS::Neutron::Router", "properties": {
                "external_gateway_info": {"network": "public"}}},
            "interface": {"type": "OS::Neutron::RouterInterface", "properties": {
                "router": {"get_resource": "router"}, "subnet": {"get_resource": "subnet"}}},
            "sg": {"type": "OS::Neutron::SecurityGroup", "properties": {
                "name": f"{name}-sg"}},
            "http": {"type": "OS::Neutron::SecurityGroupRule", "properties": {
                "security_group": {"get_resource": "sg"}, "protocol": "tcp",
                "port_range_min": 80, "port_range_max": 80,
                "remote_ip_prefix": "0.0.0.0/0"}},
            "port": {"type": "OS::Neutron::Port", "properties": {
                "network": {"get_resource": "net"},
                "fixed_ips": [{"subnet": {"get_resource": "subnet"},
                               "ip_address": "10.79.0.10"}],
                "security_groups": [{"get_resource": "sg"}]}},
            "fip": {"type": "OS::Neutron::FloatingIP", "properties": {
                "floating_network": "public"}},
            "assoc": {"type": "OS::Neutron::FloatingIPAssociation",
                      "depends_on": "interface", "properties": {
                          "floatingip_id": {"get_resource": "fip"},
                          "port_id": {"get_resource": "port"}}},
            "script": {"type": "OS::Heat::SoftwareConfig", "properties": {
                "config": "#!/bin/sh\necho hello\n"}},
            "cloud": {"type": "OS::Heat::CloudConfig", "properties": {
                "cloud_config": {"runcmd": ["echo cloud"]}}},
            "mime": {"type": "OS::Heat::MultipartMime", "properties": {
                "parts": [{"config": {"get_resource": "script"}},
                          {"config": {"get_resource": "cloud"}}]}},
            "nothing": {"type": "OS::Heat::None", "properties": {"anything": "goes"}},
        },
        "outputs": {
            "address": {"value": {"get_attr": ["fip", "floating_ip_address"]}},
            "port_ips": {"value": {"get_attr": ["port", "fixed_ips"]}},
            "mime": {"value": {"get_attr": ["mime", "config"]}},
        },
    }


@pytest.fixture(scope="module")
def env(cloud: Cloud, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    project_id = cloud.openstack("project", "show", "admin", "-f", "json")["id"]
    db = create_engine(cloud.db_url())
    try:
        with cloud.http(cloud.token()) as api:
            api.get("/network/v2.0/security-groups")  # the default group, made on sight
            yield Env(cloud, "admin", project_id, tmp_path_factory.mktemp("heattypes"), api,
                      db)
    finally:
        db.dispose()


def test_each_remaining_type_is_made_read_back_and_deleted(env: Env) -> None:
    before = env.rows(*TABLES)
    name = unique("types")
    env.stack("create", "-t", env.template(template(name)), name)
    made = env.wait(name)
    assert made["stack_status"] == "CREATE_COMPLETE", made["stack_status_reason"]
    ids = env.physical(name)
    outputs = env.outputs(name)
    openstack = env.cloud.openstack
    flavor = openstack("flavor", "show", ids["flavor"], "-f", "json")
    assert (flavor["name"], flavor["vcpus"], flavor["ram"]) == (f"{name}-flavor", 2, 64)
    assert flavor["properties"] == {"hw:cpu_policy": "dedicated"}
    group = openstack("server", "group", "show", ids["group"], "-f", "json", user=env.user)
    assert group["name"] == f"{name}-group" and group["policy"] == "anti-affinity", group
    rules = openstack("security", "group", "rule", "list", ids["sg"], "--ingress", "-f",
                      "json", user=env.user)
    assert [(r["IP Protocol"], r["Port Range"], r["ID"]) for r in rules] == [
        ("tcp", "80:80", ids["http"])], rules
    port = openstack("port", "show", ids["port"], "-f", "json", user=env.user)
    assert port["security_group_ids"] == [ids["sg"]], port
    assert [ip["ip_address"] for ip in outputs["port_ips"]] == ["10.79.0.10"]
    fip = openstack("floating", "ip", "show", ids["fip"], "-f", "json", user=env.user)
    assert fip["port_id"] == ids["port"] and fip["fixed_ip_address"] == "10.79.0.10", fip
    assert fip["floating_ip_address"] == outputs["address"]
    parts = [p for p in email.message_from_string(outputs["mime"]).walk()
             if not p.is_multipart()]
    assert [(p.get_content_type(), p.get_payload(decode=True).decode()) for p in parts] == [
        ("text/x-shellscript", "#!/bin/sh\necho hello\n"),
        ("text/cloud-config", "#cloud-config\nruncmd:\n- echo cloud\n")]
    assert ids["nothing"]
    env.delete(name)
    assert openstack("flavor", "show", ids["flavor"], check=False).returncode != 0
    assert env.rows(*TABLES) == before


GROUPED = {
    "heat_template_version": "2016-10-14",
    "parameter_groups": [{"label": "sizes", "description": "How big",
                          "parameters": ["size", "wide"]}],
    "parameters": {"size": {"type": "number"}, "wide": {"type": "boolean", "default": False}},
    "conditions": {"is_wide": {"equals": [{"get_param": "wide"}, True]}},
    "resources": {
        "sized": {"type": "OS::Heat::Value", "properties": {"value": {"if": [
            "is_wide", {"get_param": "size"}, 1]}}},
        "only_wide": {"type": "OS::Heat::None", "condition": "is_wide"},
    },
    "outputs": {"sized": {"value": {"get_attr": ["sized", "value"]}}},
}


def test_groups_defaults_conditions_resource_show_and_the_redirect(env: Env) -> None:
    path = env.template(GROUPED)
    shown = env.cloud.openstack("orchestration", "template", "validate", "-t", path,
                                "-f", "json")
    assert shown["ParameterGroups"] == GROUPED["parameter_groups"]
    bad = env.template({**GROUPED, "parameter_groups": [{"label": "sizes",
                                                         "parameters": ["size", "tall"]}]})
    refused = env.stack("create", "-t", bad, unique("grouped"), check=False)
    assert refused.returncode != 0
    assert ("Parameter Groups error: parameter_groups.sizes: The grouped parameter tall does "
            "not reference a valid parameter.") in refused.stderr, refused.stderr
    # The environment's parameter_defaults fill what the template has no default for.
    environment = env.tmp / f"{unique('env')}.yaml"
    environment.write_text("parameter_defaults:\n  size: 7\n")
    name = unique("grouped")
    env.stack("create", "-t", path, "-e", str(environment), name)
    made = env.wait(name)
    assert made["stack_status"] == "CREATE_COMPLETE", made["stack_status_reason"]
    assert env.outputs(name) == {"sized": 1} and set(env.physical(name)) == {"sized"}
    env.stack("update", "--existing", "--parameter", "wide=true", name)
    assert env.wait(name)["stack_status"] == "UPDATE_COMPLETE"
    assert env.outputs(name) == {"sized": 7} and set(env.physical(name)) == {
        "sized", "only_wide"}
    resource = env.stack("resource", "show", name, "sized", "-f", "json")
    assert (resource["resource_name"], resource["resource_type"],
            resource["resource_status"]) == ("sized", "OS::Heat::Value", "UPDATE_COMPLETE")
    assert resource["attributes"]["value"] == 7
    # By name alone, Heat answers 302 to the stack's own URL, which heatclient follows.
    direct = env.api.get(f"/orchestration/v1/{env.project_id}/stacks/{name}")
    assert direct.status_code == 302
    assert direct.headers["location"].endswith(
        f"/orchestration/v1/{env.project_id}/stacks/{name}/{made['id']}")
    env.delete(name)
