"""Flavor extra specs as Nova validates them from microversion 2.86.

Each known key (or key pattern) has a value rule: a boolean-like, an integer with bounds,
one of a set, or a pattern. A key in a namespace Nova knows (the part before the first
':') that matches no rule is refused; keys without a namespace or in another namespace
are taken as they are, as Nova takes them (other services and filters own those).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import BadRequest

CPU_MAP = r"\^?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"
GROUP = r"([a-zA-Z0-9_-]{1,64})?"  # resources1:, trait_gpu: — a request group's suffix
# os-resource-classes' standard classes (placement's own names).
RESOURCE_CLASSES = (
    "VCPU", "MEMORY_MB", "DISK_GB", "PCI_DEVICE", "SRIOV_NET_VF", "NUMA_SOCKET", "NUMA_CORE",
    "NUMA_THREAD", "NUMA_MEMORY_MB", "IPV4_ADDRESS", "VGPU", "VGPU_DISPLAY_HEAD",
    "NET_BW_EGR_KILOBIT_PER_SEC", "NET_BW_IGR_KILOBIT_PER_SEC", "PCPU",
    "MEM_ENCRYPTION_CONTEXT", "FPGA", "PGPU", "NET_PACKET_RATE_KILOPACKET_PER_SEC",
    "NET_PACKET_RATE_EGR_KILOPACKET_PER_SEC", "NET_PACKET_RATE_IGR_KILOPACKET_PER_SEC")
CAPABILITIES = (
    "id", "uuid", "service_id", "host", "vcpus", "memory_mb", "local_gb", "vcpus_used",
    "memory_mb_used", "local_gb_used", "hypervisor_type", "hypervisor_version",
    "hypervisor_hostname", "free_ram_mb", "free_disk_gb", "current_workload", "running_vms",
    "disk_available_least", "host_ip", "mapped", "cpu_allocation_ratio",
    "ram_allocation_ratio", "disk_allocation_ratio", "total_usable_ram_mb",
    "total_usable_disk_gb", "disk_mb_used", "free_disk_mb", "vcpus_total", "num_instances",
    "num_io_ops", "failed_builds", "aggregates", "cell_uuid", "updated")
# Capabilities that are structures: a filter may reach into them (capabilities:cpu_info:arch).
NESTED_CAPABILITIES = (
    "cpu_info", "metrics", "stats", "numa_topology", "supported_hv_specs",
    "pci_device_pools", "nodename", "pci_stats", "supported_instances", "limits",
    "instances")
_TRUE = ("1", "t", "true", "on", "y", "yes")
_FALSE = ("0", "f", "false", "off", "n", "no")


@dataclass(frozen=True)
class Rule:
    """A key (a regular expression over the whole key) and what its value may be."""

    key: str
    kind: str  # "bool", "int", "enum", "pattern" or "str"
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    pattern: str = ""


def _b(key: str) -> Rule:
    return Rule(key, "bool")


def _i(key: str, low: int | None = None, high: int | None = None) -> Rule:
    return Rule(key, "int", low=low, high=high)


def _e(key: str, *choices: str) -> Rule:
    return Rule(key, "enum", choices=choices)


def _p(key: str, pattern: str) -> Rule:
    return Rule(key, "pattern", pattern=pattern)


def _s(key: str) -> Rule:
    return Rule(key, "str")


def _esc(name: str) -> str:
    return re.escape(name)


HW = [
    _b("hw:cpu_realtime"), _p("hw:cpu_realtime_mask", r"(\^)?\d+((-\d+)?(,\^?\d+(-\d+)?)?)*"),
    _b("hw:hide_hypervisor_id"), _e("hw:cpu_policy", "dedicated", "shared", "mixed"),
    _e("hw:cpu_thread_policy", "prefer", "isolate", "require"),
    _e("hw:emulator_threads_policy", "isolate", "share"),
    _p("hw:cpu_dedicated_mask", CPU_MAP),
    _p("hw:mem_page_size", r"(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)"),
    _b("hw:locked_memory"), _i("hw:numa_nodes", 1), _p(r"hw:numa_cpus\.\d+", CPU_MAP),
    _i(r"hw:numa_mem\.\d+", 1),
    _e("hw:pci_numa_affinity_policy", "required", "preferred", "legacy", "socket"),
    _i("hw:cpu_sockets", 1), _i("hw:cpu_cores", 1), _i("hw:cpu_threads", 1),
    _i("hw:cpu_max_sockets", 1), _i("hw:cpu_max_cores", 1), _i("hw:cpu_max_threads", 1),
    _b("hw:boot_menu"), _b("hw:vif_multiqueue_enabled"), _b("hw:mem_encryption"),
    _e("hw:mem_encryption_model", "amd-sev", "amd-sev-es", "amd-sev-snp"),
    _p("hw:pmem", r"([a-zA-Z0-9_]+(,)?)+"), _b("hw:pmu"), _i("hw:serial_port_count", 0),
    _e("hw:tpm_model", "tpm-tis", "tpm-crb"), _e("hw:tpm_version", "1.2", "2.0"),
    _e("hw:tpm_secret_security", "user", "host", "deployment"),
    _e("hw:watchdog_action", "none", "pause", "poweroff", "reset", "disabled"),
    _e("hw:viommu_model", "intel", "smmuv3", "virtio", "auto"),
    _b("hw:virtio_packed_ring"),
    _e("hw:sound_model", "sb16", "es1370", "pcspk", "ac97", "ich6", "ich9", "usb", "virtio"),
    _e("hw:usb_model", "none", "nec-xhci", "qemu-xhci"), _i("hw:redirected_usb_ports", 0, 15),
    _b("hw:ephemeral_encryption"),
    _e("hw:ephemeral_encryption_format", "plain", "luks", "luksv2"),
]
OTHERS = [
    _b("hw_rng:allowed"), _i("hw_rng:rate_bytes", 0), _i("hw_rng:rate_period", 0),
    _i("hw_video:ram_max_mb", 0), _b("hide_hypervisor_id"),
    _e("group_policy", "isolate", "none"), _e("os:secure_boot", "disabled", "required"),
    _p("pci_passthrough:alias", r"[^:]+:\d+(?:\s*,\s*[^:]+:\d+)*"),
    _s("accel:device_profile"), _s("aggregate_instance_extra_specs:.+"),
    _s("vmware:hw_version"), _s("vmware:storage_policy"),
    *(_s(f"capabilities:{_esc(c)}") for c in CAPABILITIES),
    *(_s(rf"capabilities:{_esc(c)}(:\w+)*") for c in NESTED_CAPABILITIES),
    _i(f"resources{GROUP}:({'|'.join(RESOURCE_CLASSES)})"),
    _i(f"resources{GROUP}:CUSTOM_[A-Z0-9_]+"),
    # os-traits' names are upper-case words; atwill does not ship their catalogue.
    _e(f"trait{GROUP}:[A-Z][A-Z0-9_]*", "required", "forbidden"),
    _i("quota:cpu_shares", 0), _i("quota:cpu_period", 0), _i("quota:cpu_quota"),
    *(rule for key in ("cpu", "memory", "disk_io", "vif") for rule in (
        _i(f"quota:{key}_limit", 0), _i(f"quota:{key}_reservation"),
        _e(f"quota:{key}_shares_level", "custom", "high", "normal", "low"),
        _i(f"quota:{key}_shares_share", 0))),
    _i(r"quota:disk_(read|write|total)_(bytes|iops)_sec", 0),
    _i(r"quota:vif_(inbound|outbound)_(average|peak|burst)", 0),
]
RULES = [*HW, *OTHERS]
NAMESPACES = (
    "hw", "hw_rng", "hw_video", "os", "pci_passthrough", "accel", "capabilities",
    "aggregate_instance_extra_specs", "vmware", "quota", f"resources{GROUP}", f"trait{GROUP}")
_COMPILED = [(re.compile(rule.key), rule) for rule in RULES]


def validate(key: str, value: str) -> None:
    """Refuse, with Nova's 2.86 message, a spec Nova would refuse; others pass."""
    for pattern, rule in _COMPILED:
        if pattern.fullmatch(key):
            _check(rule, value)
            return
    namespace = key.split(":", 1)[0] if ":" in key else None
    if namespace is not None and any(re.fullmatch(ns, namespace) for ns in NAMESPACES):
        raise BadRequest(f"Validation failed; extra spec '{key}' does not appear to be a "
                         "valid extra spec.")


def _check(rule: Rule, value: str) -> None:
    if rule.kind == "bool" and value.strip().lower() not in _TRUE + _FALSE:
        raise BadRequest(f"Validation failed; '{value}' is not a valid boolean-like value.")
    if rule.kind == "int":
        _check_int(rule, value)
    if rule.kind == "enum" and value not in rule.choices:
        raise BadRequest(f"Validation failed; '{value}' is not one of: "
                         f"{', '.join(rule.choices)}.")
    if rule.kind == "pattern" and not re.fullmatch(rule.pattern, value):
        raise BadRequest(f"Validation failed; '{value}' is not of the format "
                         f"'{rule.pattern}'.")


def _check_int(rule: Rule, value: str) -> None:
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"Validation failed; '{value}' is not a valid integer "
                         "value.") from None
    if rule.high is not None and number > rule.high:
        raise BadRequest(f"Validation failed; '{value}' is greater than the max value of "
                         f"'{rule.high}'.")
    if rule.low is not None and number < rule.low:
        raise BadRequest(f"Validation failed; '{value}' is less than the min value of "
                         f"'{rule.low}'.")
