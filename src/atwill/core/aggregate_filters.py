"""AggregateInstanceExtraSpecsFilter and ComputeCapabilitiesFilter, as Nova's.

A flavor's `aggregate_instance_extra_specs:KEY` specs must match the metadata of the
host's aggregates (any of the host's values for KEY; comma-separated values count
one by one), and its `capabilities:KEY[:SUBKEY]` specs the host's reported
capabilities. Unlike Nova, unscoped keys are left to the filters that own them: with
both filters on, Nova fails every host for a key neither knows (say `quota:cpu_shares`
written unscoped), which turns a harmless spec into "No valid host".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .extra_spec_ops import match

if TYPE_CHECKING:
    from .scheduler import Host, Request

AGGREGATE_SCOPE = "aggregate_instance_extra_specs"
CAPABILITIES_SCOPE = "capabilities"
TENANT_KEY = "filter_tenant_id"  # any key starting so (filter_tenant_id2, …) counts, as Nova


def scoped(specs: Mapping[str, str], scope: str) -> dict[str, str]:
    """The specs under scope, keyed without it."""
    prefix = scope + ":"
    return {k[len(prefix):]: v for k, v in specs.items() if k.startswith(prefix)}


def metadata_values(items: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """(key, value) rows of a host's aggregates -> key: every value, split at commas."""
    out: dict[str, set[str]] = {}
    for key, value in items:
        out.setdefault(key, set()).update(v.strip() for v in value.split(",") if v.strip())
    return {k: frozenset(v) for k, v in out.items()}


def aggregate_extra_specs_filter(host: Host, req: Request) -> bool:
    for key, wanted in scoped(req.extra_specs, AGGREGATE_SCOPE).items():
        values = host.aggregate_metadata.get(key)
        if not values or not any(match(v, wanted) for v in values):
            return False
    return True


def tenant_isolation_filter(host: Host, req: Request) -> bool:
    """AggregateMultiTenancyIsolation: a host in aggregates naming projects (filter_tenant_id,
    comma-separated, or several such keys) takes only those projects' servers; others are
    open to every project, as in Nova."""
    allowed = {v for key, values in host.aggregate_metadata.items()
               if key.startswith(TENANT_KEY) for v in values}
    return not allowed or req.project_id in allowed


def capabilities_filter(host: Host, req: Request) -> bool:
    for key, wanted in scoped(req.extra_specs, CAPABILITIES_SCOPE).items():
        have = lookup(host.capabilities, key.split(":"))
        if have is None or not match(str(have), wanted):
            return False
    return True


def lookup(capabilities: Mapping[str, Any], path: list[str]) -> Any:
    """capabilities[a][b]…, decoding JSON text on the way as Nova does for cpu_info."""
    value: Any = capabilities
    for part in path:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                return None
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def capabilities_of(host: Host, node: Mapping[str, Any]) -> dict[str, Any]:
    """What a node reports, named as Nova's HostState attributes."""
    inventory = node.get("inventory") or {}
    return {
        "host": host.name, "nodename": host.name, "hypervisor_hostname": host.name,
        "hypervisor_type": node.get("hypervisor_type", host.hypervisor_type),
        "hypervisor_version": node.get("hypervisor_version", 0),
        "cpu_info": {"arch": host.arch, "model": inventory.get("cpu_model"),
                     "features": inventory.get("cpu_flags", []),
                     "accelerator": host.accelerator},
        "vcpus_total": host.vcpus, "vcpus_used": host.vcpus_used,
        "total_usable_ram_mb": host.memory_mb, "free_ram_mb": int(host.free_ram()),
        "total_usable_disk_gb": host.disk_gb, "free_disk_mb": int(host.free_disk()) * 1024,
    }
