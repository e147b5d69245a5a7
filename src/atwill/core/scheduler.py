"""Placement: filter hosts, weigh the survivors, and say why when none is left.

Pure logic over plain values; the controller loads the hosts and makes the claim.
The filters are Nova's, by name, so a failure reads like Nova's: which filter
eliminated how many hosts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from . import ha_policy
from .aggregate_filters import (
    AGGREGATE_SCOPE,
    CAPABILITIES_SCOPE,
    aggregate_extra_specs_filter,
    capabilities_filter,
    tenant_isolation_filter,
)


@dataclasses.dataclass(frozen=True)
class PciDevice:
    address: str
    vendor_id: str
    product_id: str


@dataclasses.dataclass(frozen=True)
class PciRequest:
    alias: str
    vendor_id: str
    product_id: str
    count: int


@dataclasses.dataclass(frozen=True)
class Host:
    id: str
    name: str
    availability_zone: str = "nova"
    enabled: bool = True
    up: bool = True
    vcpus: int = 0
    vcpus_used: int = 0
    memory_mb: int = 0
    memory_mb_used: int = 0
    disk_gb: int = 0
    disk_gb_used: int = 0
    cpu_ratio: float = 16.0
    ram_ratio: float = 1.5
    disk_ratio: float = 1.0
    hypervisor_type: str = "QEMU"
    arch: str = "x86_64"
    accelerator: str = "tcg"
    free_pci: tuple[PciDevice, ...] = ()
    instances: frozenset[str] = frozenset()  # instance ids on the host
    # Loaded only for requests whose flavor asks about them (controller/servers/host_facts).
    aggregate_metadata: Mapping[str, frozenset[str]] = dataclasses.field(
        default_factory=dict, hash=False, compare=False)
    capabilities: Mapping[str, Any] = dataclasses.field(
        default_factory=dict, hash=False, compare=False)

    def free_vcpus(self) -> float:
        return self.vcpus * self.cpu_ratio - self.vcpus_used

    def free_ram(self) -> float:
        return self.memory_mb * self.ram_ratio - self.memory_mb_used

    def free_disk(self) -> float:
        return self.disk_gb * self.disk_ratio - self.disk_gb_used


@dataclasses.dataclass(frozen=True)
class Request:
    vcpus: int
    memory_mb: int
    disk_gb: int
    availability_zone: str | None = None
    image_properties: dict[str, str] = dataclasses.field(default_factory=dict)
    pci: tuple[PciRequest, ...] = ()
    group_policy: str | None = None  # affinity, anti-affinity, soft-affinity, soft-anti-affinity
    group_hosts: tuple[str, ...] = ()  # host ids already holding members of the group
    group_max_per_host: int | None = None
    same_host: frozenset[str] = frozenset()  # instance ids
    different_host: frozenset[str] = frozenset()
    ignore_hosts: frozenset[str] = frozenset()  # host ids that failed this request already
    extra_specs: Mapping[str, str] = dataclasses.field(default_factory=dict)  # the flavor's
    project_id: str | None = None  # the server's (AggregateMultiTenancyIsolation)
    evacuation: bool = False  # spare nodes (ha_reserved) take only evacuations


class NoValidHost(Exception):
    """No host passed every filter; the message says which filter eliminated how many."""


Filter = Callable[[Host, Request], bool]
ARCH_ALIASES = {"amd64": "x86_64", "x86-64": "x86_64", "i686": "i386", "arm64": "aarch64"}


def compute_filter(host: Host, _req: Request) -> bool:
    return host.enabled and host.up


def retry_filter(host: Host, req: Request) -> bool:
    return host.id not in req.ignore_hosts


def availability_zone_filter(host: Host, req: Request) -> bool:
    return req.availability_zone in (None, "", host.availability_zone)


def core_filter(host: Host, req: Request) -> bool:
    return host.free_vcpus() >= req.vcpus


def ram_filter(host: Host, req: Request) -> bool:
    return host.free_ram() >= req.memory_mb


def disk_filter(host: Host, req: Request) -> bool:
    return host.free_disk() >= req.disk_gb


def image_properties_filter(host: Host, req: Request) -> bool:
    props = req.image_properties
    arch = props.get("architecture") or props.get("hw_architecture")
    if arch and ARCH_ALIASES.get(arch, arch) != host.arch:
        return False
    hv_type = props.get("hypervisor_type") or props.get("img_hv_type")
    if hv_type and hv_type.lower() not in ("qemu", "kvm" if host.accelerator == "kvm" else ""):
        return False
    return True


def pci_passthrough_filter(host: Host, req: Request) -> bool:
    return pci_assignment(host, req) is not None


def pci_assignment(host: Host, req: Request) -> list[str] | None:
    """The device addresses that satisfy every PCI request, or None."""
    chosen: list[str] = []
    for want in req.pci:
        matches = [d.address for d in host.free_pci if d.address not in chosen
                   and d.vendor_id == want.vendor_id and d.product_id == want.product_id]
        if len(matches) < want.count:
            return None
        chosen += matches[:want.count]
    return chosen


def affinity_filter(host: Host, req: Request) -> bool:
    if req.group_policy != "affinity" or not req.group_hosts:
        return True
    return host.id in req.group_hosts


def anti_affinity_filter(host: Host, req: Request) -> bool:
    if req.group_policy != "anti-affinity":
        return True
    allowed = req.group_max_per_host or 1
    return req.group_hosts.count(host.id) < allowed


def same_host_filter(host: Host, req: Request) -> bool:
    return not req.same_host or req.same_host <= host.instances


def different_host_filter(host: Host, req: Request) -> bool:
    return not (req.different_host & host.instances)


def reserved_host_filter(host: Host, req: Request) -> bool:
    """Spare nodes wait for failures: only an evacuation may land on one."""
    return req.evacuation or not ha_policy.reserved(host.aggregate_metadata)


FILTERS: dict[str, Filter] = {
    "RetryFilter": retry_filter,
    "ReservedHostFilter": reserved_host_filter,
    "ComputeFilter": compute_filter,
    "AvailabilityZoneFilter": availability_zone_filter,
    "CoreFilter": core_filter,
    "RamFilter": ram_filter,
    "DiskFilter": disk_filter,
    "AggregateInstanceExtraSpecsFilter": aggregate_extra_specs_filter,
    "AggregateMultiTenancyIsolation": tenant_isolation_filter,
    "ComputeCapabilitiesFilter": capabilities_filter,
    "ImagePropertiesFilter": image_properties_filter,
    "PciPassthroughFilter": pci_passthrough_filter,
    "ServerGroupAffinityFilter": affinity_filter,
    "ServerGroupAntiAffinityFilter": anti_affinity_filter,
    "SameHostFilter": same_host_filter,
    "DifferentHostFilter": different_host_filter,
}


# Filters that pass every host unless the request asks for what they check. They are
# skipped when it does not: they would eliminate none, so the outcome and the reason
# are the same, and every placement is cheaper.
ASKED: dict[str, Callable[[Request], object]] = {
    "RetryFilter": lambda r: r.ignore_hosts,
    "AvailabilityZoneFilter": lambda r: r.availability_zone,
    "ImagePropertiesFilter": lambda r: r.image_properties,
    "AggregateInstanceExtraSpecsFilter": lambda r: asks(r, AGGREGATE_SCOPE),
    "ComputeCapabilitiesFilter": lambda r: asks(r, CAPABILITIES_SCOPE),
    "PciPassthroughFilter": lambda r: r.pci,
    "ServerGroupAffinityFilter": lambda r: r.group_policy == "affinity" and r.group_hosts,
    "ServerGroupAntiAffinityFilter": lambda r: r.group_policy == "anti-affinity",
    "SameHostFilter": lambda r: r.same_host,
    "DifferentHostFilter": lambda r: r.different_host,
}


# The filters that run on every request (not in ASKED): what a request that asks for
# nothing else is judged by. controller/servers/placement_one writes these in SQL.
ALWAYS: frozenset[str] = frozenset(FILTERS) - frozenset(ASKED)


def capacity_only(req: Request) -> bool:
    """Whether only the filters in ALWAYS can eliminate a host for req and the weighers
    see nothing but free RAM and vCPUs (no soft group policy, not an evacuation)."""
    return not (req.group_policy or req.evacuation) and not any(
        asked(req) for asked in ASKED.values())


def asks(req: Request, scope: str) -> bool:
    """Whether the request's flavor has extra specs under scope."""
    return any(k.startswith(scope + ":") for k in req.extra_specs)


