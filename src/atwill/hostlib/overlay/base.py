"""What every overlay is given (a spec with peers) and what it must do (the Overlay protocol)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

IFNAMSIZ = 15  # Linux interface names hold at most 15 characters.


@dataclass(frozen=True)
class Peer:
    """One other member of the mesh; endpoint is "host:port", or None when it dials us."""

    name: str
    public_key: str
    overlay_ip: str
    endpoint: str | None
    keepalive: int = 25


@dataclass(frozen=True)
class OverlaySpec:
    """The whole desired overlay of this host: its interface, address and exact peer set."""

    kind: str
    ifname: str
    address: str
    prefix: int
    listen_port: int
    mtu: int
    peers: list[Peer]
    private_key_path: Path


def interface_name(prefix: str, seed: str) -> str:
    """prefix + 8 hex characters of sha256(seed): unique per host, stable across restarts."""
    name = prefix + hashlib.sha256(seed.encode()).hexdigest()[:8]
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
    return name


class Overlay(Protocol):
    """An overlay implementation bound to one interface of this host."""

    def apply(self, spec: OverlaySpec) -> None:
        """Converge idempotently: interface, key, port, address, MTU, up, exactly spec.peers."""
        ...

    def teardown(self) -> None:
        """Remove the interface and every process and file made for it; idempotent."""
        ...

    def status(self) -> dict[str, Any]:
        """Implementation, interface, and peers with their latest handshake and endpoint."""
        ...
