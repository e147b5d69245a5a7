"""Nova 2.86's flavor extra spec validation (core/extra_spec_rules)."""

from __future__ import annotations

import pytest

from atwill.core.errors import BadRequest
from atwill.core.extra_spec_rules import validate

ACCEPTED = [
    ("hw:cpu_policy", "dedicated"), ("hw:cpu_realtime", "Yes"), ("hw:numa_nodes", "2"),
    ("hw:numa_cpus.0", "0-3,^2"), ("hw:numa_mem.1", "1024"), ("hw:mem_page_size", "2MiB"),
    ("hw:redirected_usb_ports", "15"), ("hw_rng:allowed", "false"),
    ("hw_rng:rate_bytes", "0"), ("hw_video:ram_max_mb", "64"),
    ("pci_passthrough:alias", "K20m:1, a40:2"), ("aggregate_instance_extra_specs:ssd", "x"),
    ("capabilities:cpu_info:arch", "x86_64"), ("capabilities:vcpus_total", ">= 4"),
    ("quota:disk_read_bytes_sec", "10240"), ("quota:vif_inbound_peak", "1"),
    ("quota:cpu_quota", "-1"), ("quota:memory_shares_level", "high"),
    ("resources:VCPU", "0"), ("resources1:CUSTOM_GPU_T4", "1"),
    ("trait:HW_CPU_X86_AVX2", "required"), ("trait_gpu:CUSTOM_X", "forbidden"),
    ("accel:device_profile", "p"), ("os:secure_boot", "required"),
    ("group_policy", "none"), ("hide_hypervisor_id", "true"),
    # Not in a namespace Nova knows, or in none: taken as they are.
    ("foo", "anything"), ("gpu", "t4"), ("custom:thing", "x"), ("HA_Enabled", "x")]

REFUSED = [
    ("hw:cpu_policy", "bogus",
     "Validation failed; 'bogus' is not one of: dedicated, shared, mixed."),
    ("hw:numa_nodes", "0", "Validation failed; '0' is less than the min value of '1'."),
    ("hw:numa_nodes", "two", "Validation failed; 'two' is not a valid integer value."),
    ("hw:redirected_usb_ports", "16",
     "Validation failed; '16' is greater than the max value of '15'."),
    ("hw:cpu_realtime", "maybe", "Validation failed; 'maybe' is not a valid boolean-like value."),
    ("pci_passthrough:alias", "K20m",
     r"Validation failed; 'K20m' is not of the format '[^:]+:\d+(?:\s*,\s*[^:]+:\d+)*'."),
    ("hw:no_such_thing", "1",
     "Validation failed; extra spec 'hw:no_such_thing' does not appear to be a valid extra "
     "spec."),
    ("capabilities:vcpus:nested", "1", "does not appear to be a valid extra spec"),
    ("resources:vcpu", "1", "does not appear to be a valid extra spec"),
    ("resources2:VCPU", "x", "is not a valid integer value"),
    ("trait:HW_CPU_X86_AVX2", "yes", "is not one of: required, forbidden"),
    ("quota:disk_read_bytes_sec", "-1", "is less than the min value of '0'"),
    ("hw_rng:nope", "1", "does not appear to be a valid extra spec"),
    ("os:other", "1", "does not appear to be a valid extra spec")]


@pytest.mark.parametrize(("key", "value"), ACCEPTED)
def test_accepted(key: str, value: str) -> None:
    validate(key, value)


@pytest.mark.parametrize(("key", "value", "message"), REFUSED)
def test_refused_with_novas_message(key: str, value: str, message: str) -> None:
    with pytest.raises(BadRequest) as refused:
        validate(key, value)
    assert message in str(refused.value)
