"""The controller as an overlay peer: its key, address and endpoint."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from ...core.overlay import controller_address
from ..context import Controller

KEY_FILE = ("overlay", "wg-private.key")


def ensure_key(state_dir: Path) -> bool:
    """Make the controller's WireGuard private key once; True when it was made."""
    from atwill.hostlib.overlay.wireguard import generate_keypair

    path = state_dir.joinpath(*KEY_FILE)
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private, _public = generate_keypair()
    path.touch(mode=0o600)
    path.write_text(private + "\n")
    return True


@functools.lru_cache(maxsize=8)
def _public_key(path: Path, _mtime: int) -> str | None:
    from atwill.hostlib.overlay.wireguard import public_key_of

    return public_key_of(path.read_text().strip())


def public_key(state_dir: Path) -> str | None:
    path = state_dir.joinpath(*KEY_FILE)
    if not path.exists():
        return None
    return _public_key(path, path.stat().st_mtime_ns)


def controller_peer(ctl: Controller) -> dict[str, Any]:
    settings = ctl.settings
    host = settings.public_host or settings.listen_host
    return {"name": "controller", "public_key": public_key(settings.state_dir),
            "overlay_ip": controller_address(settings.overlay_cidr),
            "endpoint": f"{host}:{settings.overlay_port}", "keepalive": 25}
