"""A port's writable attributes, checked: MAC, device, binding, groups and address pairs."""

from __future__ import annotations

import ipaddress
from typing import Any

from ...core import l2
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import Port
from . import access
from .common import fault, flag, string_list, text


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
        try:
            attrs["mac_address"] = l2.normalize_mac(data["mac_address"])
        except ValueError as err:
            raise BadRequest(f"Invalid input for mac_address. Reason: {err}") from None
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
    out = []
    for pair in raw:
        if not isinstance(pair, dict) or "ip_address" not in pair or \
                set(pair) - {"ip_address", "mac_address"}:
            raise BadRequest("Invalid input for allowed_address_pairs: each pair needs "
                             "ip_address and may have mac_address.")
        try:
            address = str(ipaddress.ip_network(str(pair["ip_address"]), strict=False))
            entry = {"ip_address": pair["ip_address"]}
            if pair.get("mac_address") is not None:
                entry["mac_address"] = l2.normalize_mac(pair["mac_address"])
        except ValueError as err:
            raise BadRequest(f"Invalid input for allowed_address_pairs: {err}") from None
        if address in [str(ipaddress.ip_network(p["ip_address"], strict=False)) for p in out]:
            raise BadRequest(f"Invalid input for allowed_address_pairs: duplicate address "
                             f"{pair['ip_address']}.")
        out.append(entry)
    return out


def check_pairs(port: Port) -> None:
    if port.allowed_address_pairs and not port.port_security_enabled:
        raise fault(Conflict, "AddressPairAndPortSecurityRequired", "Port Security must be "
                    "enabled in order to have allowed address pairs on a port.")
