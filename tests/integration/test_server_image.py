"""createImage end to end in the lab: snapshot a real VM, boot a new server from the image."""

from __future__ import annotations

from atwill.lab import Lab
from tests.integration.vms import READY, create_server, upload_guest, wait_console, wait_status

LAB = {"nodes": 1}
SHARE_LAB = True  # with the modules of the same LAB (conftest.SharedLab)


def test_snapshot_boots_a_new_server(lab: Lab) -> None:
    base = upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.tiny")
    lab.openstack("network", "create", "net1")
    lab.openstack("subnet", "create", "--network", "net1", "--subnet-range", "10.10.0.0/24",
                  "sub1")
    vm = create_server(lab, "--flavor", "m1.tiny", "--image", "atwill-guest", "--network",
                       "net1", "vm")
    wait_console(lab, "vm", READY)

    snap = lab.openstack("server", "image", "create", "--name", "snap", "--wait", "vm",
                         "-f", "json", timeout=600)
    assert snap["status"] == "active", snap
    shown = lab.openstack("image", "show", "snap", "-f", "json")
    props = shown["properties"]
    assert props["image_type"] == "snapshot" and props["instance_uuid"] == vm["id"]
    assert props["base_image_ref"] == base
    assert shown["disk_format"] == "qcow2" and shown["visibility"] == "private"
    # The VM was paused only for the copy: it runs again, with no task left.
    after = wait_status(lab, "vm", "ACTIVE")
    assert after["OS-EXT-STS:task_state"] is None and after["OS-EXT-STS:power_state"] in (
        "Running", 1)
    actions = [e["Action"] for e in lab.openstack("server", "event", "list", "vm",
                                                  "-f", "json")]
    assert "createImage" in actions

    vm2 = create_server(lab, "--flavor", "m1.tiny", "--image", "snap", "--network", "net1",
                        "vm2")
    assert vm2["status"] == "ACTIVE"
    console = wait_console(lab, "vm2", READY)
    assert vm2["id"] in console

    lab.openstack("server", "delete", "--wait", "vm", "vm2", timeout=300)
    lab.openstack("image", "delete", "snap")
    names = [i["Name"] for i in lab.openstack("image", "list", "-f", "json")]
    assert "snap" not in names
