"""The parts of nodes' network desired states that grow with a network, read once and shared.

Two lists in a node's network state are the same for every node that needs them and grow
with the ports of a network or a security group, not with the node:

- a network's ports bound to nodes with an overlay address (each node's `remote_ports`
  are those bound to the other nodes, its `vteps` their overlay addresses): the FDB and
  ARP entries its agent writes for its peers (agent/net/plane.py, vxlan.py);
- a security group's members, every address of every port in it on any node (the
  `remote_group_members` of the groups whose rules name it).

A create on a shared network changes both, so it wakes every node on the network, and
each rebuilt them whole from ORM rows (a port, its addresses and its group rows each an
object). Here they are read as plain columns, and kept per process with the revision
clock they were read at (read before the rows: a list is never older than its clock).

A node may take a kept list read at a clock at or after its own revision
(revision.node_revision): every change to a list concerns every node that needs it
(node_scope: a network's changed ports wake the nodes with ports on it; a group's changed
members wake the nodes with ports in the groups whose rules name it; a node's overlay
address wakes every node), so a change after the list was read would have moved the
node's revision past it. Changes elsewhere move the clock, not the node: they leave its
lists valid. A list is read again only when a node needs a newer one.

A session that has written anything not yet committed reads its own uncommitted rows
(a join builds the new node's state in its transaction): it neither uses nor keeps them.

A clock that goes back while the controller runs (a database restored from a backup, a
PostgreSQL failover to a replica that lagged) would leave kept lists newer than every
node's revision, and nodes with FDB/ARP entries and group members that no longer exist.
So a build that reads a clock below the highest one kept reads the clock again on a
connection of its own (its own transaction may just have begun before another build's):
if that is below too, the clock went back and the engine's lists are dropped (and a list
read before the drop is not kept after it). Not caught: a clock that went back and then
moved past the highest kept one before any build here read it.

The lists are shared between the nodes' states: `remote` copies its entries, and
`group_members` gives each caller its own lists.

Measured 2026-12-07 (benchmarks/network_build.py, SQLite, 50 nodes, one shared network,
2 shared vCPUs under other sessions' load): network_desired at 500 ports 83 ms -> 9 ms
a build reading the lists, 4 ms sharing them; at 1,000 ports 26 / 6 ms (the ORM reads
would be ~170 ms). `atwill bench creates` (50 SIMULATED nodes, one shared network, 8
connections, 30 s, one worker), the start commit be1554f against the same tree with this
module, servers/desired.py's and lifecycle.report's batched reads, node_scope's DISTINCT
hosts, revision's one-UPDATE advance and cluster/desired_pace, in one hold (14:41-14:46,
load 1.0-2.0): SQLite 8.7 -> 21.8 accepted/s (2.5x; ACTIVE/s steady 9.3 -> 23.1;
controller CPU 157 -> 53 ms a create; create -> ACTIVE p50 18.4 -> 9.2 s), PostgreSQL
2.4 -> 3.7/s (1.55x; 456 -> 274 ms; long-poll wakes 6.4 -> 2.4 a create). An earlier
hold with this module and the batched instance reads alone: SQLite 9.8 -> 14.6/s,
PostgreSQL 2.7 -> 3.9/s.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from .. import node_scope, revision
from ..db.models import ClusterRevision, Node
from ..db.network import IPAllocation, Port, PortSecurityGroup

KEPT = 4096  # networks and groups whose last list is kept, per engine

Members = dict[str, list[str]]  # ethertype -> sorted addresses


@dataclass(frozen=True)
class NetworkPorts:
    """A network's ports bound to nodes with an overlay address, in port id order."""

    entries: tuple[dict[str, Any], ...]  # {id, mac_address, node, vtep, ip_addresses}
    vteps: dict[str, str] = field(default_factory=dict)  # node name -> vtep

    def remote(self, node_name: str) -> tuple[list[dict[str, Any]], list[str]]:
        """(remote_ports, vteps) of node_name: the entries bound elsewhere (copies: the
        kept ones are shared by every node's state), their vteps."""
        ports = [{**e, "ip_addresses": list(e["ip_addresses"])}
                 for e in self.entries if e["node"] != node_name]
        return ports, sorted({v for n, v in self.vteps.items() if n != node_name})


@dataclass
class _Engine:
    """One engine's kept lists: (kind, id) -> (the clock it was read at, the list)."""

    lists: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    high: int = 0  # the highest clock a kept list was read at
    drops: int = 0  # times the lists were dropped (the clock went back)


_lock = threading.Lock()
_kept: weakref.WeakKeyDictionary[Engine, _Engine] = weakref.WeakKeyDictionary()


def clear() -> None:
    """Forget every kept list (benchmarks; tests)."""
    with _lock:
        _kept.clear()


def _clock_now(engine: Engine) -> int:
    """The clock as committed now, on a connection (and transaction) of its own."""
    with engine.connect() as conn:
        value = conn.scalar(select(ClusterRevision.revision).where(ClusterRevision.id == 1))
    return value or 0


