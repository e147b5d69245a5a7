"""Per-instance counters: parsing /proc and QMP, bounds on the heartbeat, the agent's reader."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from atwill.agent import instances
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor.spec import InstancePaths, Nic
from atwill.agent.instance_metrics import InstanceMetrics
from atwill.controller.metrics_relay import CounterRelay
from atwill.core import instance_counters as counters
from atwill.core.errors import BadRequest

# A QEMU whose command name holds a space and a parenthesis: fields follow the last ')'.
STAT = ("4242 (qemu-system (x) 86) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
        "250 150 0 0 20 0 3 0 100 123456789 3000 18446744073709551615")
NET_DEV = """Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0
tapaaaabbbbcccc: 5000  40    0    0    0     0          0         0    70000      60    0    0    0     0       0          0
tapddddeeeeffff:  300   2    0    0    0     0          0         0      900       7    0    0    0     0       0          0
br-int:  99999999   9    0    0    0     0          0         0 99999999       9    0    0    0     0       0          0
"""  # noqa: E501 - the kernel's own line lengths
BLOCKSTATS = [
    {"device": "", "qdev": "/machine/peripheral/disk0/virtio-backend", "node-name": "root",
     "stats": {"rd_bytes": 1000, "wr_bytes": 200},
     "parent": {"node-name": "file", "stats": {"rd_bytes": 1000, "wr_bytes": 200}},
     "backing": {"node-name": "base", "stats": {"rd_bytes": 777, "wr_bytes": 0}}},
    {"device": "", "qdev": "/machine/peripheral/vol1/virtio-backend",
     "stats": {"rd_bytes": 30, "wr_bytes": 4}},
    {"device": "", "node-name": "nbd-export", "stats": {"rd_bytes": 5555, "wr_bytes": 5555}},
]


def test_cpu_seconds_and_resident_bytes_from_proc_stat() -> None:
    assert counters.cpu_and_rss(STAT, 100, 4096) == (4.0, 3000 * 4096)


def test_tap_bytes_are_the_guests_view_summed_over_its_taps() -> None:
    taps = {"tapaaaabbbbcccc", "tapddddeeeeffff"}
    # A tap's transmit is what the guest received; other interfaces do not count.
    assert counters.tap_bytes(NET_DEV, taps) == (70000 + 900, 5000 + 300)
    assert counters.tap_bytes(NET_DEV, set()) == (0, 0)


def test_block_bytes_count_each_guest_device_once() -> None:
    assert counters.block_bytes(BLOCKSTATS) == (1030, 204)
    assert counters.block_bytes([]) == (0, 0)


@pytest.mark.parametrize(("metrics", "words"), [
    ([1, 2], "not an object"),
    ({"cpu_seconds": 1, "temperature": 3}, "unknown keys (temperature)"),
    ({"cpu_seconds": -1}, "cpu_seconds"),
    ({"net_rx_bytes": "12"}, "net_rx_bytes"),
    ({"disk_read_bytes": True}, "disk_read_bytes"),
    ({"disk_write_bytes": 2.0 ** 64}, "disk_write_bytes"),
    ({"cpu_seconds": float("nan")}, "cpu_seconds"),
])
def test_bad_counters_are_refused_with_the_instance_named(metrics: Any, words: str) -> None:
    with pytest.raises(BadRequest) as caught:
        counters.check_reports({"ok": {"state": "running"},
                                "vm-1": {"state": "running", "metrics": metrics}})
    assert words in str(caught.value) and "vm-1" in str(caught.value)


def test_good_counters_and_reports_without_them_pass() -> None:
    counters.check_reports({"a": {"state": "running", "metrics": {
        "cpu_seconds": 1.5, "memory_rss_bytes": 2 ** 30, "net_rx_bytes": 0}},
        "b": {"state": "shutoff"}, "c": "not mine to judge"})


def test_the_relay_keeps_each_nodes_last_report_only() -> None:
    relay = CounterRelay()
    relay.record("n1", {"a": {"metrics": {"cpu_seconds": 1}}, "b": {"state": "running"}})
    relay.record("n2", {"c": {"metrics": {"cpu_seconds": 2}}})
    assert relay.of("n1") == {"a": {"cpu_seconds": 1}}
    relay.record("n1", {"d": {"metrics": {"net_tx_bytes": 5}}})
    assert relay.of("n1") == {"d": {"net_tx_bytes": 5}}
    relay.retain(["n1"])
    assert relay.of("n2") == {} and relay.of("n1") != {}


@dataclass
class FakeDriver:
    """This test's own process stands for a QEMU; its QMP socket is a scripted server."""

    sockets: Path
    nics: list[Nic] = field(default_factory=list)
    running: bool = True

    def pid(self, uuid: str) -> int | None:
        return os.getpid() if self.running else None

    def paths(self, uuid: str) -> InstancePaths:
        return InstancePaths.under(self.sockets, self.sockets, uuid)

    def spec(self, uuid: str) -> Any:
        return type("Spec", (), {"nics": self.nics})()

    def list(self) -> dict[str, str]:
        return {"vm": "running" if self.running else "shutoff", "off": "shutoff"}

    def uuids(self) -> list[str]:
        return list(self.list())

    def state(self, uuid: str) -> str:
        return self.list()[uuid]


