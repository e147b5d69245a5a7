"""A node host's own figures: parsing /proc, what the controller keeps, the agent's reader,
and the families /metrics makes of them."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from atwill.agent.host_metrics import HostMetrics, overlay_interface
from atwill.controller.metrics_host import host_families
from atwill.core import host_figures as figures

STAT = """cpu  1000 20 300 50000 40 0 6 7 100 0
cpu0 500 10 150 25000 20 0 3 3 50 0
cpu1 500 10 150 25000 20 0 3 4 50 0
intr 123456 0 0
ctxt 999
btime 1700000000
"""
MEMINFO = """MemTotal:       16318540 kB
MemFree:         1234567 kB
MemAvailable:    8000000 kB
Buffers:          100000 kB
HugePages_Total:       0
"""
LOADAVG = "0.52 0.41 0.30 2/812 123456\n"


def test_cpu_seconds_are_the_hosts_total_line_by_mode() -> None:
    assert figures.cpu_seconds(STAT, 100) == {
        "user": 10.0, "nice": 0.2, "system": 3.0, "idle": 500.0, "iowait": 0.4,
        "irq": 0.0, "softirq": 0.06, "steal": 0.07}
    # An old kernel's shorter line: the modes it has.
    assert figures.cpu_seconds("cpu 100 0 50 900\n", 100) == {
        "user": 1.0, "nice": 0.0, "system": 0.5, "idle": 9.0}
    assert figures.cpu_seconds("intr 1 2 3\n", 100) == {}


def test_memory_and_load() -> None:
    assert figures.memory_bytes(MEMINFO) == {"memory_total_bytes": 16318540 * 1024,
                                             "memory_available_bytes": 8000000 * 1024}
    assert figures.load_average(LOADAVG) == {"load1": 0.52, "load5": 0.41, "load15": 0.30}
    assert figures.filesystem_bytes(4096, 1000, 250) == {
        "filesystem_size_bytes": 4096000, "filesystem_avail_bytes": 1024000}


def test_only_known_sound_figures_are_kept() -> None:
    report = {
        "cpu_seconds": {"user": 1.5, "idle": -3, "nice": "7", "steal": float("inf"),
                        "system": True, "bogus": 5, **{f"m{i}": i for i in range(5000)}},
        "memory_total_bytes": 2 ** 64, "memory_available_bytes": 1024,
        "load1": float("nan"), "load5": 0.5, "load15": None,
        "filesystem_size_bytes": [1], "filesystem_avail_bytes": 10,
        "overlay_receive_bytes": 7, "overlay_transmit_bytes": -1,
        "fan_rpm": 3000, "x" * 1000: 1,
    }
    assert figures.accepted(report) == {
        "cpu_seconds": {"user": 1.5}, "memory_available_bytes": 1024, "load5": 0.5,
        "filesystem_avail_bytes": 10, "overlay_receive_bytes": 7}
    for nothing in (None, "lots", [1, 2], {}, {"fan_rpm": 1}, {"cpu_seconds": {"x": 1}},
                    {"cpu_seconds": "busy", "load1": -1}):
        assert figures.accepted(nothing) is None, nothing


def test_the_agent_reads_its_host(tmp_path: Path) -> None:
    proc, net = tmp_path / "proc", tmp_path / "net"
    proc.mkdir()
    (proc / "stat").write_text(STAT)
    (proc / "meminfo").write_text(MEMINFO)
    (proc / "loadavg").write_text(LOADAVG)
    (net / "awg-x" / "statistics").mkdir(parents=True)
    (net / "awg-x" / "statistics" / "rx_bytes").write_text("123\n")
    (net / "awg-x" / "statistics" / "tx_bytes").write_text("456\n")
    instances = tmp_path / "instances"
    instances.mkdir()
    driver = SimpleNamespace(_impl=SimpleNamespace(ifname="awg-x"))
    reader = HostMetrics(instances, overlay_interface(driver), proc=proc, sys_net=net)
    got = reader.sample()
    ticks = os.sysconf("SC_CLK_TCK")
    assert got["cpu_seconds"] == figures.cpu_seconds(STAT, ticks)
    assert got["memory_total_bytes"] == 16318540 * 1024 and got["load15"] == 0.30
    vfs = os.statvfs(instances)
    assert got["filesystem_size_bytes"] == vfs.f_frsize * vfs.f_blocks
    assert got["overlay_receive_bytes"] == 123 and got["overlay_transmit_bytes"] == 456
    assert figures.accepted(got) == got  # what the agent sends, the controller keeps
    # Within `every`, the last reading is sent again without reading /proc.
    (proc / "loadavg").write_text("9.0 9.0 9.0 1/1 1\n")
    assert reader.sample()["load1"] == 0.52


def test_a_host_without_overlay_or_proc_sends_what_it_has(tmp_path: Path) -> None:
    reader = HostMetrics(tmp_path / "instances", overlay_interface(SimpleNamespace()),
                         proc=tmp_path / "noproc", sys_net=tmp_path / "nonet")
    got = reader.sample()
    assert set(got) == {"filesystem_size_bytes", "filesystem_avail_bytes"}
    # An interface name that would leave /sys/class/net is not read.
    sneaky = HostMetrics(tmp_path, lambda: "../../etc", proc=tmp_path, sys_net=tmp_path)
    assert "overlay_receive_bytes" not in sneaky.read()


class _Nodes(Collector):
    def __init__(self, nodes: list[SimpleNamespace]) -> None:
        self.nodes = nodes

    def collect(self):  # type: ignore[no-untyped-def]
        return host_families(self.nodes)


def test_families_per_node_and_nothing_for_a_silent_one() -> None:
    report = {"cpu_seconds": {"user": 10.0, "idle": 500.0}, "memory_total_bytes": 2048,
              "load1": 0.5, "overlay_transmit_bytes": 9}
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Nodes([
        SimpleNamespace(name="n1", host_status={"metrics": report, "uptime_s": 5}),
        SimpleNamespace(name="old", host_status={"uptime_s": 5}),
        SimpleNamespace(name="junk", host_status={"metrics": {"load1": -4}}),
        SimpleNamespace(name="never", host_status=None)]))
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(generate_latest(registry).decode())
               for s in f.samples}
    assert samples == {
        ("atwill_node_cpu_seconds_total", (("mode", "user"), ("node", "n1"))): 10.0,
        ("atwill_node_cpu_seconds_total", (("mode", "idle"), ("node", "n1"))): 500.0,
        ("atwill_node_memory_total_bytes", (("node", "n1"),)): 2048,
        ("atwill_node_load1", (("node", "n1"),)): 0.5,
        ("atwill_node_overlay_transmit_bytes_total", (("node", "n1"),)): 9}
