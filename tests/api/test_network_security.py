"""Issue 11 on the network API: strict addresses (no scope ids or text around them) in
every tenant field, and Neutron's network-owner rule for sensitive port attributes."""

from __future__ import annotations

from collections.abc import Callable
from itertools import count
from typing import Any

import pytest

from tests.api.test_compute_nonadmin import make_project, make_user
from tests.cloud import Cloud, unique

V = "/network/v2.0"
INJECT = "fe80::1%x\n}\nflush ruleset"

# Values no address field may take: scope ids (with the nftables injection), text or
# whitespace around an address, prefixes where an address is wanted, other JSON types.
BAD_IPS: list[Any] = [
    INJECT, "fe80::1%eth0", "fd00:50::5%eth0", "fd00:50::5%x\n}\nflush ruleset",
    " 10.50.0.5", "10.50.0.5 ", "10.50.0.5\n", "10.50.0.5\t", "10.50.0.5/32", "10.50.0.5;",
    "10.50.0.5 10.50.0.6", "", "x" * 5000, 5, 5.5, True, [], {}, ["10.50.0.5"],
    {"ip": "10.50.0.5"},
]
BAD_PREFIXES: list[Any] = [
    INJECT, "fd00:50::%x\n}\nflush ruleset/64", "fe80::%eth0/64", "10.60.0.0/24\n",
    " 10.60.0.0/24", "10.60.0.0 /24", "10.60.0.0/ 24", "10.60.0.0/24 x", "10.60.0.0/+24",
    "10.60.0.0/２４", "", "x" * 5000, 24, [], {}, ["10.60.0.0/24"],
]
# Fields taking an address or a prefix: the address list less its one good prefix.
BAD_EITHER = [v for v in BAD_IPS if v != "10.50.0.5/32"] + BAD_PREFIXES
BAD_MACS: list[Any] = ["fa:16:3e:00:00:01\n", " fa:16:3e:00:00:01", "fa:16:3e:00:00:01 x",
                       "fa:16:3e:00:00:01%x", "fa:16:3e:00:00", "", 5, [], {}]


def family(value: Any) -> int:
    return 6 if ":" in str(value) else 4


@pytest.fixture(scope="module")
def ids(cloud: Cloud) -> dict[str, str]:
    """A dual-stack network with a port, an empty network, a router and a floating IP."""
    with cloud.http(cloud.token()) as client:
        def post(path: str, key: str, body: dict) -> dict:
            resp = client.post(f"{V}/{path}", json={key: body})
            assert resp.status_code == 201, resp.text
            return resp.json()[key]
        net = post("networks", "network", {"name": unique("strict")})["id"]
        empty = post("networks", "network", {"name": unique("strict")})["id"]
        sub = post("subnets", "subnet", {"network_id": net, "cidr": "10.50.0.0/24",
                                         "ip_version": 4})["id"]
        post("subnets", "subnet", {"network_id": net, "cidr": "fd00:50::/64",
                                   "ip_version": 6})
        port = post("ports", "port", {"network_id": net})["id"]
        group = post("security-groups", "security_group", {"name": unique("strict")})["id"]
        router = post("routers", "router", {"name": unique("strict")})["id"]
        resp = client.put(f"{V}/routers/{router}/add_router_interface", json={"subnet_id": sub})
        assert resp.status_code == 200, resp.text
        public = client.get(f"{V}/networks", params={"name": "public"}).json()["networks"]
        fip = post("floatingips", "floatingip", {"floating_network_id": public[0]["id"]})
    return {"net": net, "empty": empty, "subnet": sub, "port": port, "group": group,
            "router": router, "public": public[0]["id"], "fip": fip["id"]}


