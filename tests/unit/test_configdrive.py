"""Config drive contents in Nova's format, and the ISO that carries them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from atwill.agent.hypervisor import configdrive
from atwill.agent.hypervisor.configdrive import PortInfo
from atwill.hostlib.run import run

UUID = "5b0c3e38-6d5e-4c1f-9a59-1f0c2f1d7e11"
PORT = "8d2f8a8e-0b7c-4f54-9d3e-6a1f2b3c4d5e"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE demo@host"


def test_meta_data_has_identity_and_both_key_forms() -> None:
    meta = configdrive.meta_data(UUID, "demo", "demo", "proj", {"mykey": KEY},
                                 availability_zone="az1", launch_index=2, meta={"role": "web"})
    assert meta == {
        "uuid": UUID, "name": "demo", "hostname": "demo", "availability_zone": "az1",
        "project_id": "proj", "launch_index": 2, "meta": {"role": "web"},
        "public_keys": {"mykey": KEY},
        "keys": [{"name": "mykey", "type": "ssh", "data": KEY}],
        "devices": [],
    }
    assert "random_seed" in configdrive.meta_data(UUID, "d", "d", "p", random_seed="c2VlZA==")


def test_x509_keys_are_typed() -> None:
    meta = configdrive.meta_data(UUID, "d", "d", "p", {"cert": "-----BEGIN CERTIFICATE-----"})
    assert meta["keys"][0]["type"] == "x509"


def test_network_data_dhcp_port() -> None:
    data = configdrive.network_data([PortInfo(PORT, "fa:16:3e:11:22:33", "net-1", mtu=1400,
                                              dns=["10.0.0.2"])])
    assert data["links"] == [{"id": "tap8d2f8a8e0b7c", "vif_id": PORT, "type": "bridge",
                              "ethernet_mac_address": "fa:16:3e:11:22:33", "mtu": 1400}]
    assert data["networks"] == [{"id": "network0", "link": "tap8d2f8a8e0b7c",
                                 "network_id": "net-1", "type": "ipv4_dhcp"}]
    assert data["services"] == [{"type": "dns", "address": "10.0.0.2"}]


def test_network_data_static_ipv4_and_ipv6() -> None:
    ports = [
        PortInfo(PORT, "fa:16:3e:11:22:33", "net-1", dhcp=False, ip_address="10.0.0.5",
                 cidr="10.0.0.0/24", gateway="10.0.0.1", dns=["10.0.0.2"],
                 routes=[("192.168.0.0/16", "10.0.0.254")]),
        PortInfo("a" * 36, "fa:16:3e:44:55:66", "net-2", dhcp=False, ip_address="fd00::5",
                 cidr="fd00::/64", dns=["10.0.0.2"]),
    ]
    first, second = configdrive.network_data(ports)["networks"]
    assert first == {
        "id": "network0", "link": "tap8d2f8a8e0b7c", "network_id": "net-1", "type": "ipv4",
        "ip_address": "10.0.0.5", "netmask": "255.255.255.0",
        "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                   {"network": "192.168.0.0", "netmask": "255.255.0.0",
                    "gateway": "10.0.0.254"}],
        "services": [{"type": "dns", "address": "10.0.0.2"}],
    }
    assert second["type"] == "ipv6"
    assert second["netmask"] == "ffff:ffff:ffff:ffff::"
    assert second["routes"] == []
    # DNS servers are listed once across ports.
    assert configdrive.network_data(ports)["services"] == [{"type": "dns", "address": "10.0.0.2"}]


@pytest.mark.skipif(shutil.which("genisoimage") is None or shutil.which("isoinfo") is None,
                    reason="needs genisoimage and isoinfo")
def test_iso_has_the_openstack_layout(tmp_path: Path) -> None:
    meta = configdrive.meta_data(UUID, "demo", "demo", "proj", {"k": KEY})
    iso = tmp_path / "config.iso"
    configdrive.build_iso(iso, meta, configdrive.network_data([]), user_data=b"#!/bin/sh\n")
    volume = run(["isoinfo", "-d", "-i", str(iso)]).stdout
    assert "Volume id: config-2" in volume
    listing = run(["isoinfo", "-R", "-f", "-i", str(iso)]).stdout.split()
    for version in ("latest", "2012-08-10"):
        for name in ("meta_data.json", "network_data.json", "vendor_data.json", "user_data"):
            assert f"/openstack/{version}/{name}" in listing
    text = run(["isoinfo", "-R", "-i", str(iso), "-x",
                "/openstack/latest/meta_data.json"]).stdout
    assert json.loads(text)["uuid"] == UUID
    assert not (tmp_path / "config.iso.partial").exists()
