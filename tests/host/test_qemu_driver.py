"""QemuDriver boots real VMs under TCG in a network namespace of their own."""

from __future__ import annotations

import os
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from atwill.agent.hypervisor import configdrive, tap
from atwill.agent.hypervisor.configdrive import PortInfo
from atwill.agent.hypervisor.qemu import QemuDriver
from atwill.agent.hypervisor.spec import QEMU, InstanceSpec, Nic
from atwill.core import guest_ids
from atwill.hostlib.run import ChildProcess, HostCommandError, run

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

FALLBACK_READY = "atwill-fallback ready"
# When the guest image is not available: a boot sector that writes a line to COM1 and halts.
FALLBACK_MESSAGE = (FALLBACK_READY + "\r\n").encode() + b"\0"
FALLBACK_CODE = bytes([0x31, 0xC0,              # xor ax, ax
                       0x8E, 0xD8,              # mov ds, ax
                       0xBE, 0x15, 0x7C,        # mov si, 0x7c15 (the message below)
                       0xAC,                    # lodsb
                       0x84, 0xC0,              # test al, al
                       0x74, 0x06,              # jz halt
                       0xBA, 0xF8, 0x03,        # mov dx, 0x3f8
                       0xEE,                    # out dx, al
                       0xEB, 0xF5,              # jmp lodsb
                       0xF4,                    # halt: hlt
                       0xEB, 0xFD])             # jmp halt
BOOT_WAIT = 120.0


@dataclass
class Guest:
    """The base image and what its console says when it booted and when it is ready."""

    path: Path
    image_format: str
    boot_marker: str
    ready: str
    acpi: bool


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    """The atwill guest image when the guest builder exists, else a boot sector."""
    try:
        from atwill.guest.build import build_image
        return Guest(build_image().path, "qcow2", "SYSLINUX", "atwill-guest ready:", True)
    except Exception:  # noqa: BLE001 - any failure of the builder means: use the fallback
        path = tmp_path_factory.mktemp("fallback") / "boot.img"
        path.write_bytes(FALLBACK_CODE.ljust(0x15, b"\0") + FALLBACK_MESSAGE)
        path.write_bytes(path.read_bytes().ljust(510, b"\0") + b"\x55\xaa")
        return Guest(path, "raw", FALLBACK_READY, FALLBACK_READY, False)


@dataclass
class Lab:
    """A namespace with a bridge and dnsmasq, and a driver launching QEMU inside it."""

    netns: str
    root: Path
    driver: QemuDriver
    started: list[str]
    pids: list[int]


@pytest.fixture
def lab() -> Iterator[Lab]:
    """A fresh namespace (awt-qd-…); everything created is removed even on failure."""
    tag = uuid.uuid4().hex[:6]
    netns = f"awt-qd-{tag}"
    root = Path(tempfile.mkdtemp(prefix=f"awt-qd-{tag}-", dir="/tmp"))
    root.chmod(0o711)  # QEMU's own user passes through to its disk (never lists)
    driver = QemuDriver(root / "instances", sockets_dir=root / "qmp",
                        launcher=["ip", "netns", "exec", netns])
    state = Lab(netns, root, driver, [], [])
    dnsmasq = ChildProcess(root / "dnsmasq.pid", f"--pid-file={root}/dnsmasq.real.pid")
    run(["ip", "netns", "add", netns])
    try:
        ns = ["ip", "-n", netns]
        run([*ns, "link", "set", "lo", "up"])
        run([*ns, "link", "add", "br0", "type", "bridge"])
        run([*ns, "addr", "add", "10.77.0.1/24", "dev", "br0"])
        run([*ns, "link", "set", "br0", "up"])
        dnsmasq.start(["ip", "netns", "exec", netns, "dnsmasq", "--keep-in-foreground",
                       "--no-resolv", "--no-hosts", "--interface=br0", "--bind-interfaces",
                       "--dhcp-range=10.77.0.10,10.77.0.50,1h", "--port=0",
                       f"--dhcp-leasefile={root}/leases", f"--pid-file={root}/dnsmasq.real.pid"],
                      root / "dnsmasq.log")
        yield state
    finally:
        for instance in state.started:
            driver.delete(instance)
        for pid in state.pids:
            # Kill by the PIDs we started, should delete have failed to.
            _kill_if_ours(pid, state.started)
        dnsmasq.stop()
        run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(root, ignore_errors=True)


