"""Security group rules: validation, normalisation and the default group's rules."""

from __future__ import annotations

from typing import Any

from . import addresses
from .text import shown

PROTOCOLS = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})
ICMP_PROTOCOLS = frozenset({1, 58})
DIRECTIONS = ("ingress", "egress")
ETHERTYPES = ("IPv4", "IPv6")
ANY = {"IPv4": "0.0.0.0/0", "IPv6": "::/0"}


class InvalidRule(ValueError):
    """A rule Neutron would refuse with a 400."""


def protocol_number(protocol: Any) -> int | None:
    """The IP protocol number of a name or number (None: any protocol)."""
    if protocol is None or protocol == "any":
        return None
    text = str(protocol).lower()
    if text in PROTOCOLS:
        return PROTOCOLS[text]
    # isascii: str.isdigit() also takes other scripts' digits, which would be stored.
    if text.isascii() and text.isdigit() and 0 <= int(text) <= 255:
        return int(text)
    raise InvalidRule(f"Security group rule protocol {shown(protocol)} not supported. Only "
                      f"protocol values {sorted(PROTOCOLS)} and integer representations "
                      "[0 to 255] are supported.")


def _port(value: Any, name: str, low: int, high: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidRule(f"Invalid value for {name}: {shown(value)} is not an integer.")
    try:
        number = int(value)
    except ValueError:
        raise InvalidRule(f"Invalid value for {name}: {shown(value)} is not an "
                          "integer.") from None
    if not low <= number <= high:
        raise InvalidRule(f"Invalid value for {name}: {number} is not in [{low}, {high}].")
    return number


def _tcp_port(value: Any, name: str) -> int | None:
    number = _port(value, name, -(2**31), 2**31)
    if number is not None and not 1 <= number <= 65535:
        # Neutron's wording, which clients match: "Invalid value for port N".
        raise InvalidRule(f"Invalid value for port {number} ({name}): not in [1, 65535].")
    return number


def check_ports(number: int | None, low: Any, high: Any) -> tuple[int | None, int | None]:
    """port_range_min/max: ports for TCP-like protocols, type/code for ICMP."""
    if number in ICMP_PROTOCOLS:
        icmp_type = _port(low, "ICMP type (port-range-min)", 0, 255)
        icmp_code = _port(high, "ICMP code (port-range-max)", 0, 255)
        if icmp_code is not None and icmp_type is None:
            raise InvalidRule("ICMP code (port-range-max) is set but ICMP type "
                              "(port-range-min) is missing.")
        return icmp_type, icmp_code
    if low is None and high is None:
        return None, None
    if number not in PORT_PROTOCOLS:
        raise InvalidRule("Port ranges are only supported for the TCP, UDP, UDP-Lite, SCTP "
                          "and DCCP protocols; the rule's protocol must be one of them.")
    first, last = _tcp_port(low, "port_range_min"), _tcp_port(high, "port_range_max")
    # Neutron refuses a range with one end missing, with the same message as a reversed one.
    if first is None or last is None or first > last:
        raise InvalidRule("For TCP/UDP protocols, port_range_min must be <= port_range_max.")
    return first, last


def check_prefix(prefix: Any, ethertype: str) -> str | None:
    """A remote CIDR of the rule's family, host bits dropped as Neutron does."""
    if prefix is None:
        return None
    try:
        net = addresses.prefix(prefix)
    except addresses.InvalidAddress:
        raise InvalidRule(f"{shown(prefix)} is not a valid remote_ip_prefix CIDR.") from None
    if f"IPv{net.version}" != ethertype:
        raise InvalidRule(f"Conflicting value ethertype {ethertype} for CIDR {prefix}.")
    return str(net)


def check_rule(data: dict[str, Any]) -> dict[str, Any]:
    """The validated, normalised writable attributes of a rule."""
    direction = data.get("direction")
    if direction not in DIRECTIONS:
        raise InvalidRule(f"Invalid input for direction: {shown(direction)} is not in "
                          f"{list(DIRECTIONS)}.")
    ethertype = data.get("ethertype") or "IPv4"
    if ethertype not in ETHERTYPES:
        raise InvalidRule(f"Invalid input for ethertype: {shown(ethertype)} is not in "
                          f"{list(ETHERTYPES)}.")
    protocol = data.get("protocol")
    if protocol is not None and not isinstance(protocol, str | int):
        raise InvalidRule(f"Invalid input for protocol: {shown(protocol)}.")
    number = protocol_number(protocol)
    if number == 58 and ethertype == "IPv4":
        raise InvalidRule(f"Protocol {shown(protocol)} is only valid with ethertype IPv6.")
    low, high = check_ports(number, data.get("port_range_min"), data.get("port_range_max"))
    prefix = check_prefix(data.get("remote_ip_prefix"), ethertype)
    if not isinstance(data.get("remote_group_id"), str | None):
        raise InvalidRule(f"Invalid input for remote_group_id: {shown(data['remote_group_id'])} "
                          "is not a string.")
    if prefix is not None and data.get("remote_group_id") is not None:
        raise InvalidRule("Only remote_ip_prefix or remote_group_id may be provided.")
    return {"direction": direction, "ethertype": ethertype,
            "protocol": None if protocol is None else str(protocol).lower(),
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group_id": data.get("remote_group_id")}


def same_rule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Duplicates compare protocols by number and treat 'any address' as no prefix."""
    def key(rule: dict[str, Any]) -> tuple:
        prefix = rule.get("remote_ip_prefix")
        prefix = None if prefix == ANY.get(rule["ethertype"]) else prefix
        return (rule["direction"], rule["ethertype"], protocol_number(rule.get("protocol")),
                rule.get("port_range_min"), rule.get("port_range_max"), prefix,
                rule.get("remote_group_id"))
    return key(a) == key(b)


def default_rules(group_id: str) -> list[dict[str, Any]]:
    """Neutron's default group: egress open, ingress only from members of the group."""
    rules = []
    for ethertype in ETHERTYPES:
        rules.append({"direction": "egress", "ethertype": ethertype, "protocol": None,
                      "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": None})
        rules.append({"direction": "ingress", "ethertype": ethertype, "protocol": None,
                      "port_range_min": None, "port_range_max": None,
                      "remote_ip_prefix": None, "remote_group_id": group_id})
    return rules
