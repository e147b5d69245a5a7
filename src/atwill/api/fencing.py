"""Schemas of the fencing part of the cluster API, shared by controller and CLI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FenceDeviceSet(BaseModel):
    """A fence device for one node; PUT replaces it wholly (secrets included)."""

    model_config = ConfigDict(extra="forbid")
    agent: str = Field(max_length=64, description="A fence agent, e.g. fence_ipmilan")
    options: dict[str, str] = Field(default_factory=dict, description=(
        "The agent's stdin options (ip, username, password, lanplus, ipport, "
        "pcmk_host_map, …); any named like passw*, *secret*, *key* is stored encrypted"))
    level: int = Field(default=1, description="Fencing level: 1 is tried first")
    timeout: int = Field(default=30, description="Seconds one run of the agent may take")


class FenceResultView(BaseModel):
    ok: bool
    method: str
    message: str
