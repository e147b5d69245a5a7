"""Claims under concurrency and an agent killed mid-build, on a one-node lab."""

from __future__ import annotations

import json
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

from atwill.lab import Lab
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import upload_guest, wait_status

# No fence device: an agent killed for ~3 s is silent past the HA down threshold (2.6 s), and
# a BMC would power the node off. Here the agent is what crashes, not the host: the node
# goes down, its fencing fails, nothing is evacuated, and the restarted agent resumes.
LAB = {"nodes": 1, "fence": False}
SHARE_LAB = True  # with the modules of the same LAB (conftest.SharedLab)


def _room_for_six(lab: Lab) -> int:
    """A flavor RAM size of which exactly six fit on node1 (RAM is overcommitted 1.5x)."""
    node = json.loads(lab.atwill_ctl("node", "show", "node1").stdout)
    capacity = int(node["memory_mb"] * 1.5)
    return capacity // 6


def test_ten_concurrent_creates_on_room_for_six(lab: Lab) -> None:
    upload_guest(lab)
    ram = _room_for_six(lab)
    lab.openstack("flavor", "create", "--ram", str(ram), "--disk", "1", "--vcpus", "1", "big")
    # The node, not the project's quota, must be what runs out.
    lab.openstack("quota", "set", "--ram", "-1", "--cores", "-1", "--instances", "-1", "admin")
    lab.openstack("network", "create", "cap")
    lab.openstack("subnet", "create", "--network", "cap", "--subnet-range", "10.20.0.0/24",
                  "cap-sub")

    def create(index: int) -> subprocess.CompletedProcess:
        return lab.openstack("server", "create", "--flavor", "big", "--image", "atwill-guest",
                             "--network", "cap", f"c{index}", check=False)

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(create, range(10)))
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        servers = lab.openstack("server", "list", "-f", "json")
        statuses = sorted(s["Status"] for s in servers if s["Name"].startswith("c"))
        if statuses.count("BUILD") == 0 and len(statuses) == 10:
            break
        time.sleep(2)
    assert statuses == ["ACTIVE"] * 6 + ["ERROR"] * 4, statuses
    for server in servers:
        if server["Status"] == "ERROR":
            shown = lab.openstack("server", "show", server["ID"], "-f", "json")
            assert "No valid host was found" in str(shown["fault"])
    node = json.loads(lab.atwill_ctl("node", "show", "node1").stdout)
    assert node["running_vms"] <= 6
    qemus = [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    assert len(qemus) == 6
    lab.openstack("server", "delete", "--wait", *[s["ID"] for s in servers])


def test_agent_killed_during_build(lab: Lab) -> None:
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "small")
    lab.openstack("server", "create", "--flavor", "small", "--image", "atwill-guest",
                  "--network", "cap", "interrupted")
    time.sleep(1.0)  # the agent has the desired state and is fetching or starting
    lab.kill_agent("node1")
    time.sleep(2)
    lab.start_agent("node1")
    shown = wait_status(lab, "interrupted", "ACTIVE", timeout=180)
    assert shown["status"] == "ACTIVE"
    qemus = [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    assert len(qemus) == 1  # one VM for one server: nothing half-made, nothing twice
    lab.openstack("server", "delete", "--wait", "interrupted")
    lab.wait_for(lambda: not [p for p in host_processes(lab, "node1")
                              if p.startswith("qemu")], 60, "the VM to be gone")
