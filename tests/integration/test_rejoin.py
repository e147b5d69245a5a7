"""A partition never destroys guests: a cut-off node is not replaced by a join of its name
without the operator, and when it comes back removed it stops its VMs and keeps their disks."""

from __future__ import annotations

import json
from pathlib import Path

from atwill.lab import Lab, commands
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import READY, upload_guest, wait_console, wait_status

LAB = {"nodes": 1, "fence": False}  # a partitioned node must not be powered off
SHARE_LAB = True  # with the modules of the same LAB (conftest.SharedLab)


def _join_as(lab: Lab, host: str, name: str) -> tuple[int, str]:
    token = json.loads(lab.atwill_ctl("token", "create", "--json").stdout)
    out = lab.exec(host, commands.ATWILL, "join", token["url"], "--token", token["token"],
                   "--ca-hash", token["ca_hash"], "--name", name, "--state-dir",
                   lab.host(host).state_dir, check=False, timeout=120)
    return out.returncode, out.stdout + out.stderr


def test_partitioned_node_keeps_its_vm_through_a_rejoin_of_its_name(lab: Lab) -> None:
    upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.tiny")
    lab.openstack("network", "create", "net1")
    lab.openstack("subnet", "create", "--network", "net1", "--subnet-range", "10.10.0.0/24",
                  "sub1")
    vm = lab.openstack("server", "create", "--flavor", "m1.tiny", "--image", "atwill-guest",
                       "--network", "net1", "keep", "-f", "json")
    wait_status(lab, "keep", "ACTIVE", 180)  # its fault, if any, in the failure
    wait_console(lab, "keep", READY)  # console logs come on their own route, not heartbeats
    state = Path(lab.host("node1").state_dir)
    disk = state / "instances" / vm["id"] / "disk.qcow2"
    assert disk.exists()

    lab.partition("node1")
    lab.wait_node_state("node1", "down", 60)
    spare = lab.add_node(join=False)
    code, output = _join_as(lab, spare, "node1")
    assert code != 0 and "atwill node remove node1 --force" in output, output
    assert [n["state"] for n in lab.node_list() if n["name"] == "node1"] == ["down"]

    lab.atwill_ctl("node", "remove", "node1", "--force")
    code, output = _join_as(lab, spare, "node1")
    assert code == 0, output
    lab.wait_for(lambda: [n["state"] for n in lab.node_list() if n["name"] == "node1"]
                 == ["up"], 60, "the new node1 up")

    lab.heal("node1")
    lab.wait_for(lambda: not lab.agent_alive("node1"), 120, "the removed agent to stop")
    assert disk.exists(), "a partition destroyed a guest's disk"
    assert not [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    note = json.loads((state / "removed.json").read_text())
    assert note["stopped_instances"] == [vm["id"]]
    # The operator is told, on each start, and nothing starts the VM again.
    again = lab.exec("node1", commands.ATWILL, "agent", "--state-dir", str(state),
                     check=False, timeout=60)
    assert again.returncode == 1
    assert "was removed from its cloud" in again.stdout + again.stderr
    assert not [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    shown = wait_status(lab, "keep", "ERROR")
    assert "The node node1 was removed" in str(shown["fault"])

    left = lab.exec("node1", commands.ATWILL, "leave", "--state-dir", str(state))
    assert "kept" in left.stdout and disk.exists()
    lab.exec("node1", commands.ATWILL, "leave", "--purge", "--state-dir", str(state))
    assert not disk.exists()
    lab.openstack("server", "delete", "--wait", vm["id"])