Request = tuple[str, str, dict]
FIELDS: dict[str, tuple[list[Any], Callable[[dict[str, str], Any], Request]]] = {
    "port fixed_ips ip_address": (BAD_IPS, lambda i, v: ("POST", "/ports", {"port": {
        "network_id": i["net"], "fixed_ips": [{"ip_address": v}]}})),
    "port update fixed_ips ip_address": (BAD_IPS, lambda i, v: ("PUT", f"/ports/{i['port']}", {
        "port": {"fixed_ips": [{"ip_address": v}]}})),
    "port allowed_address_pairs ip_address": (BAD_EITHER, lambda i, v: (
        "POST", "/ports", {"port": {"network_id": i["net"],
                                    "allowed_address_pairs": [{"ip_address": v}]}})),
    "port update allowed_address_pairs ip_address": (BAD_EITHER, lambda i, v: (
        "PUT", f"/ports/{i['port']}", {"port": {"allowed_address_pairs": [{"ip_address": v}]}})),
    "port allowed_address_pairs mac_address": (BAD_MACS, lambda i, v: (
        "PUT", f"/ports/{i['port']}", {"port": {"allowed_address_pairs": [
            {"ip_address": "10.50.0.200", "mac_address": v}]}})),
    "port mac_address": (BAD_MACS, lambda i, v: ("POST", "/ports", {"port": {
        "network_id": i["net"], "mac_address": v}})),
    "port update mac_address": (BAD_MACS, lambda i, v: ("PUT", f"/ports/{i['port']}", {
        "port": {"mac_address": v}})),
    "rule remote_ip_prefix": (BAD_EITHER, lambda i, v: (
        "POST", "/security-group-rules", {"security_group_rule": {
            "security_group_id": i["group"], "direction": "ingress",
            "ethertype": f"IPv{family(v)}", "remote_ip_prefix": v}})),
    "subnet cidr": (BAD_PREFIXES + ["0.0.0.0/0", "::/0"], lambda i, v: ("POST", "/subnets", {
        "subnet": {"network_id": i["empty"], "ip_version": family(v), "cidr": v}})),
    "subnet gateway_ip": (BAD_IPS, lambda i, v: ("POST", "/subnets", {"subnet": {
        "network_id": i["empty"], "ip_version": family(v), "gateway_ip": v,
        "cidr": "fd00:50::/64" if family(v) == 6 else "10.50.0.0/24"}})),
    "subnet allocation_pools start": (BAD_IPS, lambda i, v: ("POST", "/subnets", {"subnet": {
        "network_id": i["empty"], "ip_version": 4, "cidr": "10.50.0.0/24",
        "allocation_pools": [{"start": v, "end": "10.50.0.20"}]}})),
    "subnet allocation_pools end": (BAD_IPS, lambda i, v: ("POST", "/subnets", {"subnet": {
        "network_id": i["empty"], "ip_version": 4, "cidr": "10.50.0.0/24",
        "allocation_pools": [{"start": "10.50.0.2", "end": v}]}})),
    "subnet dns_nameservers": (BAD_IPS, lambda i, v: ("POST", "/subnets", {"subnet": {
        "network_id": i["empty"], "ip_version": 4, "cidr": "10.50.0.0/24",
        "dns_nameservers": [v]}})),
    "subnet host_routes destination": (BAD_PREFIXES, lambda i, v: ("POST", "/subnets", {
        "subnet": {"network_id": i["empty"], "ip_version": 4, "cidr": "10.50.0.0/24",
                   "host_routes": [{"destination": v, "nexthop": "10.50.0.9"}]}})),
    "subnet host_routes nexthop": (BAD_IPS, lambda i, v: ("POST", "/subnets", {"subnet": {
        "network_id": i["empty"], "ip_version": 4, "cidr": "10.50.0.0/24",
        "host_routes": [{"destination": "10.9.0.0/24", "nexthop": v}]}})),
    "subnet update gateway_ip": (BAD_IPS, lambda i, v: ("PUT", f"/subnets/{i['subnet']}", {
        "subnet": {"gateway_ip": v}})),
    "subnet update dns_nameservers": (BAD_IPS, lambda i, v: (
        "PUT", f"/subnets/{i['subnet']}", {"subnet": {"dns_nameservers": [v]}})),
    "subnet update host_routes": (BAD_PREFIXES, lambda i, v: (
        "PUT", f"/subnets/{i['subnet']}", {"subnet": {"host_routes": [
            {"destination": v, "nexthop": "10.50.0.9"}]}})),
    "floatingip floating_ip_address": (BAD_IPS, lambda i, v: ("POST", "/floatingips", {
        "floatingip": {"floating_network_id": i["public"], "floating_ip_address": v}})),
    "floatingip fixed_ip_address": (BAD_IPS, lambda i, v: ("POST", "/floatingips", {
        "floatingip": {"floating_network_id": i["public"], "fixed_ip_address": v}})),
    "floatingip update fixed_ip_address": (BAD_IPS, lambda i, v: (
        "PUT", f"/floatingips/{i['fip']}", {"floatingip": {"port_id": i["port"],
                                                           "fixed_ip_address": v}})),
    "router external_fixed_ips": (BAD_IPS, lambda i, v: ("PUT", f"/routers/{i['router']}", {
        "router": {"external_gateway_info": {"network_id": i["public"],
                                             "external_fixed_ips": [{"ip_address": v}]}}})),
    "router routes destination": (BAD_PREFIXES, lambda i, v: (
        "PUT", f"/routers/{i['router']}", {"router": {"routes": [
            {"destination": v, "nexthop": "10.50.0.9"}]}})),
    "router routes nexthop": (BAD_IPS, lambda i, v: ("PUT", f"/routers/{i['router']}", {
        "router": {"routes": [{"destination": "10.9.0.0/24", "nexthop": v}]}})),
}


