"""The aggregate extra-spec and capability filters, and Nova's extra spec operators."""

from __future__ import annotations

import pytest

from atwill.core import scheduler
from atwill.core.aggregate_filters import capabilities_of, lookup, metadata_values
from atwill.core.extra_spec_ops import match


@pytest.mark.parametrize(("have", "wanted", "result"), [
    ("t4", "t4", True), ("t4", "a100", False), ("8", "= 4", True), ("2", "= 4", False),
    ("4", "== 4.0", True), ("4", "!= 4", False), ("10", ">= 9", True), ("10", "<= 9", False),
    ("sse avx2", "<in> avx", True), ("sse", "<in> avx", False),
    ("sse avx2 aes", "<all-in> aes avx2", True), ("sse aes", "<all-in> aes avx2", False),
    ("b", "<or> a <or> b", True), ("c", "<or> a <or> b", False),
    ("abc", "s== abc", True), ("abc", "s< abd", True), ("abc", "s> abd", False),
    ("x", "= 4", False), (None, "<in> a", False), ("a", "<in>", False),
])
def test_operators(have: str | None, wanted: str, result: bool) -> None:
    assert match(have, wanted) is result


def _host(name: str, **meta: str) -> scheduler.Host:
    return scheduler.Host(id=name, name=name, vcpus=8, memory_mb=8192, disk_gb=50,
                          aggregate_metadata=metadata_values(meta.items()))


def test_aggregate_extra_specs_pick_matching_hosts_and_say_why() -> None:
    hosts = [_host("plain"), _host("gpu", gpu="t4,a100", ssd="true"), _host("cpu", gpu="none")]
    want = scheduler.Request(1, 512, 1, extra_specs={
        "aggregate_instance_extra_specs:gpu": "a100", "hw:cpu_policy": "dedicated"})
    assert [h.name for h in scheduler.filter_hosts(hosts, want)] == ["gpu"]
    two = scheduler.Request(1, 512, 1, extra_specs={
        "aggregate_instance_extra_specs:gpu": "t4", "aggregate_instance_extra_specs:ssd": "false"})
    with pytest.raises(scheduler.NoValidHost, match="AggregateInstanceExtraSpecsFilter "
                       "eliminated 3 of 3"):
        scheduler.filter_hosts(hosts, two)
    # Specs of other scopes, and unscoped ones, are not this filter's.
    other = scheduler.Request(1, 512, 1, extra_specs={"quota:cpu_shares": "10", "foo": "bar"})
    assert len(scheduler.filter_hosts(hosts, other)) == 3


def test_capabilities_from_what_the_node_reports() -> None:
    host = scheduler.Host(id="n", name="n", vcpus=8, memory_mb=4096, disk_gb=20,
                          arch="aarch64", accelerator="kvm")
    caps = capabilities_of(host, {"hypervisor_type": "QEMU", "hypervisor_version": 7002000,
                                  "inventory": {"cpu_model": "neoverse", "cpu_flags": ["sve"]}})
    assert lookup(caps, ["cpu_info", "arch"]) == "aarch64"
    assert lookup(caps, ["cpu_info", "missing"]) is None
    assert lookup({"cpu_info": '{"arch": "x86_64"}'}, ["cpu_info", "arch"]) == "x86_64"
    ready = scheduler.Host(**{**host.__dict__, "capabilities": caps})
    plain = scheduler.Host(id="p", name="p", vcpus=8, memory_mb=4096, disk_gb=20,
                           capabilities=capabilities_of(scheduler.Host(id="p", name="p"), {}))
    req = scheduler.Request(1, 512, 1, extra_specs={
        "capabilities:cpu_info:arch": "aarch64", "capabilities:hypervisor_version": ">= 7000000",
        "capabilities:cpu_info:features": "<in> sve"})
    assert [h.name for h in scheduler.filter_hosts([plain, ready], req)] == ["n"]
    bad = scheduler.Request(1, 512, 1, extra_specs={"capabilities:no_such_thing": "1"})
    with pytest.raises(scheduler.NoValidHost, match="ComputeCapabilitiesFilter"):
        scheduler.filter_hosts([ready], bad)
