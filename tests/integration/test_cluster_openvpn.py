"""The same join, mesh, remove and rejoin with the OpenVPN overlay (init --overlay openvpn)."""

from __future__ import annotations

from atwill.lab import Lab
from tests.integration.overlay_checks import (
    full_mesh,
    host_processes,
    overlay_ips,
    overlay_links,
    pings,
)

LAB = {"nodes": 2, "overlay": "openvpn"}


def test_join_mesh_remove_rejoin(lab: Lab) -> None:
    hypervisors = lab.openstack("hypervisor", "list", "-f", "json")
    assert sorted(h["Hypervisor Hostname"] for h in hypervisors) == ["node1", "node2"]
    assert overlay_links(lab, "node1") and overlay_links(lab, "node1")[0].startswith("aov-")
    full_mesh(lab)
    before = overlay_ips(lab)
    lab.remove_node("node2")
    lab.wait_for(lambda: not lab.agent_alive("node2"), 30, "node2's agent to clean up")
    assert overlay_links(lab, "node2") == [] and host_processes(lab, "node2") == []
    assert "node2" not in [h["Hypervisor Hostname"] for h in
                           lab.openstack("hypervisor", "list", "-f", "json")]
    lab.wait_for(lambda: not pings(lab, "node1", before["node2"], tries=1), 20,
                 "node1 to stop reaching node2")
    lab.join("node2")
    lab.wait_node_state("node2", "up", 60)
    assert overlay_ips(lab)["node2"] == before["node2"]
    full_mesh(lab)