def rows(cloud: Cloud) -> dict[str, list[tuple]]:
    snapshot = cloud.db_snapshot()
    snapshot.pop("cluster_revision", None)
    return snapshot


@pytest.mark.parametrize("field", list(FIELDS))
def test_bad_addresses_refused(cloud: Cloud, ids: dict[str, str], field: str) -> None:
    """Every bad value on every address field: 400 with a short message, nothing stored."""
    values, build = FIELDS[field]
    before = rows(cloud)
    wrong = []
    with cloud.http(cloud.token()) as client:
        for value in values:
            method, path, body = build(ids, value)
            resp = client.request(method, V + path, json=body)
            message = resp.json().get("NeutronError", {}).get("message", "")
            if resp.status_code != 400 or not message or len(message) > 400:
                wrong.append((value, resp.status_code, resp.text[:300]))
    assert not wrong, wrong
    assert rows(cloud) == before


def test_good_addresses_still_accepted(cloud: Cloud, ids: dict[str, str]) -> None:
    """The strict parser keeps what Neutron accepts: plain and expanded IPv6, masks."""
    with cloud.http(cloud.token()) as client:
        resp = client.post(f"{V}/ports", json={"port": {"network_id": ids["net"], "fixed_ips": [
            {"ip_address": "10.50.0.77"}, {"ip_address": "FD00:50:0:0:0:0:0:77"}],
            "allowed_address_pairs": [{"ip_address": "10.50.0.0/28"},
                                      {"ip_address": "fd00:50::99"}]}})
        assert resp.status_code == 201, resp.text
        port = resp.json()["port"]
        assert {f["ip_address"] for f in port["fixed_ips"]} == {"10.50.0.77", "fd00:50::77"}
        resp = client.post(f"{V}/security-group-rules", json={"security_group_rule": {
            "security_group_id": ids["group"], "direction": "ingress",
            "remote_ip_prefix": "192.0.2.7"}})
        assert resp.status_code == 201, resp.text
        assert resp.json()["security_group_rule"]["remote_ip_prefix"] == "192.0.2.7/32"
        assert client.delete(f"{V}/ports/{port['id']}").status_code == 204


