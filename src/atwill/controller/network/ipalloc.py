"""Fixed IPs for a port: requested ones checked, the others the lowest free in the pools.

Two writers may pick the same lowest address; the unique (network_id, ip_address)
constraint refuses the second and the transaction helper retries it from scratch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import addresses, ipam
from ...core.errors import BadRequest, Conflict
from ...core.text import shown
from ..db.network import IPAllocation, Network, Port, Subnet
from .common import fault

# Neutron's max_fixed_ips_per_port default.
MAX_FIXED_IPS = 5


def requests(raw: Any) -> list[dict[str, str]] | None:
    """fixed_ips as given: a list of {subnet_id and/or ip_address} (None: defaults)."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise BadRequest("Invalid input for fixed_ips. Reason: a list is required.")
    if len(raw) > MAX_FIXED_IPS:
        raise BadRequest("Exceeded maximum amount of fixed ips per port.")
    for item in raw:
        if not isinstance(item, dict) or not item or set(item) - {"subnet_id", "ip_address"} \
                or not all(isinstance(v, str) for v in item.values()):
            raise BadRequest(f"Invalid input for fixed_ips. Reason: {shown(item)} is not a "
                             "{subnet_id, ip_address} object.")
        if "ip_address" in item:
            addresses.ip_field(item["ip_address"], "fixed_ips")
    return raw


def assign(session: Session, network: Network, port: Port,
           wanted: list[dict[str, str]] | None, router_port: bool = False) -> None:
    """Give the port its addresses (replacing any it had that are not asked for again)."""
    if wanted is None:
        wanted = _defaults(network)
    keep = {(a.subnet_id, a.ip_address) for a in port.fixed_ips}
    chosen: list[tuple[Subnet, str | None]] = [_target(network, w) for w in wanted]
    port.fixed_ips = [a for a in port.fixed_ips
                      if any(s.id == a.subnet_id and ip == a.ip_address for s, ip in chosen)]
    session.flush()
    for subnet, ip in chosen:
        if ip is not None and (subnet.id, ip) in keep:
            continue
        address = _claim(session, network, subnet, ip, router_port)
        port.fixed_ips.append(IPAllocation(subnet_id=subnet.id, network_id=network.id,
                                           ip_address=address))
    session.flush()


def _defaults(network: Network) -> list[dict[str, str]]:
    """One address from the first IPv4 subnet and one from the first IPv6 subnet."""
    out, seen = [], set()
    for subnet in network.subnets:
        if subnet.ip_version not in seen:
            seen.add(subnet.ip_version)
            out.append({"subnet_id": subnet.id})
    return out


def _target(network: Network, request: dict[str, str]) -> tuple[Subnet, str | None]:
    subnet_id, ip = request.get("subnet_id"), request.get("ip_address")
    for subnet in network.subnets:
        if subnet_id is not None and subnet.id != subnet_id:
            continue
        if ip is None or subnet_id is not None or _contains(subnet, ip):
            return subnet, ip
    if subnet_id is not None:
        raise BadRequest(f"Invalid input for operation: Failed to create port on network "
                         f"{network.id}, because fixed_ips included invalid subnet "
                         f"{shown(subnet_id)}.")
    raise BadRequest(f"Invalid input for operation: IP address {ip} is not in any subnet of "
                     f"network {network.id}.")


def _contains(subnet: Subnet, ip: str) -> bool:
    try:
        return ipam.parse_address(ip) in ipam.ipaddress.ip_network(subnet.cidr)
    except ipam.InvalidSubnet:
        raise BadRequest(f"Invalid input for fixed_ips: {shown(ip)} is not a valid IP "
                         "address.") from None


def _claim(session: Session, network: Network, subnet: Subnet, ip: str | None,
           router_port: bool) -> str:
    used = set(session.scalars(select(IPAllocation.ip_address).where(
        IPAllocation.network_id == network.id)))
    if ip is not None:
        try:
            address = str(ipam.check_fixed_ip(ipam.parse_cidr(subnet.cidr), ip,
                                              subnet.gateway_ip, router_port))
        except ipam.InvalidSubnet as err:
            raise BadRequest(f"Invalid input for operation: {err}") from None
        if address in used:
            raise fault(Conflict, "IpAddressAlreadyAllocated", f"IP address {address} already "
                        f"allocated in subnet {subnet.id}")
        return address
    free = ipam.lowest_free(ipam.pools_from_api(subnet.allocation_pools), used)
    if free is None:
        raise fault(Conflict, "IpAddressGenerationFailure", f"No more IP addresses available "
                    f"on network {network.id}.")
    return str(free)
