"""Self-fencing by lease, for nodes without a working fence device (core/peer_view).

The agent learns its lease, its HA-protected instances and the peers it probes
from the "ha" block of its desired state, and reports in each heartbeat how long
ago it last heard each peer. That report is kept in the node's host_status JSON
column (key "peers"), beside the uptime it already holds: every controller
replica, and a restarted controller, sees it without a migration. A node whose
last heartbeat had no "peers" key runs an agent that does not fence itself, and
is never counted fenced by lease.

A down node whose fencing failed (or that has no device) counts as fenced once
its peers' reports prove it isolated (DEAD) and lease + margin seconds passed
since its last heartbeat on the controller's clock. A node its peers still hear
(PARTITIONED) is neither fenced nor evacuated: its VMs may well be serving.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ha_health, ha_policy, peer_view, restart_notice
from ..cluster import liveness
from ..context import Controller
from ..db.base import utcnow
from ..db.models import FenceEvent, Instance, Node
from ..servers import actions
from . import policy as policies

if TYPE_CHECKING:
    from ..cluster.fleet_lists import Fleet

log = logging.getLogger("atwill.ha")
PEERS_KEY = "peers"
HEARD_KEY = "agent_heard"  # set by every heartbeat: the agent has started
LEASE_KEY = "ha_lease"  # the lease the agent says it counts (host_status)
# The controller waits at least this long past the lease, whatever the settings say:
# the agent checks its lease twice a second and SIGKILL takes a moment.
MIN_MARGIN = 1.0
PARTITIONED = "partitioned from the controller, peers still hear it"
# Stored times (db.base.utcnow) drop their microseconds: a heartbeat may have come up to
# this much later than its stored time, so silences are counted from that later bound.
STORED_RESOLUTION = dt.timedelta(seconds=1)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def _silence(now: dt.datetime, stored: dt.datetime) -> float:
    """Seconds since a stored heartbeat time, never more than really passed."""
    return max((now - stored - STORED_RESOLUTION).total_seconds(), 0.0)


def host_report(host: dict[str, Any], peers: dict[str, float] | None) -> dict[str, Any]:
    """What a heartbeat stores in nodes.host_status: the host's figures and its peers,
    and that the node's agent was heard (a node only joined has none of it)."""
    # The peer keys are the HA monitor's to read: kept only in their shape (an agent's
    # `host` is free-form; a "peers" there, or a malformed list of peers never heard,
    # made every pass of the monitor raise).
    kept = {k: v for k, v in host.items()
            if k not in (PEERS_KEY, peer_view.NEVER_HEARD_KEY, LEASE_KEY)}
    kept[HEARD_KEY] = True
    # Kept only as a finite number: a 400-digit integer (JSON keeps any) made the lease
    # check raise at every pass, stopping the leader's loop for the whole fleet. A long
    # one is believed (the longer lease is the safe side: counted fenced later).
    lease = peer_view.finite(host.get(LEASE_KEY))
    if lease is not None and lease >= 0:
        kept[LEASE_KEY] = lease
    if peer_view.NEVER_HEARD_KEY in host:
        kept[peer_view.NEVER_HEARD_KEY] = peer_view.never_heard(host[peer_view.NEVER_HEARD_KEY])
    if peers is not None:
        kept[PEERS_KEY] = peer_view.reported_ages(peers)
    return kept


def desired_block(session: Session, ctl: Controller, node: Node,
                  shared: Fleet | None = None) -> dict[str, Any]:
    """The desired state's "ha": lease, protected instances and the peers to probe.

    The probe peers come from the fleet-wide list every node's build shares
    (cluster/fleet_lists: the same nodes with an overlay address, under the same key)
    when the build passes it: no fleet-sized query and sort per build. Measured
    2026-12-07 (benchmarks/desired_build.py, in process, 2 shared vCPUs), see the
    figures in cluster/fleet_lists.py."""
    if shared is not None:
        peers = shared.probes_of(node.id)
    else:
        rows = session.execute(select(Node.id, Node.overlay_ip)
                               .where(Node.overlay_ip.is_not(None)))
        address = {node_id: ip for node_id, ip in rows}
        peers = [{"id": peer, "address": address[peer]}
                 for peer in peer_view.probe_set(list(address), node.id)]
    held = session.scalars(select(Instance).where(Instance.node_id == node.id,
                                                  Instance.deleted.is_(False)))
    # Under a policy that never fences (autonomous), nothing is the lease's to kill.
    guarded = ha_policy.fences(policies.of_node(session, ctl, node.name))
    return {"lease": lease_setting(ctl), "port": peer_view.PROBE_PORT,
            "protected": sorted(i.id for i in held if guarded and ha_health.ha_enabled(i.meta)),
            "peers": peers}