# Neutron's admin_or_network_owner attributes: on another project's (shared) network only
# the administrator and the network's owner may choose them.
SENSITIVE: dict[str, Callable[[int], dict[str, Any]]] = {
    "mac_address": lambda n: {"mac_address": f"fa:16:3e:77:{n // 256:02x}:{n % 256:02x}"},
    "fixed_ips:ip_address": lambda n: {"fixed_ips": [{"ip_address": f"10.77.{n // 250}."
                                                                    f"{n % 250 + 2}"}]},
    "allowed_address_pairs": lambda n: {"allowed_address_pairs": [
        {"ip_address": f"10.77.9.{n % 250 + 2}"}]},
    "port_security_enabled": lambda n: {"port_security_enabled": False,
                                        "security_groups": []},
}
NUMBERS = count(1)


@pytest.fixture(scope="module")
def shared(cloud: Cloud) -> dict[str, Any]:
    """A shared network owned by project A; a member of A (the owner) and of B."""
    owner_project, other_project = make_project(cloud), make_project(cloud)
    owner, other = make_user(cloud, "member", owner_project), \
        make_user(cloud, "member", other_project)
    with cloud.http(cloud.token()) as admin:
        net = admin.post(f"{V}/networks", json={"network": {
            "name": unique("shared"), "shared": True, "project_id": owner_project[1]}})
        assert net.status_code == 201, net.text
        net_id = net.json()["network"]["id"]
        sub = admin.post(f"{V}/subnets", json={"subnet": {
            "network_id": net_id, "cidr": "10.77.0.0/16", "ip_version": 4,
            "project_id": owner_project[1]}})
        assert sub.status_code == 201, sub.text
    return {"net": net_id, "subnet": sub.json()["subnet"]["id"],
            "tokens": {"admin": cloud.token(), "owner": cloud.token(owner),
                       "other": cloud.token(other)}}


@pytest.mark.parametrize("attribute", list(SENSITIVE))
def test_sensitive_port_attributes_on_shared_network(cloud: Cloud, shared: dict[str, Any],
                                                     attribute: str) -> None:
    tokens, body = shared["tokens"], SENSITIVE[attribute]
    with cloud.http(tokens["other"]) as other:
        before = rows(cloud)
        resp = other.post(f"{V}/ports", json={"port": {"network_id": shared["net"],
                                                       **body(next(NUMBERS))}})
        assert resp.status_code == 403, resp.text
        assert f"create_port:{attribute}" in resp.json()["NeutronError"]["message"]
        assert rows(cloud) == before
        # A subnet alone is no chosen address: the other project may still attach.
        plain = other.post(f"{V}/ports", json={"port": {"network_id": shared["net"],
                                                        "fixed_ips": [
                                                            {"subnet_id": shared["subnet"]}]}})
        assert plain.status_code == 201, plain.text
        port_id = plain.json()["port"]["id"]
        before = rows(cloud)
        resp = other.put(f"{V}/ports/{port_id}", json={"port": body(next(NUMBERS))})
        assert resp.status_code == 403, resp.text
        assert f"update_port:{attribute}" in resp.json()["NeutronError"]["message"]
        assert rows(cloud) == before
    with cloud.http(tokens["admin"]) as admin:
        resp = admin.put(f"{V}/ports/{port_id}", json={"port": body(next(NUMBERS))})
        assert resp.status_code == 200, resp.text
    for who in ("owner", "admin"):
        with cloud.http(tokens[who]) as client:
            resp = client.post(f"{V}/ports", json={"port": {"network_id": shared["net"],
                                                            **body(next(NUMBERS))}})
            assert resp.status_code == 201, (who, resp.text)
            made = resp.json()["port"]["id"]
            resp = client.put(f"{V}/ports/{made}", json={"port": body(next(NUMBERS))})
            assert resp.status_code == 200, (who, resp.text)
            assert client.delete(f"{V}/ports/{made}").status_code == 204
    with cloud.http(tokens["other"]) as other:
        assert other.delete(f"{V}/ports/{port_id}").status_code == 204
