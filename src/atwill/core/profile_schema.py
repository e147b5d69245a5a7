"""The fields a cloud profile's entries may have, each with the check that reads it.

A check returns the value in its normalised form, or raises ValueError saying what is
wrong (the loader adds the file, line and field).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import PurePosixPath
from typing import Any

from .ha_policy import POLICIES

TOP = ("projects", "roles", "users", "flavors", "images", "availability_zones", "networks",
       "routers", "security_groups")

# Quota names in the profile, and the service and name each is set through.
QUOTAS = {
    "cores": ("compute", "cores"), "instances": ("compute", "instances"),
    "ram": ("compute", "ram"), "key_pairs": ("compute", "key_pairs"),
    "server_groups": ("compute", "server_groups"),
    "server_group_members": ("compute", "server_group_members"),
    "metadata_items": ("compute", "metadata_items"),
    "floating_ips": ("network", "floatingip"), "networks": ("network", "network"),
    "subnets": ("network", "subnet"), "ports": ("network", "port"),
    "routers": ("network", "router"), "security_groups": ("network", "security_group"),
    "security_group_rules": ("network", "security_group_rule"),
    "volumes": ("volume", "volumes"), "gigabytes": ("volume", "gigabytes"),
    "snapshots": ("volume", "snapshots"),
}
DISK_FORMATS = ("qcow2", "raw", "vmdk", "vdi", "iso", "ploop", "vhd", "vhdx", "aki",
                "ari", "ami")
CONTAINER_FORMATS = ("bare", "ovf", "aki", "ari", "ami", "ova", "docker", "compressed")

Check = Callable[[Any], Any]


class Nested(ValueError):
    """A problem with one item of a map or list: its key or index, for the line number."""

    def __init__(self, key: Any, message: str) -> None:
        super().__init__(message)
        self.key = key


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, not {value!r}")
    return value


def relative_file(value: Any) -> str:
    """A file beside the profile or under its directory: a profile from elsewhere must not
    make an admin upload /etc/shadow or the cloud's CA key as a public image."""
    path = PurePosixPath(text(value))
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"must be a path relative to the profile's directory, without "
                         f"'..', not {value!r}")
    return value


def description(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, not {value!r}")
    return value


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, not {value!r}")
    return value


def count(low: int) -> Check:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"must be an integer of at least {low}, not {value!r}")
        return value
    return check


def one_of(*choices: Any) -> Check:
    def check(value: Any) -> Any:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(map(str, choices))}, not {value!r}")
        return value
    return check


def state(value: Any) -> str:
    return one_of("present", "absent")(value)


def optional(inner: Check) -> Check:
    def check(value: Any) -> Any:
        return None if value is None else inner(value)
    return check


def strings(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"must be a list of strings, not {value!r}")
    return [text(v) for v in value]


def string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"must be a mapping, not {value!r}")
    return {text(str(k)): str(v) for k, v in value.items()}


# Glance's own fields of an image; the others are its properties (seed 003's
# hw_video_model, configure_x).
IMAGE_FIELDS = frozenset({
    "id", "name", "status", "visibility", "protected", "os_hidden", "checksum",
    "os_hash_algo", "os_hash_value", "owner", "size", "virtual_size", "min_ram", "min_disk",
    "created_at", "updated_at", "tags", "self", "file", "schema", "disk_format",
    "container_format", "direct_url", "locations", "stores"})
IMAGES_OWN = frozenset({"name", "disk_format", "container_format", "visibility", "min_disk",
                        "min_ram", "protected"})  # what a profile's image sets as fields


def image_properties(value: Any) -> dict[str, str]:
    """An image's own properties: never one of Glance's fields (a 'visibility: public'
    there would override the checked field) nor Glance's reserved os_glance* keys."""
    out = string_map(value)
    for key in out:
        if key in IMAGE_FIELDS or key.startswith("os_glance"):
            raise Nested(key, f"{key} is an image field of Glance's, not a property"
                         + (" (set it as the image's own field)" if key in IMAGES_OWN
                            else ""))
    return out


def zone_metadata(value: Any) -> dict[str, str]:
    """An aggregate's other metadata (for AggregateInstanceExtraSpecsFilter and the like);
    its zone and HA keys are fields of their own."""
    out = string_map(value)
    for key in out:
        if key in ("availability_zone", "ha_policy", "ha_reserved"):
            raise Nested(key, f"{key} is set by the zone's own field, not its metadata")
    return out


def quotas(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping of quota names to numbers (-1: unlimited)")
    for key, number in value.items():
        if key not in QUOTAS:
            raise Nested(key, f"unknown quota {key} (known: {', '.join(sorted(QUOTAS))})")
        try:
            count(-1)(number)
        except ValueError as err:
            raise Nested(key, str(err)) from None
    return dict(value)


def cidr(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(text(value), strict=True))
    except ValueError as err:
        raise ValueError(f"{value!r} is not a CIDR ({err})") from None


def address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(text(value)))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


