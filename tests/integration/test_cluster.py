"""Compute at will, in the lab: 3 nodes join by token over a WireGuard mesh."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from atwill.agent.client import tls_context
from atwill.lab import Lab
from tests.integration.overlay_checks import (
    full_mesh,
    host_process_ids,
    host_processes,
    overlay_ips,
    overlay_links,
    pings,
)

# No fence device: the agent-restart test leaves node1's agent dead for ~5 s, past the HA
# down threshold (2.6 s), and its BMC then powered node1 off (its WireGuard with it) in
# the middle of a test about re-adopting that WireGuard (found by the full run). Fencing
# has its own tests (test_fencing, test_ha).
LAB = {"nodes": 3, "fence": False}
SHARE_LAB = True  # with the modules of the same LAB (conftest.SharedLab)
HEARTBEAT_MISSES = 5


def test_three_nodes_join_and_mesh(lab: Lab) -> None:
    hypervisors = lab.openstack("hypervisor", "list", "-f", "json")
    assert sorted(h["Hypervisor Hostname"] for h in hypervisors) == ["node1", "node2", "node3"]
    assert {h["State"] for h in hypervisors} == {"up"}
    services = lab.openstack("compute", "service", "list", "-f", "json")
    assert sorted(s["Host"] for s in services if s["Binary"] == "nova-compute") == [
        "node1", "node2", "node3"]
    # From 2.88 Nova (and so OSC) moved resources to placement; 2.87 shows them.
    shown = lab.openstack("--os-compute-api-version", "2.87", "hypervisor", "show", "node1",
                          "-f", "json")
    assert int(shown["vcpus"]) >= 1 and int(shown["memory_mb"]) > 0
    assert shown["cpu_info"]["accelerator"] in ("kvm", "tcg")
    stats = lab.openstack("hypervisor", "stats", "show", "-f", "json")
    assert int(stats["count"]) == 3 and int(stats["vcpus"]) >= 3
    full_mesh(lab)
    node = [n for n in lab.node_list() if n["name"] == "node1"][0]
    assert node["inventory"]["accelerator"] in ("kvm", "tcg")
    assert node["overlay_ip"].startswith("100.72.")


def test_remove_then_rejoin_keeps_name_and_address(lab: Lab, tmp_path: Path) -> None:
    before = overlay_ips(lab)
    host = lab.host("node3")
    state = Path(host.state_dir)
    kept = tmp_path / "pki"
    shutil.copytree(state / "pki", kept)  # to prove the old certificate is refused later
    node_id = json.loads(lab.atwill_ctl("node", "show", "node3").stdout)["id"]
    node3_key = [n for n in lab.node_list() if n["name"] == "node3"][0]
    lab.remove_node("node3")
    # Told it was removed while it held no instances, the agent cleans up and exits.
    lab.wait_for(lambda: not lab.agent_alive("node3"), 30, "node3's agent to clean up and exit")
    assert not (state / "removed.json").exists() and not (state / "agent.yaml").exists()
    assert "node3" not in [h["Hypervisor Hostname"] for h in
                           lab.openstack("hypervisor", "list", "-f", "json")]
    assert "node3" not in [s["Host"] for s in
                           lab.openstack("compute", "service", "list", "-f", "json")]
    # its host is clean: no overlay interface, no process, no key or certificate
    assert overlay_links(lab, "node3") == []
    assert host_processes(lab, "node3") == []
    assert not (state / "pki").exists() and not (state / "agent.yaml").exists()
    # its peers dropped it
    for peer in ("node1", "node2"):
        lab.wait_for(lambda p=peer: not pings(lab, p, before["node3"], tries=1), 20,
                     f"{peer} to stop reaching node3")
    # its certificate is refused
    code = lab.exec("node3", *_heartbeat_with(kept, lab.url, node_id), check=False)
    assert "403" in code.stdout and "node_removed" in code.stdout, code.stdout + code.stderr
    del node3_key
    lab.join("node3")
    lab.wait_node_state("node3", "up", 60)
    assert overlay_ips(lab)["node3"] == before["node3"]
    full_mesh(lab)


def _heartbeat_with(pki: Path, url: str, node_id: str) -> list[str]:
    """A heartbeat sent from inside the host's namespace with a given certificate."""
    import sys

    code = (
        "import httpx, sys; from atwill.agent.client import tls_context; from pathlib import "
        f"Path; p=Path({str(pki)!r}); c=tls_context(p/'ca.pem', p/'node.pem', "
        "p/'node-key.pem'); r=httpx.post("
        f"{url!r}+'/cluster/v1/nodes/{node_id}/heartbeat', json={{'overlay': {{}}}}, "
        "verify=c); print(r.status_code, r.text)")
    return [sys.executable, "-c", code]


