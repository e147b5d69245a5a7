"""A node's desired state: everything its agent must make true on its host."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from ...core import overlay, overlay_peers
from ...core.volume_placement import storage_of
from ..context import Controller
from ..controllers import listed as listed_controllers
from ..controllers import live_rows as live_controllers
from ..db.models import Node
from ..ha.lease import desired_block
from ..ha.monitor import stale_copies
from ..network.desired import network_desired
from ..revision import node_revision
from ..servers import live_migration_agents
from ..servers.desired import instances_desired
from ..servers.resize_agents import shape_desired
from ..servers.shelve import offloaded_copies
from ..volume.desired import client_crl, storage_desired
from . import fleet_lists
from .controller_peer import controller_peers_of


def desired_state(session: Session, ctl: Controller, node: Node) -> dict[str, Any]:
    settings = ctl.settings
    rev = node_revision(session, node.id)  # before what it covers is read
    registry = live_controllers(session)
    # Every live controller is a peer (its key and address only from the registry that
    # controllers alone write); then the other nodes, none in a controller's place.
    controllers = controller_peers_of(ctl, registry)
    # The other nodes, from the list shared by every node's build (fleet_lists.py).
    shared = fleet_lists.fleet(session, controllers, settings.overlay_cidr)
    nodes = shared.peers_of(node.id, controllers, settings.overlay_cidr)
    # Several controllers on the overlay: agents fail over between their overlay URLs.
    through_overlay = overlay_peers.overlay_urls(controllers) if len(controllers) > 1 else []
    peers = [{k: v for k, v in p.items() if k != "overlay_url"} for p in controllers] + nodes
    state: dict[str, Any] = {
        "revision": rev, "node_id": node.id, "name": node.name,
        "enabled": node.enabled, "heartbeat_interval": settings.heartbeat_interval,
        # Where the node fetches images: the API through the overlay, not the underlay.
        "controller_overlay_url": settings.overlay_url,
        # Every live controller of the cloud (registered, and configured): the agent
        # fails over between them.
        "controllers": listed_controllers(session, settings, through_overlay,
                                          [row.public_url for row in registry]),
        "overlay": {
            "kind": settings.overlay, "address": node.overlay_ip,
            "prefix": overlay.prefix_length(settings.overlay_cidr),
            "port": node.overlay_port, "cidr": settings.overlay_cidr, "peers": peers,
        },
    }

    state["instances"] = instances_desired(session, node)
    post_copy = settings.live_migration_permit_post_copy
    live_migration_agents.annotate(session, node, state["instances"], post_copy)
    state["instances"] += live_migration_agents.incoming(session, node, post_copy)

    state["volume_crl"] = client_crl(session, state["instances"], settings.path("pki"))
    state["destroy"] = sorted({*stale_copies(session, node), *offloaded_copies(session, node),
                               *live_migration_agents.leftovers(session, node)})
    state["network"] = network_desired(session, node)
    if storage_of(node.inventory) is not None:
        state["storage"] = storage_desired(session, node, settings.path("pki"))
    state["ha"] = desired_block(session, ctl, node, shared)  # its probe peers: shared
    if settings.overlay == "openvpn":
        state["overlay"]["openvpn"] = {
            "remote": settings.public_host or settings.listen_host,
            "port": settings.overlay_port, "proto": settings.openvpn_proto,
        }
    shape_desired(session, node, state)
    return state