def pools(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError("must be a list of {start, end}")
    out = []
    for pool in value:
        if not isinstance(pool, dict) or set(pool) != {"start", "end"}:
            raise ValueError(f"each pool is {{start, end}}, not {pool!r}")
        out.append({"start": address(pool["start"]), "end": address(pool["end"])})
    return out


def assignments(value: Any) -> list[dict[str, str]]:
    if not isinstance(value, list):
        raise ValueError("must be a list of {project, role}")
    out = []
    for grant in value:
        if not isinstance(grant, dict) or set(grant) != {"project", "role"}:
            raise ValueError(f"each is {{project, role}}, not {grant!r}")
        out.append({"project": text(grant["project"]), "role": text(grant["role"])})
    return sorted(out, key=lambda g: (g["project"], g["role"]))


RULE_FIELDS = ("direction", "ethertype", "protocol", "port_range_min", "port_range_max",
               "remote_ip_prefix", "remote_group")


def rule(value: Any) -> dict[str, Any]:
    """A security group rule with every field, so that equal rules compare equal."""
    if not isinstance(value, dict):
        raise ValueError(f"each rule is a mapping, not {value!r}")
    unknown = set(value) - set(RULE_FIELDS)
    if unknown:
        raise ValueError(f"unknown rule field {sorted(unknown)[0]} (known: "
                         f"{', '.join(RULE_FIELDS)})")
    prefix = optional(cidr_loose)(value.get("remote_ip_prefix"))
    if prefix and value.get("remote_group"):
        raise ValueError("a rule has remote_ip_prefix or remote_group, not both")
    ether = value.get("ethertype") or ("IPv6" if prefix and ":" in prefix else "IPv4")
    protocol = value.get("protocol")
    protocol = None if protocol in (None, "any") else str(protocol).lower()
    low, high = value.get("port_range_min"), value.get("port_range_max")
    for number in (low, high):
        optional(count(0))(number)
    if prefix in ("0.0.0.0/0", "::/0"):
        prefix = None  # any address: Neutron treats both the same
    return {"direction": one_of("ingress", "egress")(value.get("direction", "ingress")),
            "ethertype": one_of("IPv4", "IPv6")(ether), "protocol": protocol,
            "port_range_min": low, "port_range_max": high, "remote_ip_prefix": prefix,
            "remote_group": optional(text)(value.get("remote_group"))}


def cidr_loose(value: Any) -> str:
    try:
        return str(ipaddress.ip_network(text(value), strict=False))
    except ValueError:
        raise ValueError(f"{value!r} is not a CIDR") from None


def rules(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise ValueError("must be a list of rules")
    out = []
    for index, item in enumerate(value):
        try:
            out.append(rule(item))
        except ValueError as err:
            raise Nested(index, str(err)) from None
    return sorted(out, key=repr)


FIELDS: dict[str, dict[str, Check]] = {
    "roles": {"name": text, "state": state},
    "projects": {"name": text, "description": description, "enabled": flag,
                 "quotas": quotas, "state": state},
    "users": {"name": text, "password": text, "email": optional(description),
              "description": description, "enabled": flag,
              "default_project": optional(text), "roles": assignments, "state": state},
    "flavors": {"name": text, "vcpus": count(1), "ram": count(1), "disk": count(0),
                "ephemeral": count(0), "swap": count(0), "is_public": flag,
                "description": optional(description), "extra_specs": string_map,
                "state": state},
    "images": {"name": text, "file": relative_file, "disk_format": one_of(*DISK_FORMATS),
               "container_format": one_of(*CONTAINER_FORMATS),
               "visibility": one_of("public", "private", "shared", "community"),
               "min_disk": count(0), "min_ram": count(0), "protected": flag,
               "properties": image_properties, "state": state},
    # An availability zone is the aggregate of its name (Nova's availability_zone), with
    # the HA monitor's policy for its nodes as that aggregate's metadata (core/ha_policy).
    "availability_zones": {"name": text, "hosts": lambda v: sorted(set(strings(v))),
                           "ha_policy": optional(one_of(*POLICIES)), "ha_reserved": flag,
                           "metadata": zone_metadata, "state": state},
    "networks": {"name": text, "project": text, "shared": flag, "external": flag,
                 "description": description, "state": state},
    "subnets": {"name": text, "cidr": cidr, "ip_version": one_of(4, 6),
                "gateway_ip": optional(address), "enable_dhcp": flag,
                "dns_nameservers": strings, "allocation_pools": pools,
                "description": description, "state": state},
    "routers": {"name": text, "project": text, "external_gateway": optional(text),
                "interfaces": lambda v: sorted(strings(v)), "description": description,
                "state": state},
    "security_groups": {"name": text, "project": text, "description": description,
                        "rules": rules, "state": state},
}
# What only matters when an entry is made: never compared with the cloud.
CREATE_ONLY = {"users": {"password"}, "images": {"file"}}
# What Nova or Neutron cannot change in place.
REPLACED = {"flavors": {"vcpus", "ram", "disk", "ephemeral", "swap", "is_public"}}
FIXED = {"subnets": {"cidr", "ip_version", "network"},
         "images": {"disk_format", "container_format"}}
