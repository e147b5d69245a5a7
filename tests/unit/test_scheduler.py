import random

import pytest

from atwill.core.scheduler import (
    FILTERS,
    Host,
    NoValidHost,
    PciDevice,
    PciRequest,
    Request,
    filter_hosts,
    parse_pci_alias,
    select,
)

GPU = PciDevice("0000:3b:00.0", "10de", "1028")


def host(name: str, **kw) -> Host:
    base = dict(id=name, name=name, vcpus=4, memory_mb=8192, disk_gb=100,
                cpu_ratio=1.0, ram_ratio=1.0)
    base.update(kw)
    return Host(**base)


def test_resources_and_reason() -> None:
    hosts = [host("a", memory_mb=1024), host("b"), host("c", up=False)]
    assert [h.name for h in select(hosts, Request(2, 2048, 10))] == ["b"]
    with pytest.raises(NoValidHost) as err:
        select(hosts, Request(2, 16384, 10))
    text = str(err.value)
    assert "ComputeFilter eliminated 1 of 3" in text and "RamFilter eliminated 2 of 2" in text


def test_no_hosts_at_all() -> None:
    with pytest.raises(NoValidHost, match="no compute nodes"):
        select([], Request(1, 1, 1))


def test_spread_and_pack() -> None:
    hosts = [host("a", memory_mb_used=4096), host("b")]
    assert select(hosts, Request(1, 512, 1))[0].name == "b"
    assert select(hosts, Request(1, 512, 1), strategy="pack")[0].name == "a"


def test_allocation_ratios() -> None:
    small = host("a", vcpus=2, cpu_ratio=4.0, vcpus_used=7)
    assert select([small], Request(1, 1, 1))
    with pytest.raises(NoValidHost, match="CoreFilter"):
        select([small], Request(2, 1, 1))


def test_availability_zone_and_image_properties() -> None:
    hosts = [host("a", availability_zone="edge"), host("b")]
    assert [h.name for h in filter_hosts(hosts, Request(1, 1, 1, availability_zone="edge"))] \
        == ["a"]
    with pytest.raises(NoValidHost, match="ImagePropertiesFilter"):
        filter_hosts(hosts, Request(1, 1, 1, image_properties={"architecture": "aarch64"}))
    assert filter_hosts(hosts, Request(1, 1, 1, image_properties={"architecture": "amd64"}))


def test_pci_alias() -> None:
    aliases = {"K20m": ("10de", "1028")}
    one, two = parse_pci_alias("K20m:1", aliases), parse_pci_alias("K20m:2", aliases)
    hosts = [host("cpu"), host("gpu", free_pci=(GPU,))]
    assert [h.name for h in filter_hosts(hosts, Request(1, 1, 1, pci=one))] == ["gpu"]
    with pytest.raises(NoValidHost, match="PciPassthroughFilter eliminated 2 of 2"):
        filter_hosts(hosts, Request(1, 1, 1, pci=two))
    with pytest.raises(ValueError, match="not defined"):
        parse_pci_alias("T4:1", aliases)


def test_server_groups_and_host_hints() -> None:
    hosts = [host("a", instances=frozenset({"i1"})), host("b")]
    anti = Request(1, 1, 1, group_policy="anti-affinity", group_hosts=("a",))
    assert [h.name for h in filter_hosts(hosts, anti)] == ["b"]
    aff = Request(1, 1, 1, group_policy="affinity", group_hosts=("a",))
    assert [h.name for h in filter_hosts(hosts, aff)] == ["a"]
    soft = Request(1, 1, 1, group_policy="soft-anti-affinity", group_hosts=("b",))
    assert select(hosts, soft)[0].name == "a"
    assert [h.name for h in filter_hosts(hosts, Request(1, 1, 1, same_host=frozenset({"i1"})))] \
        == ["a"]
    assert [h.name for h in filter_hosts(
        hosts, Request(1, 1, 1, different_host=frozenset({"i1"})))] == ["b"]
    max_two = Request(1, 1, 1, group_policy="anti-affinity", group_hosts=("a",),
                      group_max_per_host=2)
    assert len(filter_hosts(hosts, max_two)) == 2


def every_filter(hosts: list[Host], req: Request) -> list[str] | str:
    """filter_hosts as it was before skipping: every filter on every host."""
    remaining, eliminated = list(hosts), []
    for name, check in FILTERS.items():
        before = len(remaining)
        remaining = [h for h in remaining if check(h, req)]
        if len(remaining) < before:
            eliminated.append(f"{name} eliminated {before - len(remaining)} of {before}")
        if not remaining:
            return f"No valid host was found. {'; '.join(eliminated)}."
    return [h.name for h in remaining]


def test_skipped_filters_change_nothing() -> None:
    rng = random.Random(7)
    names = [f"h{i}" for i in range(6)]
    for _ in range(2000):
        hosts = [host(n, availability_zone=rng.choice(["nova", "edge"]),
                      enabled=rng.random() > 0.1, memory_mb_used=rng.choice([0, 4096, 8192]),
                      arch=rng.choice(["x86_64", "aarch64"]),
                      free_pci=(GPU,) if rng.random() > 0.5 else (),
                      instances=frozenset(rng.sample(["i1", "i2", "i3"], rng.randint(0, 2))))
                 for n in names]
        req = Request(
            rng.randint(1, 4), rng.choice([512, 4096]), 10,
            availability_zone=rng.choice([None, "", "nova", "edge"]),
            image_properties=rng.choice([{}, {"architecture": "aarch64"}]),
            pci=rng.choice([(), (PciRequest("K20m", "10de", "1028", 1),)]),
            group_policy=rng.choice([None, "affinity", "anti-affinity", "soft-affinity"]),
            group_hosts=tuple(rng.sample(names, rng.randint(0, 2))),
            same_host=frozenset(rng.sample(["i1", "i2"], rng.randint(0, 1))),
            different_host=frozenset(rng.sample(["i1", "i3"], rng.randint(0, 1))),
            ignore_hosts=frozenset(rng.sample(names, rng.randint(0, 2))))
        try:
            got: list[str] | str = [h.name for h in filter_hosts(hosts, req)]
        except NoValidHost as err:
            got = str(err)
        assert got == every_filter(hosts, req)


def test_spare_nodes_take_only_evacuations_and_take_them_first() -> None:
    spare = host("spare", memory_mb=2048, aggregate_metadata={"ha_reserved": frozenset({"true"})})
    hosts = [spare, host("b", memory_mb_used=4096), host("c")]
    assert [h.name for h in select(hosts, Request(1, 512, 1))] == ["c", "b"]
    assert [h.name for h in select(hosts, Request(1, 512, 1, evacuation=True))] == [
        "spare", "c", "b"]
    with pytest.raises(NoValidHost, match="ReservedHostFilter eliminated 1 of 1"):
        select([spare], Request(1, 512, 1))
    # a full spare is filtered out by its resources, and the others still take the evacuee
    assert [h.name for h in select(hosts, Request(1, 4096, 1, evacuation=True))] == ["c", "b"]
