"""shelve and unshelve end to end in the lab: a real VM is snapshotted, offloaded, booted again."""

from __future__ import annotations

import time

from atwill.lab import Lab
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import READY, upload_guest, wait_console, wait_status

LAB = {"nodes": 1}


def _qemus(lab: Lab) -> list[str]:
    return [p for p in host_processes(lab, "node1") if p.startswith("qemu")]


def test_shelved_server_is_offloaded_and_unshelved(lab: Lab) -> None:
    upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.tiny")
    lab.openstack("network", "create", "net1")
    lab.openstack("subnet", "create", "--network", "net1", "--subnet-range", "10.11.0.0/24",
                  "sub1")
    vm = lab.openstack("server", "create", "--flavor", "m1.tiny", "--image", "atwill-guest",
                       "--network", "net1", "--wait", "vm", "-f", "json", timeout=300)
    wait_console(lab, "vm", READY)

    lab.openstack("server", "shelve", "--wait", "vm", timeout=600)
    shown = wait_status(lab, "vm", "SHELVED_OFFLOADED")
    assert shown["OS-EXT-SRV-ATTR:host"] is None
    image = lab.openstack("image", "show", "vm-shelved", "-f", "json")
    assert image["status"] == "active" and image["properties"]["instance_uuid"] == vm["id"]
    # The node destroys the offloaded VM (its QEMU quits).
    deadline = time.monotonic() + 60
    while _qemus(lab) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _qemus(lab)

    lab.openstack("server", "unshelve", "--wait", "vm", timeout=600)
    shown = wait_status(lab, "vm", "ACTIVE")
    assert shown["OS-EXT-STS:task_state"] is None and shown["OS-EXT-SRV-ATTR:host"] == "node1"
    assert _qemus(lab)
    wait_console(lab, "vm", READY)
    names = [i["Name"] for i in lab.openstack("image", "list", "-f", "json")]
    assert "vm-shelved" not in names  # deleted once the server runs again

    lab.openstack("server", "delete", "--wait", "vm", timeout=300)
