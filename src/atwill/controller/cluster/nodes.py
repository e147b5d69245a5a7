"""Nodes: register at join, heartbeat, up/down, disable/enable, remove."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...config import Settings
from ...core import ha_health, overlay, restart_notice
from ...core.errors import BadRequest, Conflict, NotFound
from ...pki import sign_client_csr
from ..context import Controller
from ..db.base import iso, utcnow
from ..db.controllers import ControllerRecord
from ..db.models import Instance, Node, OverlayAddress, RevokedCertificate
from ..revision import bump
from ..servers.lifecycle import fail
from ..volume import node_removal
from .controller_peer import public_key


def find(session: Session, ident: str) -> Node:
    node = session.get(Node, ident) or session.scalar(select(Node).where(Node.name == ident))
    if node is None:
        raise NotFound(f"No node named or with id {ident}.")
    return node


def overlay_address(session: Session, cidr: str, name: str) -> str:
    """The name's address: the one it had before, or the lowest free one."""
    row = session.get(OverlayAddress, name)
    if row is None:
        used = session.scalars(select(OverlayAddress.address))
        row = OverlayAddress(name=name, address=overlay.allocate(cidr, used))
        session.add(row)
        session.flush()
    return row.address


def underlay_source(settings: Settings, source: str) -> str:
    """A request's source address as the node's underlay endpoint, or "" when it came
    through the overlay: with several controllers the agents call them at their overlay
    URLs, and taking the node's overlay address for its endpoint would tell every peer to
    dial the tunnel through itself (the endpoint learned on the underlay is kept)."""
    if settings.overlay != "none" and overlay.within(settings.overlay_cidr, source):
        return ""
    return source


def apply_inventory(node: Node, inventory: dict[str, Any]) -> None:
    node.inventory = inventory
    node.vcpus = int(inventory.get("vcpus") or 0)
    node.memory_mb = int(inventory.get("memory_mb") or 0)
    node.local_gb = int(inventory.get("disk_gb") or 0)


def check_key_free(session: Session, ctl: Controller, name: str, key: str | None) -> None:
    """Conflict when another node or a controller holds key: every peer list keeps the
    first holder of a key only (core/overlay_peers), so a node joined with another's
    public key (they are all in the desired state) would cut that one off."""
    if not key:
        return
    holder = session.scalar(select(Node.name).where(Node.wireguard_public_key == key,
                                                    Node.name != name))
    if holder is not None:
        raise Conflict(f"Node {holder} already holds this WireGuard public key; each node "
                       "needs its own key pair (a copied state directory or image carries "
                       "another node's).")
    own = public_key(ctl.settings.state_dir) if ctl.settings.overlay == "wireguard" else None
    if key == own or session.scalar(select(ControllerRecord.id).where(
            ControllerRecord.overlay_key == key)) is not None:
        raise Conflict("A controller of this cloud holds this WireGuard public key; a node "
                       "needs its own key pair.")


def register(session: Session, ctl: Controller, name: str, csr: str, wg_key: str | None,
             overlay_port: int, inventory: dict[str, Any], source: str) -> tuple[Node, bytes]:
    """Create the node (replacing a down one of the same name) and sign its certificate."""
    check_key_free(session, ctl, name, wg_key)
    old = session.scalar(select(Node).where(Node.name == name))
    if old is not None:
        if old.state == "up":
            raise Conflict(f"A node named {name} is joined and up; remove it first "
                           f"(atwill node remove {name}) or choose another name.")
        held = instances_on(session, old)
        if held or old.running_vms:
            # A down node may only be cut off: replacing it would orphan its guests, and
            # they may still run. Only the operator can decide that they are lost.
            raise Conflict(f"Node {name} is down but still holds "
                           f"{max(len(held), old.running_vms)} instance(s); it may only be "
                           f"cut off. To replace it, run 'atwill node remove {name} --force' "
                           "first (its instances become ERROR), or choose another name.")
        volumes = node_removal.held(session, old)
        if volumes:  # replacing it would orphan them silently (volume/node_removal.py)
            raise Conflict(f"Node {name} is down but still holds {volumes.volumes} volume(s) "
                           f"and {volumes.snapshots} snapshot(s) on its disk; it may only be "
                           f"cut off. To replace it, run 'atwill node remove {name} --force' "
                           "first (they are kept in error, on no node), or choose another "
                           "name.")
        source = source or old.endpoint_host or ""  # joined again over the overlay
        forget(session, old)
    try:
        cert_pem, serial = sign_client_csr(ctl.settings.path("pki"), csr.encode(), name)
    except ValueError as err:
        raise BadRequest(f"Invalid certificate request: {err}.") from None
    node = Node(name=name, state="up", enabled=True, host_ip=source, endpoint_host=source,
                overlay_port=overlay_port, wireguard_public_key=wg_key, cert_serial=serial,
                overlay_ip=overlay_address(session, ctl.settings.overlay_cidr, name),
                last_heartbeat=utcnow())
    apply_inventory(node, inventory)
    session.add(node)
    session.flush()
    bump(session)
    return node, cert_pem


