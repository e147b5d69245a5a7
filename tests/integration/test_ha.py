"""A node's power is cut: its server runs again on another node with its fixed IP, and when
the node boots again it destroys only its stale copy. Detection and total times are printed."""

from __future__ import annotations

import json
import time
from pathlib import Path

from atwill.lab import Lab
from tests.integration.overlay_checks import host_processes
from tests.integration.vms import upload_guest, wait_status

LAB = {"nodes": 2}


def _node(lab: Lab, name: str) -> dict:
    return json.loads(lab.atwill_ctl("node", "show", name).stdout)


def test_killed_node_is_evacuated_and_cleans_up_on_return(lab: Lab) -> None:
    upload_guest(lab)
    lab.openstack("flavor", "create", "--ram", "256", "--disk", "1", "--vcpus", "1", "m1.ha")
    lab.openstack("network", "create", "hanet")
    lab.openstack("subnet", "create", "--network", "hanet", "--subnet-range", "10.30.0.0/24",
                  "hasub")
    moved = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                          "--network", "hanet", "--availability-zone", "nova:node1", "moved",
                          "-f", "json")
    # Not moved: it stays on node2 and its disk must survive everything below.
    stays = lab.openstack("server", "create", "--flavor", "m1.ha", "--image", "atwill-guest",
                          "--network", "hanet", "--availability-zone", "nova:node2", "stays",
                          "-f", "json")
    before = wait_status(lab, "moved", "ACTIVE", 180)
    wait_status(lab, "stays", "ACTIVE", 180)
    assert before["OS-EXT-SRV-ATTR:host"] == "node1"
    stale = Path(lab.host("node1").state_dir) / "instances" / moved["id"]
    kept = Path(lab.host("node2").state_dir) / "instances" / stays["id"]
    assert stale.is_dir() and kept.is_dir()

    cut = time.monotonic()
    lab.kill_node("node1")
    lab.wait_for(lambda: _node(lab, "node1")["health"] == "down", 30, "node1 detected down")
    detection = time.monotonic() - cut
    lab.openstack("compute", "service", "set", "--down", "node1", "nova-compute")
    lab.wait_for(lambda: (s := lab.openstack("server", "show", "moved", "-f", "json"))
                 ["status"] == "ACTIVE" and s["OS-EXT-SRV-ATTR:host"] == "node2", 180,
                 "moved ACTIVE on node2")
    total = time.monotonic() - cut
    after = lab.openstack("server", "show", "moved", "-f", "json")
    assert after["addresses"] == before["addresses"]
    print(f"\nHA: detection {detection:.1f} s, power cut to ACTIVE elsewhere {total:.1f} s")
    assert detection < 6.0

    lab.start_node("node1")
    lab.wait_for(lambda: not stale.exists(), 120, "node1 to destroy its stale copy")
    assert kept.is_dir()
    assert _node(lab, "node1")["health"] == "up"
    qemus = [p for p in host_processes(lab, "node1") if p.startswith("qemu")]
    assert not qemus, qemus
    lab.openstack("compute", "service", "set", "--up", "node1", "nova-compute")
    lab.openstack("server", "delete", "--wait", moved["id"], stays["id"])
