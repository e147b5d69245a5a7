"""The agent's snapshot of a real QEMU VM under TCG: consistent, standalone, VM left as it was."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from atwill.agent import snapshot
from atwill.agent.hypervisor import tap
from atwill.agent.hypervisor.qemu import DriverError
from atwill.agent.hypervisor.spec import QEMU, InstanceSpec
from atwill.hostlib.run import HostCommandError, run
from tests.host import test_qemu_driver as qd

pytestmark = [pytest.mark.host,
              pytest.mark.skipif(shutil.which(QEMU) is None, reason="needs QEMU"),
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root")]

# The VM fixtures of the driver's tests: a namespace with dnsmasq, and the guest image.
lab = qd.lab
guest = qd.guest
MARK_OFFSET = "768M"  # in the overlay only: past the guest image's own data


def info(path: Path) -> dict:
    done = run(["qemu-img", "info", "-U", "--output", "json", str(path)])
    data: dict = json.loads(done.stdout)
    return data


def identical(a: Path, b: Path) -> bool:
    return run(["qemu-img", "compare", "-U", str(a), str(b)], check=False).returncode == 0


def start(lab: qd.Lab, guest: qd.Guest) -> InstanceSpec:
    spec = qd.make_spec(lab, guest)
    lab.driver.start(spec)
    pid = lab.driver.pid(spec.uuid)
    assert pid is not None
    lab.pids.append(pid)
    qd.wait_for(lambda: guest.ready in lab.driver.console(spec.uuid), qd.BOOT_WAIT,
                "ready line")
    return spec


def test_snapshot_of_a_running_vm_boots(lab: qd.Lab, guest: qd.Guest) -> None:
    driver = lab.driver
    spec = start(lab, guest)
    pid = driver.pid(spec.uuid)
    dest = lab.root / "snap.qcow2"
    snapshot.take(driver, spec.uuid, dest)
    assert driver.state(spec.uuid) == "running" and driver.pid(spec.uuid) == pid
    shown = info(dest)
    assert shown["format"] == "qcow2" and "backing-filename" not in shown
    assert "backing-filename" in info(driver.paths(spec.uuid).disk)
    assert identical(driver.paths(spec.uuid).disk, dest)

    # A paused VM is copied as it is and stays paused.
    driver.pause(spec.uuid)
    snapshot.take(driver, spec.uuid, lab.root / "paused.qcow2")
    assert driver.state(spec.uuid) == "paused"
    driver.unpause(spec.uuid)

    # A copy that fails leaves no file behind, and the guest runs again all the same.
    broken = lab.root / "no-such-dir" / "snap.qcow2"
    with pytest.raises(HostCommandError):
        snapshot.take(driver, spec.uuid, broken)
    assert driver.state(spec.uuid) == "running" and not broken.exists()

    # The snapshot is a disk of its own: a new VM boots from it alone.
    driver.delete(spec.uuid)
    tap.delete(spec.nics[0].tap, netns=lab.netns)
    clone = qd.make_spec(lab, qd.Guest(dest, "qcow2", guest.boot_marker, guest.ready,
                                       guest.acpi))
    driver.start(clone)
    clone_pid = driver.pid(clone.uuid)
    assert clone_pid is not None
    lab.pids.append(clone_pid)
    qd.wait_for(lambda: guest.ready in driver.console(clone.uuid), qd.BOOT_WAIT,
                "ready line of the VM booted from the snapshot")
    assert clone.uuid in driver.console(clone.uuid)


def test_snapshot_of_a_stopped_vm_has_the_overlay_data(lab: qd.Lab, guest: qd.Guest) -> None:
    driver = lab.driver
    spec = start(lab, guest)
    driver.stop(spec.uuid, timeout=60 if guest.acpi else 2)
    assert driver.state(spec.uuid) == "shutoff"
    disk = driver.paths(spec.uuid).disk
    run(["qemu-io", "-f", "qcow2", "-c", f"write -P 0xab {MARK_OFFSET} 64k", str(disk)])
    dest = lab.root / "stopped.qcow2"
    snapshot.take(driver, spec.uuid, dest)
    assert driver.state(spec.uuid) == "shutoff"
    assert "backing-filename" not in info(dest) and identical(disk, dest)
    read = run(["qemu-io", "-f", "qcow2", "-r", "-c", f"read -P 0xab {MARK_OFFSET} 64k",
                str(dest)])
    assert "Pattern verification failed" not in read.stdout
    with pytest.raises(DriverError, match="no disk"):
        snapshot.take(driver, str(uuid.uuid4()), lab.root / "missing.qcow2")
