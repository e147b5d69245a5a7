"""The guest image boots under QEMU TCG in a namespace with DHCP, metadata and a config drive."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from atwill.guest.build import build_image
from atwill.hostlib.run import run

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(any(shutil.which(tool) is None for tool in (
        "qemu-system-x86_64", "qemu-img", "dnsmasq", "genisoimage", "syslinux", "mcopy",
        "mkfs.vfat", "apt-get", "dpkg-deb", "modinfo")), reason="needs the guest build tools"),
]

BRIDGE_ADDRESS = "10.77.0.1"
VM_ADDRESS = "10.77.0.10"
VM_MAC = "52:54:00:77:00:10"
METADATA_ADDRESS = "169.254.169.254"
PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAtwillGuestImageTestKey atwill@test"
READY = re.compile(r"atwill-guest ready: instance=(\S+) hostname=(\S+) ip=(\S+)")
BOOT_TIMEOUT = 90.0
POWERDOWN_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def image() -> Path:
    """The guest image, built once (and cached across runs in atwill's cache directory)."""
    return build_image().path


def meta_data(instance: str, hostname: str) -> dict[str, object]:
    return {"uuid": instance, "hostname": hostname, "name": hostname,
            "launch_index": 0, "availability_zone": "nova", "project_id": "p",
            "public_keys": {"test": PUBLIC_KEY + "\n"},
            "keys": [{"name": "test", "type": "ssh", "data": PUBLIC_KEY + "\n"}],
            "meta": {"role": "test"}}


def write_openstack_tree(root: Path, data: dict[str, object], user_data: str = "") -> Path:
    """root/openstack/latest/{meta_data.json,user_data}, the layout both sources share."""
    latest = root / "openstack" / "latest"
    latest.mkdir(parents=True)
    (latest / "meta_data.json").write_text(json.dumps(data, indent=2))
    if user_data:
        (latest / "user_data").write_text(user_data)
    return root


@dataclass
class Vm:
    """A QEMU process started by the test, its console log and QMP socket."""

    proc: subprocess.Popen[bytes]
    console: Path
    qmp: Path

    def console_text(self) -> str:
        return self.console.read_text(errors="replace") if self.console.exists() else ""

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if found := pattern.search(self.console_text()):
                return found
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"no {pattern.pattern!r} on the console:\n{self.console_text()}")

    def qmp_command(self, command: str) -> dict[str, object]:
        """Run one QMP command over the UNIX socket with plain JSON lines."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(self.qmp))
            reader = sock.makefile("rb")
            json.loads(reader.readline())  # the greeting
            reply: dict[str, object] = {}
            for name in ("qmp_capabilities", command):
                sock.sendall(json.dumps({"execute": name}).encode() + b"\n")
                while True:
                    reply = json.loads(reader.readline())
                    if "return" in reply or "error" in reply:
                        break
            reader.close()
            return reply


@dataclass
class Lab:
    """A namespace with a bridge, a tap for the VM and dnsmasq; everything it started."""

    netns: str
    tmp: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[object] = field(default_factory=list)

    def ns(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run(["ip", "netns", "exec", self.netns, *args], timeout=timeout)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop_all
        self.logs.append(log)
        proc = subprocess.Popen(["ip", "netns", "exec", self.netns, *args],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
        for log in self.logs:
            log.close()  # type: ignore[attr-defined]

    def start_metadata(self, data: dict[str, object], user_data: str = "") -> None:
        root = write_openstack_tree(self.tmp / "metadata", data, user_data)
        self.start("metadata", sys.executable, "-m", "http.server", "80",
                   "--bind", METADATA_ADDRESS, "--directory", str(root))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            probe = run(["ip", "netns", "exec", self.netns, sys.executable, "-c",
                         "import socket; socket.create_connection(('169.254.169.254', 80), 1)"],
                        check=False)
            if probe.returncode == 0:
                return
            time.sleep(0.1)
        raise AssertionError("the metadata server did not start")

    def boot(self, image: Path, name: str, cdrom: Path | None = None) -> Vm:
        overlay = self.tmp / f"{name}.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(image), "-F", "qcow2",
             str(overlay)])
        console, qmp = self.tmp / f"{name}-console.log", self.tmp / f"{name}.qmp"
        args = ["qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-display", "none",
                "-monitor", "none", "-serial", f"file:{console}",
                "-qmp", f"unix:{qmp},server=on,wait=off",
                "-drive", f"file={overlay},if=virtio",
                "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
                "-device", f"virtio-net-pci,netdev=n0,mac={VM_MAC}"]
        if cdrom is not None:
            args += ["-cdrom", str(cdrom)]
        return Vm(self.start(name, *args), console, qmp)

    def http_get(self, url: str, timeout: float = 20) -> str:
        code = ("import sys, urllib.request; "
                "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())")
        deadline = time.monotonic() + timeout
        while True:
            done = run(["ip", "netns", "exec", self.netns, sys.executable, "-c", code, url],
                       check=False)
            if done.returncode == 0 or time.monotonic() > deadline:
                return done.stdout
            time.sleep(0.5)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    netns = f"awt-gi-{uuid.uuid4().hex[:8]}"
    run(["ip", "netns", "add", netns])
    lab = Lab(netns, tmp_path)
    try:
        lab.ns("ip", "link", "set", "lo", "up")
        lab.ns("ip", "link", "add", "br0", "type", "bridge")
        lab.ns("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", "br0")
        lab.ns("ip", "addr", "add", f"{METADATA_ADDRESS}/32", "dev", "br0")
        lab.ns("ip", "link", "set", "br0", "up")
        lab.ns("ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
        lab.ns("ip", "link", "set", "tap0", "master", "br0", "up")
        lab.start("dnsmasq", "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--port=0",
                  "--interface=br0", "--bind-interfaces", "--no-ping", "--log-dhcp",
                  f"--dhcp-range={BRIDGE_ADDRESS[:-1]}100,{BRIDGE_ADDRESS[:-1]}200,1h",
                  f"--dhcp-host={VM_MAC},{VM_ADDRESS}",
                  f"--dhcp-option=option:router,{BRIDGE_ADDRESS}",
                  "--dhcp-option=option:mtu,1400",
                  f"--dhcp-leasefile={tmp_path / 'leases'}",
                  f"--pid-file={tmp_path / 'dnsmasq.pid'}")
        yield lab
    finally:
        lab.stop_all()
        run(["ip", "netns", "del", netns], check=False)


def power_down(vm: Vm) -> float:
    """Press the ACPI power button over QMP; seconds until QEMU exited."""
    started = time.monotonic()
    assert "return" in vm.qmp_command("system_powerdown")
    vm.proc.wait(timeout=POWERDOWN_TIMEOUT)
    return time.monotonic() - started


def test_boots_with_the_metadata_service(image: Path, lab: Lab) -> None:
    instance = str(uuid.uuid4())
    lab.start_metadata(meta_data(instance, "web-1"),
                       user_data="#!/bin/sh\necho user data ran on $(hostname)\n")
    started = time.monotonic()
    vm = lab.boot(image, "meta")
    ready = vm.wait_for(READY, BOOT_TIMEOUT)
    print(f"ready after {time.monotonic() - started:.1f} s: {ready.group(0)}")
    assert ready.groups() == (instance, "web-1", VM_ADDRESS)
    assert "atwill-guest keys: 1" in vm.console_text()
    assert "identity from metadata" in vm.console_text()
    assert lab.http_get(f"http://{VM_ADDRESS}/") == f"atwill-guest {instance} web-1\n"
    vm.wait_for(re.compile(r"atwill-guest user-data: user data ran on web-1"), 30)
    elapsed = power_down(vm)
    print(f"powered off {elapsed:.1f} s after system_powerdown")
    assert "atwill-guest: powering off" in vm.console_text()


def test_boots_with_a_config_drive(image: Path, lab: Lab, tmp_path: Path) -> None:
    instance = str(uuid.uuid4())
    tree = write_openstack_tree(tmp_path / "config-drive", meta_data(instance, "cd-1"))
    iso = tmp_path / "config.iso"
    run(["genisoimage", "-quiet", "-o", str(iso), "-V", "config-2", "-J", "-R", str(tree)])
    vm = lab.boot(image, "cdrom", cdrom=iso)
    ready = vm.wait_for(READY, BOOT_TIMEOUT)
    assert ready.groups() == (instance, "cd-1", VM_ADDRESS)
    assert "identity from config-drive" in vm.console_text()
    assert "atwill-guest keys: 1" in vm.console_text()
    assert lab.http_get(f"http://{VM_ADDRESS}/") == f"atwill-guest {instance} cd-1\n"
    power_down(vm)