@pytest.fixture
def qmp_dir() -> Iterator[Path]:
    # A UNIX socket path must fit 108 bytes, which pytest's tmp_path may not.
    with tempfile.TemporaryDirectory(prefix="awt-im-") as tmp:
        yield Path(tmp)


def serve_blockstats(path: Path, answers: int) -> threading.Thread:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)

    def loop() -> None:
        with server:
            for _ in range(answers):
                conn, _ = server.accept()
                with conn, conn.makefile("rwb") as stream:
                    stream.write(b'{"QMP": {"version": {}, "capabilities": []}}\n')
                    stream.flush()
                    for line in stream:
                        command = json.loads(line)
                        ret = BLOCKSTATS if command["execute"] == "query-blockstats" else {}
                        stream.write(json.dumps({"return": ret, "id": command["id"]})
                                     .encode() + b"\n")
                        stream.flush()
                        if command["execute"] == "query-blockstats":
                            break

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_the_agent_reads_a_running_instance_and_keeps_the_reading(qmp_dir: Path) -> None:
    driver = FakeDriver(qmp_dir, [Nic(mac="52:54:00:00:00:01", tap="lo")])
    server = serve_blockstats(driver.paths("vm").qmp, answers=1)
    reader = InstanceMetrics(driver, every=3600)
    first = reader.sample("vm")
    server.join(5)
    assert first is not None and set(first) == set(counters.KEYS)
    assert (first["disk_read_bytes"], first["disk_write_bytes"]) == (1030, 204)
    assert first["cpu_seconds"] > 0 and first["memory_rss_bytes"] > 1 << 20
    with open("/proc/self/net/dev") as dev:  # "lo" stands for the guest's tap here
        assert first["net_rx_bytes"] <= counters.tap_bytes(dev.read(), {"lo"})[0]
    # Within `every` the reading is reused: QMP is not asked again (nothing serves it).
    assert reader.sample("vm") is first
    reader.forget(set())
    driver.running = False
    assert reader.sample("vm") is None


def test_a_silent_monitor_costs_only_the_disk_counters(qmp_dir: Path) -> None:
    driver = FakeDriver(qmp_dir)  # no QMP socket at all
    reading = InstanceMetrics(driver, every=0).sample("vm")
    assert reading is not None and "disk_read_bytes" not in reading
    assert reading["net_rx_bytes"] == reading["net_tx_bytes"] == 0


def test_the_heartbeat_report_carries_a_running_instances_counters(qmp_dir: Path) -> None:
    driver = FakeDriver(qmp_dir)
    manager = instances.InstanceManager(AgentConfig(
        state_dir=qmp_dir, controller_url="https://c:1", node_id="n", name="node1"))
    manager.driver = driver  # type: ignore[assignment]
    manager.metrics = InstanceMetrics(driver)
    report = manager.report()
    assert set(report["vm"]["metrics"]) <= set(counters.KEYS)
    assert report["vm"]["metrics"]["cpu_seconds"] > 0 and "metrics" not in report["off"]
    counters.check_reports(report)  # what the controller accepts
    driver.running = False
    assert "metrics" not in manager.report()["vm"]