def forget(session: Session, node: Node) -> None:
    """Revoke the node's certificate and delete its row: no trace in any listing."""
    if node.cert_serial and session.get(RevokedCertificate, node.cert_serial) is None:
        session.add(RevokedCertificate(serial=node.cert_serial, node_name=node.name))
    session.delete(node)
    session.flush()
    bump(session)


def instances_on(session: Session, node: Node) -> list[Any]:
    """The node's instances that are not deleted."""
    return list(session.scalars(select(Instance).where(
        Instance.node_id == node.id, Instance.deleted.is_(False))))


def remove(session: Session, node: Node, force: bool) -> None:
    """Remove a node; refused while it holds instances, volumes or snapshots, unless force
    (instances become ERROR; volumes and snapshots error, on no node: volume/node_removal)."""
    if not force:  # first: moving instances away (a drain) would not help them
        node_removal.check(session, node)
    held = instances_on(session, node)
    count = max(len(held), node.running_vms)
    if count and not force:
        raise Conflict(f"Node {node.name} still holds {count} instance(s); move or delete "
                       "them first, or remove with --force (they become ERROR).")
    for inst in held:
        fail(session, inst, 500, f"The node {node.name} was removed while the instance "
             "was on it.", "compute_node_removed", node.name)
    node_removal.orphan(session, node)
    node.enabled = False
    forget(session, node)


def set_enabled(session: Session, node: Node, enabled: bool, reason: str | None) -> None:
    """The whole node (`atwill node disable`, the cluster API, a drain): its nova-compute
    and its cinder-volume both; their os-services APIs switch one each."""
    node.enabled, node.volume_disabled = enabled, not enabled
    node.disabled_reason = None if enabled else (reason or "disabled by the operator")
    node.volume_disabled_reason = node.disabled_reason
    bump(session, nodes={node.id})


def heartbeat(session: Session, node: Node, inventory: dict[str, Any] | None,
              overlay_status: dict[str, Any], running_vms: int, source: str,
              host_status: dict[str, Any] | None = None) -> None:
    # To the microsecond: whole seconds made a 1.03 s gap 2 s, which doubled the node's
    # HA down threshold (core/ha_health), and rounded every silence down.
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    gap = (now - node.last_heartbeat).total_seconds() if node.last_heartbeat else None
    node.heartbeat_gap_peak = ha_health.next_peak(node.heartbeat_gap_peak or 0.0, gap,
                                                  ha_health.Thresholds())
    node.last_heartbeat = now
    node.state = "up"
    node.overlay_status = overlay_status
    node.host_status = restart_notice.after_heartbeat(node.host_status, host_status or {}, now)
    node.running_vms = running_vms
    if inventory is not None:
        apply_inventory(node, inventory)
    if source and source != node.endpoint_host:
        # The node moved (or its NAT mapping changed): peers must learn the new endpoint.
        node.endpoint_host = source
        node.host_ip = source
        bump(session)


def to_view(node: Node) -> dict[str, Any]:
    return {
        "id": node.id, "name": node.name, "state": node.state, "enabled": node.enabled,
        "disabled_reason": node.disabled_reason, "overlay_ip": node.overlay_ip,
        "endpoint": f"{node.endpoint_host}:{node.overlay_port}" if node.endpoint_host else None,
        "last_heartbeat": iso(node.last_heartbeat),
        "accelerator": (node.inventory or {}).get("accelerator"),
        "vcpus": node.vcpus, "memory_mb": node.memory_mb, "disk_gb": node.local_gb,
        "running_vms": node.running_vms, "inventory": node.inventory or {},
        "forced_down": node.forced_down, "health": node.health,
        "fence_state": node.fence_state, "fence_method": node.fence_method,
        "fence_message": node.fence_message, "fenced_at": iso(node.fenced_at),
    }
