"""Fencing in the lab: each node's virtual IPMI BMC, registered as its fence device at join,
driven by the real fence_ipmilan, `atwill node fence test` and an `off` through fence_node."""

from __future__ import annotations

import json

from atwill.lab import Lab, bmc

LAB = {"nodes": 1}


def ipmilan(lab: Lab, node: str, action: str, password: str | None = None):
    octet = int(lab.host(node).ip.rsplit(".", 1)[1])
    return lab.exec(lab.state.controller.name, "/usr/sbin/fence_ipmilan", "--ip",
                    bmc.address(octet), "--username", bmc.USERNAME, "--password",
                    password or bmc.password(lab.directory), "--lanplus", "-o", action,
                    check=False)


def test_each_node_has_its_bmc_as_fence_device(lab: Lab) -> None:
    node = lab.node_names()[0]
    shown = json.loads(lab.atwill_ctl("node", "fence", "show", node).stdout)
    (device,) = shown["devices"]
    assert device["name"] == "bmc" and device["agent"] == "fence_ipmilan"
    assert device["options"]["password"] == "******"
    assert bmc.password(lab.directory) not in json.dumps(shown)


def test_fence_ipmilan_answers_and_refuses_a_wrong_password(lab: Lab) -> None:
    node = lab.node_names()[0]
    status = ipmilan(lab, node, "status")
    assert status.returncode == 0 and "Status: ON" in status.stdout, status.stderr
    assert ipmilan(lab, node, "status", "wrong-password").returncode == 1


def test_fence_test_then_off_cuts_the_power_and_on_boots_it(lab: Lab) -> None:
    node = lab.node_names()[0]
    tested = json.loads(lab.atwill_ctl("node", "fence", "test", node).stdout)
    assert [(t["ok"], t["power"]) for t in tested] == [(True, "on")]
    assert lab.namespace(node).pids()
    off = json.loads(lab.atwill_ctl("node", "fence", "off", node).stdout)
    assert off["ok"] and off["method"] == "bmc", off
    # As a power cut: nothing of the node runs any more (agent, dnsmasq, QEMU, …).
    assert lab.namespace(node).pids() == []
    assert ipmilan(lab, node, "status").returncode == 2
    shown = json.loads(lab.atwill_ctl("node", "fence", "show", node).stdout)
    assert shown["fence_state"] == "ok" and shown["fenced_at"]
    on = ipmilan(lab, node, "on")
    assert on.returncode == 0, on.stdout + on.stderr
    lab.wait_for(lambda: lab.node_states().get(node) == "up", 60, f"{node} back up")


def test_a_killed_node_can_be_fenced(lab: Lab) -> None:
    node = lab.node_names()[0]
    lab.kill_node(node)
    off = json.loads(lab.atwill_ctl("node", "fence", "off", node).stdout)
    assert off["ok"], off
    assert ipmilan(lab, node, "status").returncode == 2
    lab.start_node(node)
    lab.wait_node_state(node, "up", 60)
