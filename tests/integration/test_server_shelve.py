"""shelve and unshelve, resize and cold migration end to end in the lab: a real VM is
snapshotted, offloaded and booted again; its disk moves between the two nodes."""

from __future__ import annotations

import re
import time
from pathlib import Path

from atwill.lab import Lab
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import (
    READY,
    console,
    create_server,
    upload_guest,
    wait_console,
    wait_server,
    wait_status,
)

LAB = {"nodes": 2}


def _qemus(lab: Lab) -> list[str]:
    return [p for p in host_processes(lab, "node1") if p.startswith("qemu")]


def test_shelved_server_is_offloaded_and_unshelved(lab: Lab) -> None:
    upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.tiny")
    lab.openstack("network", "create", "net1")
    lab.openstack("subnet", "create", "--network", "net1", "--subnet-range", "10.11.0.0/24",
                  "sub1")
    vm = create_server(lab, "--flavor", "m1.tiny", "--image", "atwill-guest", "--network",
                       "net1", "vm")
    wait_console(lab, "vm", READY)

    lab.openstack("server", "shelve", "vm")
    shown = wait_server(lab, "vm", ("SHELVED_OFFLOADED",), 600)
    assert shown["OS-EXT-SRV-ATTR:host"] is None
    image = lab.openstack("image", "show", "vm-shelved", "-f", "json")
    assert image["status"] == "active" and image["properties"]["instance_uuid"] == vm["id"]
    # The node destroys the offloaded VM (its QEMU quits).
    deadline = time.monotonic() + 60
    while _qemus(lab) and time.monotonic() < deadline:
        time.sleep(1)
    assert not _qemus(lab)

    lab.openstack("server", "unshelve", "vm")
    shown = wait_server(lab, "vm", ("ACTIVE",), 600)
    assert shown["OS-EXT-STS:task_state"] is None
    assert shown["OS-EXT-SRV-ATTR:host"] in ("node1", "node2")
    assert _qemus(lab)
    wait_console(lab, "vm", READY)
    names = [i["Name"] for i in lab.openstack("image", "list", "-f", "json")]
    assert "vm-shelved" not in names  # deleted once the server runs again

    lab.openstack("server", "delete", "--wait", "vm", timeout=300)


# Each boot counts itself on the disk, 512 MiB in, and says the count and the disk's size
# (512-byte sectors): a count that goes on proves the disk moved with its data.
BOOT_COUNTER = """#!/bin/sh
old=$(dd if=/dev/vda bs=1M skip=512 count=1 2>/dev/null | head -c 32 | tr -dc 'A-Z0-9=')
case "$old" in COUNT=*) n=${old#COUNT=} ;; *) n=0 ;; esac
n=$((n + 1))
printf 'COUNT=%s' "$n" | dd of=/dev/vda bs=1M seek=512 conv=notrunc 2>/dev/null
sync
echo "BOOT n=$n sectors=$(cat /sys/block/vda/size)"
"""


GIB1, GIB2 = 1 << 21, 1 << 22  # 1 and 2 GiB in sectors


def _boot(lab: Lab, n: int, sectors: int) -> None:
    """Wait for the guest's boot number n on a disk of that many sectors."""
    wait_console(lab, "mover", f"BOOT n={n} sectors={sectors}", timeout=120)


def _host(lab: Lab, status: str) -> str:
    return wait_status(lab, "mover", status, timeout=180)["OS-EXT-SRV-ATTR:host"]


def _ensure_base(lab: Lab) -> None:
    """The guest image, m1.tiny and net1 (the shelve test may have made them)."""
    if not [i for i in lab.openstack("image", "list", "-f", "json")
            if i["Name"] == "atwill-guest"]:
        upload_guest(lab)
    if not [f for f in lab.openstack("flavor", "list", "-f", "json") if f["Name"] == "m1.tiny"]:
        lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1",
                      "m1.tiny")
    if not lab.openstack("network", "list", "--name", "net1", "-f", "json"):
        lab.openstack("network", "create", "net1")
        lab.openstack("subnet", "create", "--network", "net1", "--subnet-range",
                      "10.11.0.0/24", "sub1")


def test_resize_confirm_cold_migrate_and_revert_keep_the_disk(lab: Lab,
                                                              tmp_path: Path) -> None:
    _ensure_base(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "2", "--vcpus", "1",
                  "m1.tiny2")
    script = tmp_path / "count.sh"
    script.write_text(BOOT_COUNTER)
    create_server(lab, "--flavor", "m1.tiny", "--image", "atwill-guest", "--network", "net1",
                  "--user-data", str(script), "mover")
    _boot(lab, 1, GIB1)
    source = _host(lab, "ACTIVE")

    lab.openstack("server", "resize", "--flavor", "m1.tiny2", "mover")
    dest = _host(lab, "VERIFY_RESIZE")
    assert dest != source
    _boot(lab, 2, GIB2)  # the copy, grown to 2 GiB, counts on
    lab.openstack("server", "resize", "confirm", "mover")
    assert _host(lab, "ACTIVE") == dest

    lab.openstack("server", "migrate", "mover")
    assert _host(lab, "VERIFY_RESIZE") == source
    _boot(lab, 3, GIB2)
    lab.openstack("server", "resize", "revert", "mover")
    assert _host(lab, "ACTIVE") == dest
    # Back on dest its own copy, kept stopped, boots again: its console log goes on from
    # its boot 2, where source's held boot 3 alone.
    deadline = time.monotonic() + 120
    while not {f"BOOT n={n} sectors={GIB2}" for n in (2, 3)} <= set(
            re.findall(r"BOOT n=\d+ sectors=\d+", console(lab, "mover"))):
        assert time.monotonic() < deadline, console(lab, "mover")[-2000:]
        time.sleep(2)
    kinds = [m["Type"] for m in lab.openstack("server", "migration", "list", "--server",
                                              "mover", "-f", "json")]
    assert sorted(kinds) == ["migration", "resize"]
    lab.openstack("server", "delete", "--wait", "mover", timeout=300)
    lab.openstack("flavor", "delete", "m1.tiny2")
