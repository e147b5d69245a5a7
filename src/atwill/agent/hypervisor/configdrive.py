"""Config drive: meta_data.json and network_data.json as Nova writes them, on an ISO (config-2)."""

from __future__ import annotations

import ipaddress
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atwill.agent.hypervisor.tap import tap_name
from atwill.hostlib.run import run

LABEL = "config-2"
# cloud-init reads "latest" first; 2012-08-10 is the oldest version Nova publishes.
VERSIONS = ("2012-08-10", "latest")


@dataclass(frozen=True)
class PortInfo:
    """One port of the instance as the guest must see it."""

    port_id: str
    mac: str
    network_id: str
    mtu: int = 1500
    # With DHCP the guest asks for its address; without it the address is written here.
    dhcp: bool = True
    ip_address: str | None = None
    cidr: str | None = None
    gateway: str | None = None
    dns: list[str] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)


def meta_data(uuid: str, name: str, hostname: str, project_id: str,
              public_keys: Mapping[str, str] | None = None, availability_zone: str = "nova",
              launch_index: int = 0, meta: Mapping[str, str] | None = None,
              random_seed: str | None = None) -> dict[str, Any]:
    """meta_data.json: identity, keys (both of Nova's forms), metadata."""
    keys = dict(public_keys or {})
    data: dict[str, Any] = {
        "uuid": uuid, "name": name, "hostname": hostname,
        "availability_zone": availability_zone, "project_id": project_id,
        "launch_index": launch_index, "meta": dict(meta or {}),
        "public_keys": keys,
        "keys": [{"name": key, "type": _key_type(value), "data": value}
                 for key, value in keys.items()],
        "devices": [],
    }
    if random_seed is not None:
        data["random_seed"] = random_seed
    return data


def network_data(ports: list[PortInfo]) -> dict[str, Any]:
    """network_data.json: a link per port, a network per port, DNS services."""
    links, networks, dns = [], [], []
    for index, port in enumerate(ports):
        link = tap_name(port.port_id)
        links.append({"id": link, "vif_id": port.port_id, "type": "bridge",
                      "ethernet_mac_address": port.mac, "mtu": port.mtu})
        networks.append(_network(index, link, port))
        dns += [server for server in port.dns if server not in dns]
    return {"links": links, "networks": networks,
            "services": [{"type": "dns", "address": server} for server in dns]}


def _network(index: int, link: str, port: PortInfo) -> dict[str, Any]:
    net: dict[str, Any] = {"id": f"network{index}", "link": link, "network_id": port.network_id}
    if port.dhcp or port.ip_address is None or port.cidr is None:
        net["type"] = "ipv4_dhcp"
        return net
    subnet = ipaddress.ip_network(port.cidr, strict=False)
    v4 = subnet.version == 4
    net.update(type="ipv4" if v4 else "ipv6", ip_address=port.ip_address,
               netmask=str(subnet.netmask), routes=[], services=[
                   {"type": "dns", "address": server} for server in port.dns])
    if port.gateway:
        default = "0.0.0.0" if v4 else "::"
        net["routes"].append({"network": default, "netmask": default, "gateway": port.gateway})
    for destination, nexthop in port.routes:
        route = ipaddress.ip_network(destination, strict=False)
        net["routes"].append({"network": str(route.network_address),
                              "netmask": str(route.netmask), "gateway": nexthop})
    return net


def _key_type(key: str) -> str:
    # Nova's keypair types are "ssh" and "x509"; certificates start with a PEM header.
    return "x509" if key.lstrip().startswith("-----BEGIN") else "ssh"


def build_iso(dest: Path, meta: Mapping[str, Any], network: Mapping[str, Any],
              user_data: bytes | None = None,
              vendor_data: Mapping[str, Any] | None = None) -> None:
    """Write the config drive ISO (label config-2, openstack/<version>/…) to dest."""
    with tempfile.TemporaryDirectory(prefix="atwill-cd-") as tmp:
        root = Path(tmp)
        for version in VERSIONS:
            folder = root / "openstack" / version
            folder.mkdir(parents=True)
            (folder / "meta_data.json").write_text(json.dumps(meta))
            (folder / "network_data.json").write_text(json.dumps(network))
            (folder / "vendor_data.json").write_text(json.dumps(vendor_data or {}))
            if user_data is not None:
                (folder / "user_data").write_bytes(user_data)
        partial = dest.with_name(dest.name + ".partial")
        # The options Nova passes: Rock Ridge and Joliet keep the long lowercase names.
        run(["genisoimage", "-o", str(partial), "-ldots", "-allow-lowercase",
             "-allow-multidot", "-l", "-publisher", "atwill", "-quiet", "-J", "-r",
             "-V", LABEL, str(root)], timeout=60)
        partial.replace(dest)