def _clean(session: Session) -> bool:
    """Whether the session holds no write of its own: none flushed (node_scope follows
    every flush that changed a row), bumped, or pending. A changed row is flushed by the
    build's first query (autoflush); session.dirty, which walks every object the session
    holds, is not asked."""
    return not (session.info.get(node_scope.TRACK) or revision.CONCERN in session.info
                or session.new or session.deleted)


def _shared(session: Session, kind: str, ids: set[str], since: int,
            read: Any) -> dict[str, Any]:
    """Each id's list: kept if read at a clock >= since, else read now (and kept)."""
    if not _clean(session):
        return read(session, ids) if ids else {}
    row = session.get(ClusterRevision, 1)  # the build read it first: before any row
    clock = row.revision if row else 0
    engine = session.get_bind()
    with _lock:
        state = _kept.get(engine)
        if state is None:
            state = _kept[engine] = _Engine()
        high = state.high
    if clock < high and _clock_now(engine) < high:  # the clock went back: drop them all
        with _lock:
            if state.high == high:
                state.lists.clear()
                state.high = 0
                state.drops += 1
    with _lock:
        kept, drops = state.lists, state.drops
        found = {i: kept[(kind, i)][1] for i in ids
                 if (kind, i) in kept and kept[(kind, i)][0] >= since}
    missing = ids - set(found)
    if missing:
        fresh = read(session, missing)
        found |= fresh
        with _lock:
            if state.drops != drops:  # read before a drop: not kept after it
                return found
            for i, value in fresh.items():
                held = kept.pop((kind, i), None)
                kept[(kind, i)] = (clock, value) if held is None or held[0] <= clock \
                    else held
            state.high = max(state.high, clock)
            while len(kept) > KEPT:
                kept.pop(next(iter(kept)))
    return found


def network_ports(session: Session, network_ids: set[str],
                  since: int) -> dict[str, NetworkPorts]:
    """Each network's ports bound to nodes with an overlay address, as of a clock >=
    since (the building node's revision)."""
    return _shared(session, "network", network_ids, since, _read_ports)


def group_members(session: Session, group_ids: set[str], since: int) -> dict[str, Members]:
    """Each group's members: every address (fixed IPs and allowed pairs) of every port in
    it, on any node, by ethertype, as of a clock >= since. The caller's own lists (the
    kept ones are shared)."""
    found = _shared(session, "group", group_ids, since, _read_members)
    return {g: {k: list(v) for k, v in by.items()} for g, by in found.items()}


def _read_ports(session: Session, network_ids: set[str]) -> dict[str, NetworkPorts]:
    rows = session.execute(
        select(Port.network_id, Port.id, Port.mac_address, Node.name, Node.overlay_ip,
               IPAllocation.ip_address)
        .join(Node, Node.name == Port.host_id)
        .outerjoin(IPAllocation, IPAllocation.port_id == Port.id)
        .where(Port.network_id.in_(network_ids), Node.overlay_ip.is_not(None))
        .order_by(Port.id, IPAllocation.id))
    entries: dict[str, list[dict[str, Any]]] = {i: [] for i in network_ids}
    vteps: dict[str, dict[str, str]] = {i: {} for i in network_ids}
    last: dict[str, Any] | None = None
    for network_id, port_id, mac, node, vtep, address in rows:
        if last is None or last["id"] != port_id:
            last = {"id": port_id, "mac_address": mac, "node": node, "vtep": vtep,
                    "ip_addresses": []}
            entries[network_id].append(last)
            vteps[network_id][node] = vtep
        if address is not None:
            last["ip_addresses"].append(address)
    return {i: NetworkPorts(tuple(entries[i]), vteps[i]) for i in network_ids}


def _read_members(session: Session, group_ids: set[str]) -> dict[str, Members]:
    out: dict[str, dict[str, set[str]]] = {i: {"IPv4": set(), "IPv6": set()}
                                           for i in group_ids}
    fixed = session.execute(
        select(PortSecurityGroup.security_group_id, IPAllocation.ip_address)
        .join(IPAllocation, IPAllocation.port_id == PortSecurityGroup.port_id)
        .where(PortSecurityGroup.security_group_id.in_(group_ids))).all()
    # Only the ports with pairs: an empty list is "[]" (2 characters) on both engines.
    pairs = session.execute(
        select(PortSecurityGroup.security_group_id, Port.allowed_address_pairs)
        .join(Port, Port.id == PortSecurityGroup.port_id)
        .where(PortSecurityGroup.security_group_id.in_(group_ids),
               func.length(cast(Port.allowed_address_pairs, Text)) > 2)).all()
    addresses = [*fixed, *((g, p["ip_address"]) for g, pairs_of in pairs
                           for p in pairs_of or [])]
    for group_id, address in addresses:
        out[group_id]["IPv6" if ":" in address else "IPv4"].add(address)
    return {g: {k: sorted(v) for k, v in by.items()} for g, by in out.items()}
