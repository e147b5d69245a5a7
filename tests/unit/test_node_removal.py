"""A removed node keeps its guests' disks; leftovers of never-started VMs are found by name."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from atwill import pki
from atwill.agent import daemon, instances, renewal
from atwill.agent.client import ClusterError, check
from atwill.agent.config import AgentConfig
from atwill.agent.hypervisor import tap
from atwill.core.errors import BadRequest, PayloadTooLarge
from atwill.core.nodereports import check_instance_reports, check_inventory


@pytest.fixture
def links(monkeypatch: pytest.MonkeyPatch) -> dict[str, tuple[int, bool]]:
    """A fake host's interfaces: tap.links, ensure, create and delete act on this dict."""
    present: dict[str, tuple[int, bool]] = {"lo": (65536, True), "eth0": (1500, True),
                                            "tapnotaport": (1500, True)}
    monkeypatch.setattr(tap, "links", lambda netns=None: dict(present))
    monkeypatch.setattr(tap, "create", lambda name, bridge=None, mtu=None, netns=None:
                        present.__setitem__(name, (mtu or 1500, False)))  # made down
    monkeypatch.setattr(tap, "delete", lambda name, netns=None: present.pop(name, None))
    return present


def config(tmp_path: Path) -> AgentConfig:
    return AgentConfig(state_dir=tmp_path, controller_url="https://c:1", node_id="n",
                       name="node1")


def test_taps_of_instances_no_longer_wanted_go_even_if_their_vm_never_started(
        tmp_path: Path, links: dict) -> None:
    manager = instances.InstanceManager(config(tmp_path))
    wanted = [{"id": "i1", "nics": [{"port_id": "aaaaaaaa-1111-2222", "mtu": 1450}]},
              {"id": "i2", "nics": [{"port_id": "bbbbbbbb-3333-4444", "mtu": 1450}]}]
    manager.taps(wanted)
    assert {"tapaaaaaaaa1111", "tapbbbbbbbb3333"} <= set(links)
    # i2's QEMU never started (no spec, not in the driver's list); then it is deleted.
    manager.taps(wanted[:1])
    manager.converge([])  # nothing in the driver's list either
    assert "tapbbbbbbbb3333" not in links and "tapaaaaaaaa1111" in links
    assert "tapnotaport" in links and "eth0" in links  # not of the naming rule: not ours
    instances.remove_all(config(tmp_path), purge=False)  # atwill leave
    assert set(links) == {"lo", "eth0", "tapnotaport"}


def test_removed_is_a_type_not_a_message() -> None:
    def answer(body: dict) -> ClusterError:
        with pytest.raises(ClusterError) as caught:
            check(httpx.Response(403, json=body))
        return caught.value

    told = answer({"error": {"code": 403, "type": "node_removed", "message": "gone"}})
    assert told.removed and told.kind == "node_removed"
    text_only = answer({"error": {"code": 403, "message": "certificate has been revoked"}})
    assert not text_only.removed
    assert not answer({"error": "revoked"}).removed


class FakeInstances:
    def __init__(self) -> None:
        self.stopped = False

    def stop_all(self) -> list[str]:
        self.stopped = True
        return ["i1"]


class FakeOverlay:
    torn_down = False

    def teardown(self) -> None:
        self.torn_down = True


def test_a_removed_node_stops_its_vms_keeps_its_disks_and_will_not_start(
        tmp_path: Path) -> None:
    cfg = config(tmp_path)
    disk = cfg.instances_dir / "i1" / "disk.qcow2"
    disk.parent.mkdir(parents=True)
    disk.write_bytes(b"guest data")
    cfg.cache_desired({"revision": 3, "instances": [{"id": "i1"}]})
    fake, overlay = FakeInstances(), FakeOverlay()
    daemon.removed(cfg, fake, overlay)  # type: ignore[arg-type]
    assert fake.stopped and overlay.torn_down and disk.read_bytes() == b"guest data"
    note = json.loads(cfg.removed_marker.read_text())
    assert note["stopped_instances"] == ["i1"]
    agent = daemon.Agent(cfg)
    applied: list = []
    agent.apply = lambda desired, quiet=False: applied.append(desired)  # type: ignore
    assert agent.run() == 1 and applied == []  # the cached state would start i1 again


def test_bounds_on_reports() -> None:
    check_inventory({"vcpus": 2, "pci_devices": [{"address": "0000:00:01.0"}]})
    with pytest.raises(BadRequest, match="PCI devices"):
        check_inventory({"pci_devices": [{}] * 513})
    with pytest.raises(BadRequest, match="keys"):
        check_inventory({str(i): i for i in range(65)})
    with pytest.raises(PayloadTooLarge):
        check_inventory({"cpu_model": "x" * 200_000})
    with pytest.raises(BadRequest, match="instances"):
        check_instance_reports({str(i): {} for i in range(4097)})
    with pytest.raises(BadRequest, match="error"):
        check_instance_reports({"i": {"error": "e" * 5000}})


def test_console_is_not_in_the_instance_report(tmp_path: Path) -> None:
    manager = instances.InstanceManager(config(tmp_path))
    manager.driver.list = lambda: {"i1": "running"}  # type: ignore[method-assign]
    manager.driver.uuids = lambda: ["i1"]  # type: ignore[method-assign]
    manager.driver.state = lambda uuid: "running"  # type: ignore[method-assign]
    manager.driver.console = lambda uuid, length=None: "boot\n" * 50_000  # type: ignore
    report = manager.report()
    assert report == {"i1": {"state": "running", "reboot_serial": 0, "rebuild_serial": 0}}
    tails = manager.console_changes()
    assert len(tails["i1"].encode()) <= instances.CONSOLE_REPORT_BYTES
    manager.console_sent("i1", tails["i1"])
    assert manager.console_changes() == {}


def test_crl_lists_revoked_serials(tmp_path: Path) -> None:
    pki.create_ca(tmp_path)
    _key, csr = pki.make_key_and_csr("node1")
    _pem, serial = pki.sign_client_csr(tmp_path, csr, "node1")
    path = tmp_path / "crl.pem"
    assert pki.write_crl(tmp_path, [serial], path)
    assert not pki.write_crl(tmp_path, [serial], path)  # unchanged: not rewritten
    crl = x509.load_pem_x509_crl(path.read_bytes())
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())
    assert crl.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert pki.write_crl(tmp_path, [], path)
    assert len(list(x509.load_pem_x509_crl(path.read_bytes()))) == 0


def test_renewal_is_due_at_half_life(tmp_path: Path) -> None:
    pki.create_ca(tmp_path)
    key, csr = pki.make_key_and_csr("node1")
    pem, _ = pki.sign_client_csr(tmp_path, csr, "node1")
    start, end = pki.cert_lifetime(pem)
    assert dt.timedelta(days=1) < end - start <= dt.timedelta(days=pki.NODE_CERT_DAYS, hours=1)
    assert not renewal.due(pem, start + dt.timedelta(days=1))
    assert renewal.due(pem, start + (end - start) * 0.6)
    renewed = x509.load_pem_x509_csr(pki.make_csr(key, "node1"))
    assert pki.public_key_der(renewed) == pki.public_key_der(
        x509.load_pem_x509_certificate(pem))
