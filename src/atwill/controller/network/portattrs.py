"""A port's writable attributes, checked: MAC, device, binding, groups and address pairs."""

from __future__ import annotations

from typing import Any

from ...core import addresses
from ...core.errors import BadRequest, Conflict, Forbidden
from ...core.policy import Credentials
from ..db.network import Network, Port
from . import access
from .common import fault, flag, string_list, text

# Neutron's max_allowed_address_pair default.
MAX_PAIRS = 10


def parse(creds: Credentials, data: dict[str, Any]) -> dict[str, Any]:
    """Column values for the attributes given (absent ones are left out)."""
    attrs: dict[str, Any] = {}
    for key in ("name", "description", "device_owner", "device_id"):
        if key in data:
            attrs[key] = text(data, key)
    if attrs.get("device_owner", "").startswith("network:"):
        access.check(creds, "network:create_port:device_owner", None)
    for key in ("admin_state_up", "port_security_enabled"):
        if key in data:
            attrs[key] = flag(data, key, True)
    if "binding:host_id" in data:
        access.check(creds, "network:create_port:binding", None)
        attrs["host_id"] = text(data, "binding:host_id")
    if data.get("binding:vnic_type", "normal") != "normal" or data.get("binding:profile"):
        raise BadRequest("Only binding:vnic_type 'normal' and an empty binding:profile are "
                         "supported.")
    if data.get("extra_dhcp_opts"):
        raise BadRequest("extra_dhcp_opts are not supported.")
    if data.get("mac_address") is not None:
        attrs["mac_address"] = addresses.mac_field(data["mac_address"], "mac_address")
    if "security_groups" in data:
        attrs["security_groups"] = string_list(data, "security_groups")
    if "allowed_address_pairs" in data:
        attrs["allowed_address_pairs"] = pairs(data["allowed_address_pairs"])
    return attrs


def pairs(raw: Any) -> list[dict[str, str]]:
    """[{ip_address (an address or CIDR), mac_address (optional)}], without duplicates."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRequest("Invalid input for allowed_address_pairs: a list is required.")
    if len(raw) > MAX_PAIRS:
        raise BadRequest(f"The number of allowed address pair exceeds the maximum "
                         f"{MAX_PAIRS}.")
    out, seen = [], set()
    for pair in raw:
        if not isinstance(pair, dict) or "ip_address" not in pair or \
                set(pair) - {"ip_address", "mac_address"}:
            raise BadRequest("Invalid input for allowed_address_pairs: each pair needs "
                             "ip_address and may have mac_address.")
        network = addresses.prefix_field(pair["ip_address"], "allowed_address_pairs")
        entry = {"ip_address": pair["ip_address"]}
        if pair.get("mac_address") is not None:
            entry["mac_address"] = addresses.mac_field(pair["mac_address"],
                                                       "allowed_address_pairs")
        if network in seen:
            raise BadRequest(f"Invalid input for allowed_address_pairs: duplicate address "
                             f"{pair['ip_address']}.")
        seen.add(network)
        out.append(entry)
    return out


def check_pairs(port: Port) -> None:
    if port.allowed_address_pairs and not port.port_security_enabled:
        raise fault(Conflict, "AddressPairAndPortSecurityRequired", "Port Security must be "
                    "enabled in order to have allowed address pairs on a port.")


def check_network_owner(creds: Credentials, network: Network, attrs: dict[str, Any],
                        wanted: list[dict[str, str]] | None, action: str,
                        port: Port | None = None) -> None:
    """Neutron's admin_or_network_owner attributes: on another project's network (a shared
    one) only the administrator or the network's owner may choose a MAC, an address,
    address pairs, or turn port security off; others could spoof their neighbours."""
    if creds.is_admin or network.project_id == creds.project_id:
        return
    held = {a.ip_address for a in port.fixed_ips} if port is not None else set()
    chosen = {_plain(item["ip_address"]) for item in wanted or [] if "ip_address" in item}
    mac = attrs.get("mac_address")
    refused = {
        "mac_address": mac is not None and (port is None or mac != port.mac_address),
        "fixed_ips:ip_address": bool(chosen - held),
        "allowed_address_pairs": bool(attrs.get("allowed_address_pairs")),
        "port_security_enabled": attrs.get("port_security_enabled") is False and
        (port is None or port.port_security_enabled),
    }
    for attribute, hit in refused.items():
        if hit:
            raise fault(Forbidden, "PolicyNotAuthorized",
                        f"(rule:{action}:{attribute}) is disallowed by policy. Only the "
                        f"administrator or the owner of network {network.id} may set it.")


def _plain(text: str) -> str:
    """An address as stored (compressed, lower case); bad ones as given (refused later)."""
    try:
        return str(addresses.ip(text))
    except addresses.InvalidAddress:
        return text
