"""The node's share of tenant networking: the data plane, driven by the desired state.

The data plane is only touched once this node has ports: an agent with none (a
node that has not been given any VM yet) changes nothing in its host's networking.
"""

from __future__ import annotations

import os
from typing import Any

from .config import AgentConfig
from .net.adapter import host_plan
from .net.plane import DataPlane


class NetworkManager:
    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.plane = DataPlane(config.state_dir / "net", config.name)
        self.external_bridge = os.environ.get("ATWILL_EXTERNAL_BRIDGE") or None

    @property
    def active(self) -> bool:
        return (self.config.state_dir / "net" / "tables.json").exists()

    def apply(self, desired: dict[str, Any]) -> None:
        overlay = desired.get("overlay") or {}
        vtep = overlay.get("address") if overlay.get("kind") not in (None, "none") else None
        plan = host_plan(self.config.name, desired.get("network"),
                         desired.get("instances", []), vtep, self.external_bridge)
        if plan.ports:
            self.plane.apply(plan)
        elif self.active:
            self.plane.teardown()

    def teardown(self) -> None:
        if self.active:
            self.plane.teardown()
