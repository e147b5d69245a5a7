"""The cluster map's model: nodes placed around the controller, overlay links, and changes.

Which links exist follows the overlay's shape: WireGuard peers every node with the
controller and with every other node (a mesh), OpenVPN carries node-to-node traffic
through the controller's server (a star), no overlay has no links.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CONTROLLER = "controller"
WIDTH, HEIGHT = 640, 420


@dataclass(frozen=True)
class Link:
    a: str
    b: str
    up: bool


def node_state(node: dict[str, Any]) -> str:
    """One word for the node's colour: fenced and disabled say more than up or down."""
    if node.get("fence_state") == "ok":
        return "fenced"
    if node.get("state") != "up":
        return "down"
    if node.get("health") not in (None, "up"):
        return str(node["health"])
    return "up" if node.get("enabled", True) else "disabled"


def links(nodes: list[dict[str, Any]], overlay: str) -> list[Link]:
    """The overlay's tunnels between nodes that have an overlay address; up if both ends are."""
    if overlay == "none":
        return []
    joined = [n for n in nodes if n.get("overlay_ip")]
    alive = {n["id"]: n.get("state") == "up" and n.get("fence_state") != "ok" for n in joined}
    found = [Link(CONTROLLER, n["id"], alive[n["id"]]) for n in joined]
    if overlay == "wireguard":
        for index, first in enumerate(joined):
            for second in joined[index + 1:]:
                found.append(Link(first["id"], second["id"],
                                  alive[first["id"]] and alive[second["id"]]))
    return found


def layout(ids: list[str]) -> dict[str, tuple[int, int]]:
    """The controller in the middle, the nodes evenly on a circle around it, first on top."""
    centre = (WIDTH // 2, HEIGHT // 2)
    # Room below each node for its two lines of label.
    radius = min(WIDTH, HEIGHT) * 0.34
    places = {CONTROLLER: centre}
    for index, ident in enumerate(ids):
        angle = 2 * math.pi * index / max(len(ids), 1) - math.pi / 2
        places[ident] = (round(centre[0] + radius * math.cos(angle)),
                         round(centre[1] + radius * math.sin(angle)))
    return places


def snapshot(nodes: list[dict[str, Any]], servers: list[dict[str, Any]]) -> dict[str, Any]:
    """What the change log compares: each node's state and each server's node."""
    return {"nodes": {n["id"]: {"name": n["name"], "state": node_state(n)} for n in nodes},
            "hosts": {s["id"]: [s["name"], s.get("host") or ""] for s in servers}}


def changes(before: dict[str, Any] | None, after: dict[str, Any]) -> list[str]:
    """Sentences for what changed between two snapshots: nodes coming, going, changing
    state, and servers moving from one node to another."""
    if before is None:
        return []
    said = []
    old_nodes, new_nodes = before["nodes"], after["nodes"]
    for ident, node in new_nodes.items():
        old = old_nodes.get(ident)
        if old is None:
            said.append(f"Node {node['name']} joined ({node['state']}).")
        elif old["state"] != node["state"]:
            said.append(f"Node {node['name']}: {old['state']} → {node['state']}.")
    said += [f"Node {node['name']} left." for ident, node in old_nodes.items()
             if ident not in new_nodes]
    for ident, (name, host) in after["hosts"].items():
        old_host = (before["hosts"].get(ident) or ["", ""])[1]
        if old_host and host and old_host != host:
            said.append(f"Instance {name} moved from {old_host} to {host}.")
    return said