def filter_hosts(hosts: Sequence[Host], req: Request,
                 names: Iterable[str] = tuple(FILTERS)) -> list[Host]:
    """Hosts passing every filter; NoValidHost names the filters that emptied the list."""
    remaining = list(hosts)
    eliminated: list[str] = []
    if not remaining:
        raise NoValidHost("No valid host was found. There are no compute nodes.")
    for name in names:
        if name in ASKED and not ASKED[name](req):
            continue
        before = len(remaining)
        remaining = [h for h in remaining if FILTERS[name](h, req)]
        if len(remaining) < before:
            eliminated.append(f"{name} eliminated {before - len(remaining)} of {before}")
        if not remaining:
            raise NoValidHost(f"No valid host was found. {'; '.join(eliminated)}.")
    return remaining


def weigh(hosts: Sequence[Host], req: Request, strategy: str = "spread") -> list[Host]:
    """Best first: spread prefers the most free RAM (then vCPUs); pack the least."""
    def key(host: Host) -> tuple:
        soft = 0
        if req.group_policy == "soft-affinity":
            soft = -req.group_hosts.count(host.id)
        elif req.group_policy == "soft-anti-affinity":
            soft = req.group_hosts.count(host.id)
        free = (host.free_ram() - req.memory_mb, host.free_vcpus() - req.vcpus)
        sign = -1 if strategy == "spread" else 1
        spare = 0 if req.evacuation and ha_policy.reserved(host.aggregate_metadata) else 1
        return (spare, soft, sign * free[0], sign * free[1], host.name)

    return sorted(hosts, key=key)


