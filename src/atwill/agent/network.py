"""The node's share of tenant networking: the data plane, driven by the desired state.

The data plane is only touched once this node has ports: an agent with none (a
node that has not been given any VM yet) changes nothing in its host's networking.
The external side (the uplink bridge, the node's address on it) is configured per node
(agent/net/uplink.py) and set up when a local router needs it.
"""

from __future__ import annotations

from typing import Any

from .config import AgentConfig
from .net.adapter import host_plan
from .net.plane import DataPlane
from .net.uplink import Uplink, UplinkConfig


class NetworkManager:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        net_dir = config.state_dir / "net"
        self.plane = DataPlane(net_dir, config.name, config.controller_url, config.ca)
        self.uplink = Uplink(UplinkConfig.load(config.state_dir), net_dir)

    @property
    def external_bridge(self) -> str | None:
        return self.uplink.bridge

    @property
    def active(self) -> bool:
        return (self.config.state_dir / "net" / "tables.json").exists()

    def apply(self, desired: dict[str, Any]) -> None:
        overlay = desired.get("overlay") or {}
        vtep = overlay.get("address") if overlay.get("kind") not in (None, "none") else None
        plan = host_plan(self.config.name, desired.get("network"),
                         desired.get("instances", []), vtep, self.external_bridge)
        if plan.ports:
            if plan.external is not None:
                plan.external = self.uplink.ensure(plan.external)
            self.plane.apply(plan)
        elif self.active:
            self.teardown()

    def teardown(self) -> None:
        if self.active:
            self.plane.teardown()
        self.uplink.teardown()