def _kill_if_ours(pid: int, instances: list[str]) -> None:
    # The instance uuid in its argv tells our QEMU from a process that reused the PID.
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        if any(instance in argv for instance in instances):
            os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll condition until true; the seconds it took, or fail saying what did not happen."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what} did not happen within {timeout} s")
        time.sleep(0.2)
    return time.monotonic() - started


def make_spec(lab: Lab, guest: Guest, config_drive: bool = True) -> InstanceSpec:
    instance = str(uuid.uuid4())
    port = str(uuid.uuid4())
    nic = Nic("fa:16:3e:" + ":".join(instance[i:i + 2] for i in (0, 2, 4)),
              tap.tap_name(port), 1500, "br0")
    tap.create(nic.tap, bridge=nic.bridge, netns=lab.netns)
    cd = None
    if config_drive:
        cd = lab.driver.paths(instance).config_drive
        cd.parent.mkdir(parents=True)
        configdrive.build_iso(
            cd, configdrive.meta_data(instance, "vm-" + instance[:4], "vm-" + instance[:4],
                                      "proj", {"k": "ssh-ed25519 AAAAC3Nz demo"}),
            configdrive.network_data([PortInfo(port, nic.mac, "net-1")]))
    lab.started.append(instance)
    return InstanceSpec(uuid=instance, name="vm-" + instance[:4], vcpus=1, memory_mb=192,
                        disk_gb=1, image_path=guest.path, image_format=guest.image_format,
                        nics=[nic], config_drive=cd, accel="tcg")


