"""The controller as an overlay peer: its key, address and endpoint.

Each controller of a cloud has its own WireGuard key (made here, never carried in a
controller bundle) and its own overlay address (settings.overlay_address, one of the
overlay's controller slots: `controller add` claims a free one). It writes them into
its registry row (controller/controllers.py); nodes peer with every live controller.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from ...config import Settings
from ...core.overlay import controller_slots, free_controller_slot
from ...core.overlay_peers import controller_peers
from ..context import Controller
from ..db.controllers import ControllerRecord

KEY_FILE = ("overlay", "wg-private.key")
log = logging.getLogger("atwill.overlay")


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


def endpoint(settings: Settings) -> str:
    """Where nodes dial this controller's WireGuard: "host:port", an IPv6 host bracketed."""
    host = settings.overlay_endpoint or settings.public_host or settings.listen_host
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{settings.overlay_port}"


def own_record(settings: Settings) -> dict[str, Any]:
    """This controller's overlay columns of its registry row (all None without a
    WireGuard overlay or before its key exists)."""
    key = public_key(settings.state_dir) if settings.overlay == "wireguard" else None
    if key is None:
        return {"overlay_ip": None, "overlay_key": None, "overlay_endpoint": None,
                "overlay_url": None}
    return {"overlay_ip": settings.overlay_ip, "overlay_key": key,
            "overlay_endpoint": endpoint(settings), "overlay_url": settings.overlay_url}


def controller_peer(ctl: Controller) -> dict[str, Any]:
    """This controller's own peer entry (as a node is told of it)."""
    settings = ctl.settings
    return {"name": "controller", "public_key": public_key(settings.state_dir),
            "overlay_ip": settings.overlay_ip, "endpoint": endpoint(settings),
            "keepalive": 25, "overlay_url": settings.overlay_url}


def _record(row: ControllerRecord) -> dict[str, Any]:
    return {"public_key": row.overlay_key, "overlay_ip": row.overlay_ip,
            "endpoint": row.overlay_endpoint, "overlay_url": row.overlay_url}


def controller_peers_of(ctl: Controller, live: list[ControllerRecord]) -> list[dict[str, Any]]:
    """Every live controller's peer, oldest first (the same order whichever controller
    answers), this one among them even before its first registration. A record
    repeating an address or a key already listed is left out (core/overlay_peers): the
    controller that holds it first keeps it. OpenVPN: this controller alone."""
    settings = ctl.settings
    if settings.overlay == "none":
        return []
    if settings.overlay != "wireguard":
        return [controller_peer(ctl)]
    own = _record(ControllerRecord(**own_record(settings)))
    rows = sorted(live, key=lambda r: (r.started_at, r.public_url))
    records = [own if r.public_url == settings.public_url else _record(r) for r in rows]
    if all(r.public_url != settings.public_url for r in rows):
        records.append(own)
    peers = controller_peers(records, settings.overlay_cidr)
    for peer in peers:
        if peer["public_key"] == own["public_key"]:
            peer["name"] = "controller"  # the one answering: its name before several
    return peers


def claim_address(settings: Settings) -> tuple[str, str | None]:
    """A controller slot for a controller being added: the first one no registered
    controller holds (a row of a controller gone for WINDOW is removed, so its slot may
    be handed out again: back later on it, that controller is no peer, the older holder
    keeps it). Without the database's answer (unreachable, not yet migrated), the first
    slot after those of the controllers its configured list names; the second value
    says so (a warning to print)."""
    from ..db.session import Database

    db = Database(settings.effective_database_url)
    try:
        with db.session() as session:
            taken = [a for a in session.scalars(select(ControllerRecord.overlay_ip)) if a]
        return free_controller_slot(settings.overlay_cidr, taken), None
    except SQLAlchemyError as error:
        listed = max(len(settings.controllers) - 1, 1)
        taken = controller_slots(settings.overlay_cidr)[:listed]
        return free_controller_slot(settings.overlay_cidr, taken), (
            f"could not read the controllers' overlay addresses ({type(error).__name__}); "
            "took the first after the controllers named in controller_urls")
    finally:
        db.dispose()