def lease_setting(ctl: Controller) -> float:
    """The lease handed out; none over OpenVPN, whose node-to-node traffic goes through the
    controller's hub: a controller outage would silence the peers too and kill every VM."""
    if ctl.settings.overlay == "openvpn":
        return 0.0
    return max(ctl.settings.ha_lease, 0.0)


def lease_of(ctl: Controller, node: Node) -> float:
    """The longer of the lease the controller hands out and the one the agent reported."""
    told = peer_view.finite((node.host_status or {}).get(LEASE_KEY))
    reported = told if told is not None and told > 0 else 0.0
    return max(ctl.settings.ha_lease, reported)


def verdict(node: Node, reporters: list[Node], now: dt.datetime, margin: float) -> str:
    """dead / partitioned / unknown, from the reports of the peers the controller hears."""
    probed = peer_view.reported_ages((node.host_status or {}).get(PEERS_KEY))
    reports = {}
    for peer in reporters:
        seen = peer_view.reported_ages((peer.host_status or {}).get(PEERS_KEY))
        if node.id in seen and peer.last_heartbeat is not None:
            reports[peer.id] = peer_view.age_now(seen[node.id],
                                                 _silence(now, peer.last_heartbeat))
    return peer_view.view(list(probed), reports, margin)


def fence_by_lease(session: Session, ctl: Controller, since: dt.datetime) -> list[str]:
    """Count isolated, silent nodes fenced once their lease and the margin are over."""
    if lease_setting(ctl) <= 0:
        return []
    candidates = list(session.scalars(select(Node).where(
        Node.health == ha_health.DOWN, Node.state == "down", Node.forced_down.is_(False),
        Node.fence_state == "failed", Node.last_heartbeat.is_not(None))))
    candidates = [n for n in candidates if PEERS_KEY in (n.host_status or {})]
    if not candidates:
        return []
    # Beats other workers still buffer (cluster/liveness.py) only shorten a silence.
    now = _now() - dt.timedelta(seconds=liveness.staleness())
    margin = max(ctl.settings.ha_lease_margin, MIN_MARGIN)
    reporters = list(session.scalars(select(Node).where(Node.state == "up")))
    fenced = []
    for node in candidates:
        found = verdict(node, reporters, now, margin)
        # From a restart notice's deadline: the agent's keeper counts its lease from there.
        heard = restart_notice.heard_at(node.last_heartbeat, node.host_status)
        silence = _silence(now, max(heard, since))
        lease = lease_of(ctl, node)
        if found == peer_view.PARTITIONED:
            _partitioned(session, node)
        elif found == peer_view.DEAD and silence >= lease + margin:
            _fenced(session, node, f"fenced by lease: no heartbeat for {silence:.1f} s "
                    f"(lease {lease:g} s + margin {margin:g} s) and most of its peers no "
                    "longer hear it, so its agent has killed its HA instances")
            fenced.append(node.name)
    return fenced


def _partitioned(session: Session, node: Node) -> None:
    message = (f"{PARTITIONED}: not fenced, nothing is evacuated; once {node.name} is off, "
               f"run 'atwill node fence confirm {node.name}'")
    if node.fence_message == message:
        return  # said once
    node.fence_message = message
    log.warning("node %s is %s; its VMs may still run, nothing is evacuated", node.name,
                PARTITIONED)
    for inst in _ha_instances(session, node):
        actions.event(session, inst.id, "ha_partitioned", node.name, "Error", message)


def _fenced(session: Session, node: Node, message: str) -> None:
    node.fence_state, node.fence_method, node.fence_message = "ok", "lease", message
    node.fenced_at = utcnow()
    session.add(FenceEvent(node_name=node.name, action="lease", ok=True, message=message))
    log.warning("node %s %s", node.name, message)
    for inst in _ha_instances(session, node):
        actions.event(session, inst.id, "ha_fence_node", node.name, "Success", message)


def _ha_instances(session: Session, node: Node) -> list[Instance]:
    held = session.scalars(select(Instance).where(Instance.node_id == node.id,
                                                  Instance.deleted.is_(False)))
    return [i for i in held if ha_health.ha_enabled(i.meta)]