def select(hosts: Sequence[Host], req: Request, strategy: str = "spread") -> list[Host]:
    """Candidates in order of preference (claim the first that still fits)."""
    return weigh(filter_hosts(hosts, req), req, strategy)


def parse_pci_alias(spec: str, aliases: dict[str, tuple[str, str]]) -> tuple[PciRequest, ...]:
    """'K20m:1,T4:2' with aliases {name: (vendor, product)} -> requests; ValueError if bad."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, count = part.partition(":")
        if name not in aliases:
            raise ValueError(f"PCI alias {name!r} is not defined")
        try:
            number = int(count or "1")
        except ValueError:
            raise ValueError(f"PCI alias count {count!r} is not a number") from None
        if number < 1:
            raise ValueError(f"PCI alias count must be at least 1, got {number}")
        vendor, product = aliases[name]
        out.append(PciRequest(name, vendor, product, number))
    return tuple(out)


def parse_alias_config(text: str) -> dict[str, tuple[str, str]]:
    """'K20m=10de:1028,T4=10de:1eb8' -> {name: (vendor_id, product_id)}; ValueError if bad."""
    aliases = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, ids = part.partition("=")
        vendor, _, product = ids.partition(":")
        if not (name and len(vendor) == 4 and len(product) == 4):
            raise ValueError(f"PCI alias {part!r} is not NAME=VENDOR:PRODUCT (hex ids)")
        aliases[name] = (vendor.lower(), product.lower())
    return aliases