def assert_unprivileged(pid: int, disk: Path) -> int:
    """QEMU runs as its instance's own user (the disk's owner), with no capability; its uid."""
    status = dict(line.split(":", 1) for line in
                  Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    uid, gid = status["Uid"].split()[0], status["Gid"].split()[0]
    assert guest_ids.in_block(int(uid)) and guest_ids.in_block(int(gid))
    assert status["Uid"].split() == [uid] * 4 and status["Gid"].split() == [gid] * 4
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    assert status["Groups"].split() in ([], [gid])
    assert disk.stat().st_uid == int(uid) and disk.stat().st_mode & 0o077 == 0
    return int(uid)


def boots(driver: QemuDriver, instance: str, guest: Guest) -> int:
    return driver.console(instance).count(guest.boot_marker)


def test_lifecycle(lab: Lab, guest: Guest) -> None:
    driver = lab.driver
    spec = make_spec(lab, guest)
    started = time.monotonic()
    driver.start(spec)
    launch = time.monotonic() - started
    assert driver.state(spec.uuid) == "running"
    pid = driver.pid(spec.uuid)
    assert pid is not None
    lab.pids.append(pid)
    uid = assert_unprivileged(pid, driver.paths(spec.uuid).disk)
    ready = wait_for(lambda: guest.ready in driver.console(spec.uuid), BOOT_WAIT, "ready line")
    print(f"launch {launch:.2f} s, ready line after {ready:.1f} s")
    if guest.acpi:
        console = driver.console(spec.uuid)
        assert f"instance={spec.uuid}" in console
        assert "identity from config-drive" in console
        address = re.search(r"ip=(10\.77\.0\.\d+)", console)
        assert address, console
        page = run(["ip", "netns", "exec", lab.netns, "wget", "-q", "-T", "5", "-O", "-",
                    f"http://{address.group(1)}/"]).stdout
        assert spec.uuid in page

    driver.start(spec)  # idempotent: already running, same process
    assert driver.pid(spec.uuid) == pid

    driver.pause(spec.uuid)
    assert driver.state(spec.uuid) == "paused"
    driver.unpause(spec.uuid)
    assert driver.state(spec.uuid) == "running"

    # A new driver on the same directory (a restarted agent) finds the VM as it was.
    again = QemuDriver(driver.instances_dir, driver.sockets_dir, launcher=driver.launcher)
    assert again.list() == {spec.uuid: "running"}
    assert again.pid(spec.uuid) == pid

    took = time.monotonic()
    driver.stop(spec.uuid, timeout=60 if guest.acpi else 2)
    print(f"stop {time.monotonic() - took:.1f} s")
    assert driver.state(spec.uuid) == "shutoff"
    assert not _alive(pid)

    driver.start(spec)
    new_pid = driver.pid(spec.uuid)
    assert new_pid is not None and new_pid != pid
    lab.pids.append(new_pid)
    wait_for(lambda: boots(driver, spec.uuid, guest) == 2, BOOT_WAIT, "second boot")

    driver.reboot(spec.uuid, hard=True)
    wait_for(lambda: boots(driver, spec.uuid, guest) == 3, BOOT_WAIT, "boot after reset")
    assert driver.pid(spec.uuid) == new_pid

    if guest.acpi:
        # The guest watches the power button only once booted, as real guests do.
        wait_for(lambda: guest.ready in driver.console(spec.uuid).rsplit(guest.boot_marker)[-1],
                 BOOT_WAIT, "ready line after reset")
    # Soft: an ACPI power-off and a fresh QEMU; a guest deaf to ACPI gets a reset instead.
    took = time.monotonic()
    driver.reboot(spec.uuid, hard=False, timeout=60 if guest.acpi else 2)
    wait_for(lambda: boots(driver, spec.uuid, guest) == 4, BOOT_WAIT, "boot after soft reboot")
    print(f"soft reboot to next boot {time.monotonic() - took:.1f} s")
    soft_pid = driver.pid(spec.uuid)
    assert soft_pid is not None
    lab.pids.append(soft_pid)
    assert (soft_pid != new_pid) is guest.acpi

    took = time.monotonic()
    driver.suspend(spec.uuid)
    print(f"suspend {time.monotonic() - took:.2f} s")
    assert driver.state(spec.uuid) == "suspended"
    took = time.monotonic()
    driver.resume(spec.uuid)
    print(f"resume {time.monotonic() - took:.2f} s")
    assert driver.state(spec.uuid) == "running"
    resumed = driver.pid(spec.uuid)
    assert resumed is not None
    lab.pids.append(resumed)
    assert assert_unprivileged(resumed, driver.paths(spec.uuid).disk) == uid
    assert boots(driver, spec.uuid, guest) == 4  # resumed, not booted again

    driver.delete(spec.uuid)
    driver.delete(spec.uuid)  # idempotent
    tap.delete(spec.nics[0].tap, netns=lab.netns)
    assert driver.state(spec.uuid) == "missing"
    assert not any(_alive(p) for p in lab.pids)
    assert not tap.exists(spec.nics[0].tap, netns=lab.netns)
    assert not driver.paths(spec.uuid).directory.exists()
    assert not driver.paths(spec.uuid).qmp.exists()


def test_failed_start_leaves_nothing(lab: Lab, guest: Guest) -> None:
    spec = make_spec(lab, guest, config_drive=False)
    # A config drive that does not exist makes QEMU fail after the overlay was made.
    missing = lab.root / "no-such.iso"
    broken = InstanceSpec(**{**spec.__dict__, "config_drive": missing})
    with pytest.raises(HostCommandError, match="no-such.iso"):
        lab.driver.start(broken)
    assert not lab.driver.paths(spec.uuid).directory.exists()
    assert lab.driver.state(spec.uuid) == "missing"
    assert lab.driver.list() == {}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
