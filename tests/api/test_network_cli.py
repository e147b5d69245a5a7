"""The seed-003 operator sequence and friends through the real openstack CLI and the SDK."""

from __future__ import annotations

import pytest

from tests.api.test_compute_nonadmin import make_user
from tests.cloud import Cloud, unique


@pytest.fixture(scope="module")
def member(cloud: Cloud) -> str:
    return make_user(cloud, "member")


def test_seed_003_sequence_as_a_member(cloud: Cloud, member: str) -> None:
    def osc(*args: str) -> object:
        return cloud.openstack(*args, user=member)

    net = osc("network", "create", "fabric", "-f", "json")
    assert net["mtu"] == 1370 and net["provider:network_type"] == "vxlan"
    subnet = osc("subnet", "create", "--network", "fabric", "--subnet-range",
                 "192.168.2.0/23", "--dns-nameserver", "10.21.200.2", "subnetfabric",
                 "-f", "json")
    assert subnet["gateway_ip"] == "192.168.2.1"
    assert subnet["dns_nameservers"] == ["10.21.200.2"]
    assert subnet["allocation_pools"] == [{"start": "192.168.2.2", "end": "192.168.3.254"}]
    osc("router", "create", "fabricrouter")
    osc("router", "set", "fabricrouter", "--external-gateway", "public")
    osc("router", "add", "subnet", "fabricrouter", "subnetfabric")
    router = osc("router", "show", "fabricrouter", "-f", "json")
    assert router["external_gateway_info"]["network_id"] == cloud.openstack(
        "network", "show", "public", "-f", "json")["id"]
    osc("security", "group", "rule", "create", "default", "--protocol", "icmp")
    osc("security", "group", "rule", "create", "default", "--protocol", "udp",
        "--dst-port", "1:65535")
    osc("security", "group", "rule", "create", "default", "--protocol", "tcp",
        "--dst-port", "1:65535")
    rules = osc("security", "group", "rule", "list", "default", "-f", "json")
    protocols = sorted(str(r["IP Protocol"]) for r in rules)
    assert protocols == ["None", "None", "None", "None", "icmp", "tcp", "udp"]
    port = osc("port", "create", "--network", "fabric", "p1", "-f", "json")
    assert port["fixed_ips"][0]["ip_address"] == "192.168.2.2" and port["status"] == "DOWN"
    assert port["mac_address"].startswith("fa:16:3e:")
    fip = osc("floating", "ip", "create", "public", "-f", "json")
    address = fip["floating_ip_address"]
    osc("floating", "ip", "set", "--port", "p1", address)
    shown = osc("floating", "ip", "show", address, "-f", "json")
    assert shown["fixed_ip_address"] == "192.168.2.2" and shown["status"] == "ACTIVE"
    assert shown["router_id"] == router["id"]
    osc("floating", "ip", "unset", "--port", address)
    assert osc("floating", "ip", "show", address, "-f", "json")["port_id"] is None
    names = {n["Name"] for n in osc("network", "list", "-f", "json")}
    assert {"fabric", "public"} <= names and "private" not in names
    busy = cloud.openstack("network", "delete", "fabric", user=member, check=False)
    assert busy.returncode != 0
    osc("floating", "ip", "delete", address)
    osc("port", "delete", "p1")
    osc("router", "remove", "subnet", "fabricrouter", "subnetfabric")
    osc("router", "delete", "fabricrouter")
    osc("network", "delete", "fabric")
    assert "fabric" not in {n["Name"] for n in osc("network", "list", "-f", "json")}


def test_quotas_through_the_cli(cloud: Cloud, member: str) -> None:
    project = cloud.users[member]["project"]
    cloud.openstack("quota", "set", "--networks", "1", project)
    shown = {r["Resource"]: r["Limit"] for r in cloud.openstack(
        "quota", "show", project, "-f", "json")}
    assert shown["networks"] == 1 and shown["ports"] == 500
    usage = cloud.openstack("quota", "show", "--usage", "-f", "json", user=member)
    assert {r["Resource"] for r in usage} >= {"networks", "subnets", "routers"}
    name = unique("q")
    cloud.openstack("network", "create", name, user=member)
    over = cloud.openstack("network", "create", unique("q"), user=member, check=False)
    assert over.returncode != 0 and "Quota exceeded for resources: ['network']" in over.stderr
    cloud.openstack("network", "delete", name, user=member)
    cloud.openstack("quota", "set", "--networks", "100", project)


def test_defaults_agents_and_extensions(cloud: Cloud) -> None:
    names = {n["Name"] for n in cloud.openstack("network", "list", "-f", "json")}
    assert {"public", "private"} <= names
    public = cloud.openstack("network", "show", "public", "-f", "json")
    assert public["router:external"] is True and public["mtu"] == 1500
    assert public["provider:network_type"] == "flat"
    router = cloud.openstack("router", "show", "router1", "-f", "json")
    assert router["external_gateway_info"]["enable_snat"] is True
    aliases = {e["Alias"] for e in cloud.openstack("extension", "list", "--network",
                                                   "-f", "json")}
    assert {"router", "external-net", "security-group", "quotas"} <= aliases


def test_sdk(cloud: Cloud, member: str) -> None:
    conn = cloud.sdk(member)
    try:
        net = conn.network.create_network(name=unique("sdk"))
        assert net.mtu == 1370 and not net.is_router_external
        subnet = conn.network.create_subnet(network_id=net.id, ip_version=6,
                                            cidr="2001:db8:1::/64", name="v6")
        assert subnet.gateway_ip == "2001:db8:1::1"
        port = conn.network.create_port(network_id=net.id, port_security_enabled=False)
        assert port.security_group_ids == [] and port.fixed_ips[0]["ip_address"] == \
            "2001:db8:1::2"
        assert conn.network.find_security_group("default").name == "default"
        conn.network.update_port(port, name="renamed")
        assert conn.network.get_port(port.id).name == "renamed"
        found = list(conn.network.ports(network_id=net.id))
        assert [p.id for p in found] == [port.id]
        conn.network.delete_port(port)
        conn.network.delete_subnet(subnet)
        conn.network.delete_network(net)
    finally:
        conn.close()