def test_controller_restart_loses_nothing(lab: Lab) -> None:
    before = {n["name"]: n["id"] for n in lab.node_list()}
    lab.kill_controller()
    lab.start_controller()
    for name in before:
        lab.wait_node_state(name, "up", 30)
    assert {n["name"]: n["id"] for n in lab.node_list()} == before
    full_mesh(lab)


def test_agent_restart_readopts_overlay(lab: Lab) -> None:
    links = overlay_links(lab, "node1")
    names = sorted(host_processes(lab, "node1"))
    tunnels = host_process_ids(lab, "node1", "wireguard-go")
    assert tunnels
    lab.kill_agent("node1")
    # with the agent dead, the overlay keeps working
    assert pings(lab, "node1", overlay_ips(lab)["node2"])
    lab.start_agent("node1")
    lab.wait_node_state("node1", "up", 30)
    assert overlay_links(lab, "node1") == links
    # the same wireguard-go, re-adopted, and nothing else left running beside it (a tool the
    # agent runs for a moment, such as `wg`, may be seen once: look again until it is gone)
    assert host_process_ids(lab, "node1", "wireguard-go") == tunnels
    lab.wait_for(lambda: sorted(host_processes(lab, "node1")) == names, 10,
                 f"node1's processes to be {names} again")
    full_mesh(lab)


def test_killed_node_goes_down_then_resumes(lab: Lab) -> None:
    lab.kill_node("node2")
    lab.wait_node_state("node2", "down", HEARTBEAT_MISSES * 1.0 + 10)
    hv = {h["Hypervisor Hostname"]: h["State"] for h in
          lab.openstack("hypervisor", "list", "-f", "json")}
    assert hv["node2"] == "down"
    lab.start_node("node2")
    lab.wait_node_state("node2", "up", 30)
    full_mesh(lab)


def test_node_with_instances_is_not_removed_without_force(lab: Lab) -> None:
    """A node reporting running VMs is kept unless --force (the instance issue adds VMs)."""
    with httpx.Client(verify=tls_context(Path(lab.ca_file))) as client:
        del client  # the agent reports running_vms; here we set it as the agent would
    node = lab.host("node1")
    state = Path(node.state_dir)
    node_id = json.loads(lab.atwill_ctl("node", "show", "node1").stdout)["id"]
    code = (
        "import httpx; from atwill.agent.client import tls_context; from pathlib import Path;"
        f"p=Path({str(state / 'pki')!r}); c=tls_context(p/'ca.pem', p/'node.pem', "
        f"p/'node-key.pem'); print(httpx.post({lab.url!r}+'/cluster/v1/nodes/{node_id}"
        "/heartbeat', json={'overlay': {}, 'running_vms': 2}, verify=c).status_code)")
    import sys

    lab.stop_agent("node1")
    assert lab.exec("node1", sys.executable, "-c", code).stdout.strip() == "200"
    refused = lab.atwill_ctl("node", "remove", "node1", check=False)
    assert refused.returncode == 1 and "2 instance(s)" in refused.stderr + refused.stdout
    assert "node1" in [n["name"] for n in lab.node_list()]
    lab.start_agent("node1")
    lab.wait_node_state("node1", "up", 30)
