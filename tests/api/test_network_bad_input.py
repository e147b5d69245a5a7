"""Every bad network request answers a NeutronError with the right status, changing nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.cloud import Cloud, unique

V = "/network/v2.0"
NOPE = "8f14e45f-ceea-4e7a-9c1b-5d0d6a1f3b11"  # fixed: test ids must be the same on every worker


@pytest.fixture(scope="module")
def ids(cloud: Cloud) -> dict[str, str]:
    with cloud.http(cloud.token()) as client:
        token = client.headers["X-Auth-Token"]
        project = client.get("/identity/v3/auth/tokens", headers={
            "X-Subject-Token": token}).json()["token"]["project"]["id"]
        net = client.post(f"{V}/networks", json={"network": {"name": unique("bad")}}).json()
        net_id = net["network"]["id"]
        sub = client.post(f"{V}/subnets", json={"subnet": {
            "network_id": net_id, "cidr": "10.50.0.0/24", "ip_version": 4}}).json()["subnet"]
        group = client.post(f"{V}/security-groups", json={"security_group": {
            "name": unique("bad")}}).json()["security_group"]
        port = client.post(f"{V}/ports", json={"port": {"network_id": net_id, "fixed_ips": [
            {"ip_address": "10.50.0.7"}], "security_groups": [group["id"]]}}).json()["port"]
        rule = {"security_group_id": group["id"], "direction": "ingress", "protocol": "tcp",
                "port_range_min": 22, "port_range_max": 22}
        client.post(f"{V}/security-group-rules", json={"security_group_rule": rule})
        router = client.post(f"{V}/routers", json={"router": {"name": unique("bad")}}).json()
        client.put(f"{V}/routers/{router['router']['id']}/add_router_interface",
                   json={"subnet_id": sub["id"]})
        public = client.get(f"{V}/networks", params={"name": "public"}).json()["networks"]
    return {"net": net_id, "subnet": sub["id"], "port": port["id"], "mac": port["mac_address"],
            "group": group["id"], "router": router["router"]["id"], "public": public[0]["id"],
            "project": project, "token": token}


def subnet(**change: Any) -> dict:
    return {"subnet": {"network_id": "{net}", "ip_version": 4, "cidr": "10.60.0.0/24",
                       **change}}


def rule(**change: Any) -> dict:
    return {"security_group_rule": {"security_group_id": "{group}", "direction": "ingress",
                                    **change}}


CASES: list[tuple[str, str, Any, int]] = [
    ("POST", "/networks", b"{not json", 400),
    ("POST", "/networks", {"net": {}}, 400),
    ("POST", "/networks", {"network": {"bogus": 1}}, 400),
    ("POST", "/networks", {"network": {"admin_state_up": "maybe"}}, 400),
    ("POST", "/networks", {"network": {"name": 5}}, 400),
    ("POST", "/networks", {"network": {"provider:network_type": "vlan"}}, 400),
    ("POST", "/networks", {"network": {"provider:network_type": "flat"}}, 400),
    ("POST", "/networks", {"network": {"provider:network_type": "flat",
                                       "provider:physical_network": "public"}}, 409),
    ("POST", "/networks", {"network": {"provider:segmentation_id": 0}}, 400),
    ("POST", "/networks", {"network": {"mtu": 10}}, 400),
    ("POST", "/networks", b"{" + b" " * (1024 * 1024 + 10) + b"}", 413),
    ("GET", "/networks/fabric-by-name", None, 404),
    ("PUT", f"/networks/{NOPE}", {"network": {"name": "x"}}, 404),
    ("DELETE", "/networks/{net}", None, 409),
    ("GET", "/networks?sort_key=bogus", None, 400),
    ("GET", "/networks?sort_dir=sideways", None, 400),
    ("GET", "/networks?limit=x", None, 400),
    ("GET", "/networks?marker=nope", None, 400),
    ("GET", "/networks?shared=perhaps", None, 400),
    ("POST", "/subnets", subnet(cidr="10.60.0.1/24"), 400),
    ("POST", "/subnets", subnet(cidr="10.60.0.0/33"), 400),
    ("POST", "/subnets", subnet(cidr="bogus"), 400),
    ("POST", "/subnets", subnet(cidr="2001:db8::/64"), 400),
    ("POST", "/subnets", subnet(ip_version=5), 400),
    ("POST", "/subnets", subnet(cidr="10.50.0.128/25"), 400),
    ("POST", "/subnets", subnet(gateway_ip="10.61.0.1"), 400),
    ("POST", "/subnets", subnet(allocation_pools=[{"start": "10.60.1.1", "end": "10.60.1.9"}]),
     400),
    ("POST", "/subnets", subnet(allocation_pools=[{"start": "10.60.0.1", "end": "10.60.0.9"}]),
     400),
    ("POST", "/subnets", subnet(dns_nameservers=["not-an-ip"]), 400),
    ("POST", "/subnets", subnet(host_routes=[{"destination": "x", "nexthop": "10.60.0.9"}]),
     400),
    ("POST", "/subnets", subnet(network_id=NOPE), 404),
    ("DELETE", "/subnets/{subnet}", None, 409),
    ("PUT", "/subnets/{subnet}", {"subnet": {"cidr": "10.70.0.0/24"}}, 400),
    ("POST", "/ports", {"port": {"network_id": NOPE}}, 404),
    ("POST", "/ports", {"port": {"network_id": "{net}", "mac_address": "{mac}"}}, 409),
    ("POST", "/ports", {"port": {"network_id": "{net}", "mac_address": "zz"}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}",
                                 "fixed_ips": [{"ip_address": "10.50.0.7"}]}}, 409),
    ("POST", "/ports", {"port": {"network_id": "{net}",
                                 "fixed_ips": [{"ip_address": "10.99.0.7"}]}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}",
                                 "fixed_ips": [{"ip_address": "10.50.0.1"}]}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "fixed_ips": [{"subnet_id": NOPE}]}},
     400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "fixed_ips": "10.50.0.9"}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "security_groups": [NOPE]}}, 404),
    ("POST", "/ports", {"port": {"network_id": "{net}", "port_security_enabled": False,
                                 "security_groups": ["{group}"]}}, 409),
    ("POST", "/ports", {"port": {"network_id": "{net}", "allowed_address_pairs": [{}]}}, 400),
    ("DELETE", f"/ports/{NOPE}", None, 404),
    ("POST", "/security-group-rules", rule(protocol="tcp", port_range_min=0), 400),
    ("POST", "/security-group-rules", rule(protocol="tcp", port_range_min=90,
                                           port_range_max=80), 400),
    ("POST", "/security-group-rules", rule(protocol="icmp", port_range_min=300), 400),
    ("POST", "/security-group-rules", rule(protocol="bogus"), 400),
    ("POST", "/security-group-rules", rule(remote_ip_prefix="::/0"), 400),
    ("POST", "/security-group-rules", rule(ethertype="IPv6", remote_ip_prefix="10.0.0.0/8"),
     400),
    ("POST", "/security-group-rules", rule(direction="sideways"), 400),
    ("POST", "/security-group-rules", rule(protocol="tcp", port_range_min=22,
                                           port_range_max=22), 409),
    ("POST", "/security-group-rules", rule(remote_group_id=NOPE), 404),
    ("POST", "/security-group-rules", rule(remote_group_id=[]), 400),
    ("POST", "/security-group-rules", rule(remote_group_id={"a": 1}), 400),
    ("POST", "/security-group-rules", rule(protocol="٦"), 400),
    ("POST", "/security-group-rules", {"security_group_rule": {
        "security_group_id": NOPE, "direction": "ingress"}}, 404),
    ("DELETE", "/security-groups/{group}", None, 409),
    ("POST", "/security-groups", {"security_group": {"name": "default"}}, 409),
    ("PUT", "/routers/{router}/add_router_interface", {"subnet_id": "{subnet}"}, 400),
    ("PUT", "/routers/{router}/add_router_interface", {}, 400),
    ("PUT", "/routers/{router}/add_router_interface", {"subnet_id": NOPE}, 404),
    ("PUT", "/routers/{router}/remove_router_interface", {"subnet_id": NOPE}, 404),
    ("PUT", "/routers/{router}", {"router": {"external_gateway_info": {
        "network_id": "{net}"}}}, 400),
    ("PUT", "/routers/{router}", {"router": {"routes": [{
        "destination": "10.9.0.0/24", "nexthop": "192.0.2.1"}]}}, 400),
    ("DELETE", "/routers/{router}", None, 409),
    ("POST", "/floatingips", {"floatingip": {"floating_network_id": "{net}"}}, 400),
    ("POST", "/floatingips", {"floatingip": {"floating_network_id": NOPE}}, 404),
    ("PUT", "/quotas/{project}", {"quota": {"network": -5}}, 400),
    ("PUT", "/quotas/{project}", {"quota": {"bogus": 5}}, 400),
    ("GET", "/extensions/bogus", None, 404),
    # Issue 11, item 8: bad types and values that were TypeErrors (500) or were stored.
    ("POST", "/networks", {"network": {"mtu": 10 ** 20}}, 400),
    ("POST", "/networks", {"network": {"mtu": 9000}}, 400),
    ("PUT", "/networks/{net}", {"network": {"mtu": 10 ** 20}}, 400),
    ("POST", "/networks", {"network": {"tenant_id": []}}, 400),
    ("POST", "/networks", {"network": {"tenant_id": {}}}, 400),
    ("POST", "/networks", {"network": {"project_id": {}, "tenant_id": []}}, 400),
    ("POST", "/networks", {"network": {"tenant_id": "a\nb"}}, 400),
    ("POST", "/networks", {"network": {"tenant_id": "t" * 256}}, 400),
    ("POST", "/subnets", subnet(tenant_id=[]), 400),
    ("POST", "/subnets", subnet(project_id={}), 400),
    ("POST", "/subnets", subnet(gateway_ip=""), 400),
    ("POST", "/subnets", subnet(gateway_ip=[]), 400),
    ("POST", "/subnets", subnet(gateway_ip={}), 400),
    ("PUT", "/subnets/{subnet}", {"subnet": {"gateway_ip": ""}}, 400),
    ("PUT", "/subnets/{subnet}", {"subnet": {"gateway_ip": {}}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "tenant_id": []}}, 400),
    ("POST", "/routers", {"router": {"tenant_id": {}}}, 400),
    ("POST", "/security-groups", {"security_group": {"tenant_id": []}}, 400),
    ("PUT", "/security-groups/{group}", {"security_group": {"name": "default"}}, 409),
    ("POST", "/networks", {"network": {"name": "a\u0000b"}}, 400),
    ("POST", "/networks", {"network": {"description": "a\u001bb"}}, 400),
    ("PUT", "/networks/{net}", {"network": {"name": "a\rb"}}, 400),
    ("POST", "/subnets", subnet(name="a\nb"), 400),
    ("PUT", "/subnets/{subnet}", {"subnet": {"description": "a\u0000"}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "name": "a\u0000b"}}, 400),
    ("PUT", "/ports/{port}", {"port": {"description": "\u001b[2J"}}, 400),
    ("PUT", "/ports/{port}", {"port": {"device_id": "a\nb"}}, 400),
    ("POST", "/routers", {"router": {"name": "a\nb"}}, 400),
    ("PUT", "/routers/{router}", {"router": {"description": "a\u0000"}}, 400),
    ("POST", "/security-groups", {"security_group": {"name": "a\u0000b"}}, 400),
    ("PUT", "/security-groups/{group}", {"security_group": {"description": "a\rb"}}, 400),
    ("POST", "/floatingips", {"floatingip": {"floating_network_id": "{public}",
                                             "description": "a\u0000b"}}, 400),
    ("POST", "/floatingips", {"floatingip": {"floating_network_id": "{public}",
                                             "fixed_ip_address": []}}, 400),
    ("POST", "/floatingips", {"floatingip": {"floating_network_id": "{public}",
                                             "fixed_ip_address": 5}}, 400),
    # Issue 11, item 5: per-request bounds, as Neutron's defaults.
    ("POST", "/networks", {"network": {"tags": [f"t{i}" for i in range(51)]}}, 400),
    ("POST", "/networks", {"network": {"tags": ["t" * 61]}}, 400),
    ("PUT", "/networks/{net}/tags", {"tags": [f"t{i}" for i in range(51)]}, 400),
    ("PUT", "/networks/{net}/tags", {"tags": ["t" * 61]}, 400),
    ("PUT", "/networks/{net}/tags/" + "t" * 61, None, 400),
    ("PUT", "/networks/{net}/tags", {"tags": ["a\u0000b"]}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "fixed_ips": [
        {"subnet_id": "{subnet}"}] * 6}}, 400),
    ("POST", "/ports", {"port": {"network_id": "{net}", "allowed_address_pairs": [
        {"ip_address": f"10.50.0.{i}"} for i in range(100, 111)]}}, 400),
    ("POST", "/subnets", subnet(dns_nameservers=[f"10.60.0.{i}" for i in range(2, 8)]), 400),
    ("POST", "/subnets", subnet(host_routes=[{"destination": f"10.9.{i}.0/24",
                                              "nexthop": "10.60.0.9"} for i in range(21)]),
     400),
    ("PUT", "/subnets/{subnet}", {"subnet": {"host_routes": [
        {"destination": f"10.9.{i}.0/24", "nexthop": "10.50.0.9"} for i in range(21)]}}, 400),
    ("PUT", "/routers/{router}", {"router": {"routes": [
        {"destination": f"10.9.{i}.0/24", "nexthop": "10.50.0.9"} for i in range(31)]}}, 400),
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]} {c[1]} {i}" for i, c in enumerate(CASES)])
def test_bad_input_changes_nothing(cloud: Cloud, ids: dict[str, str], case: tuple) -> None:
    method, path, body, status = case
    # One admin token for the module (the fixture's): a login per case cost an argon2
    # check and a token lookup, and no case is about tokens.
    with cloud.http(ids["token"]) as client:
        values = ids
        before = cloud.db_snapshot()
        if isinstance(body, bytes):
            resp = client.request(method, V + path.format(**values), content=body,
                                  headers={"Content-Type": "application/json"})
        else:
            payload = None if body is None else eval_format(body, values)
            resp = client.request(method, V + path.format(**values), json=payload)
    assert resp.status_code == status, resp.text
    if status != 413:
        assert resp.json()["NeutronError"]["message"]
    after = cloud.db_snapshot()
    after.pop("cluster_revision", None)
    before.pop("cluster_revision", None)
    assert after == before


def eval_format(value: Any, values: dict[str, str]) -> Any:
    if isinstance(value, dict):
        return {k: eval_format(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [eval_format(v, values) for v in value]
    return value.format(**values) if isinstance(value, str) else value


def test_limits_and_owners_accepted(cloud: Cloud) -> None:
    """What the bounds leave allowed: 50 tags of 60 characters (the 51st refused alone),
    any printable tenant_id from an admin, an MTU up to the network's maximum."""
    with cloud.http(cloud.token()) as client:
        tags = [f"{i:02d}" + "t" * 58 for i in range(50)]
        resp = client.post(f"{V}/networks", json={"network": {
            "name": unique("lim"), "tags": tags, "tenant_id": "not a keystone project",
            "mtu": 1200}})
        assert resp.status_code == 201, resp.text
        net = resp.json()["network"]
        assert net["tags"] == tags and net["project_id"] == "not a keystone project"
        assert net["mtu"] == 1200
        resp = client.put(f"{V}/networks/{net['id']}/tags/one-more")
        assert resp.status_code == 400, resp.text
        assert "limit of 50" in resp.json()["NeutronError"]["message"]
        assert client.get(f"{V}/networks/{net['id']}/tags").json()["tags"] == tags
        assert client.delete(f"{V}/networks/{net['id']}").status_code == 204


def test_error_messages_do_not_echo_whole_values(cloud: Cloud, ids: dict[str, str]) -> None:
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/ports", json={"port": {"network_id": ids["net"], "fixed_ips": [
            {"ip_address": "1" * 60000}]}})
        assert resp.status_code == 400
        assert len(resp.json()["NeutronError"]["message"]) < 300
        resp = client.post(f"{V}/ports", json={"port": {"network_id": "n" * 60000}})
        assert resp.status_code == 404
        assert len(resp.json()["NeutronError"]["message"]) < 300
        resp = client.post(f"{V}/networks", json={"network": {"k" * 60000: 1}})
        assert resp.status_code == 400
        assert len(resp.json()["NeutronError"]["message"]) < 300
