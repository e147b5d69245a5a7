"""The fleet-wide part of every node's desired state, built once and shared.

Each node's WireGuard peers are the same list for every node but itself: the other nodes
with an overlay address (after overlay_peers.node_peers drops impostors). Reading them is
O(nodes) — 500 ORM rows with their JSON columns were ~20 of a build's 23 ms at 500 nodes —
so this process keeps one list per engine, keyed on what it depends on:

- the clock of the last change for everyone (`everyone_at`): joining, removing a node and
  a node's new endpoint all bump every node (cluster/nodes.py), its key changes only by
  joining again;
- the nodes with an overlay address (count, newest created_at): a cheap belt for a row
  written without a bump;
- the controllers' peers and the overlay's CIDR, which node_peers checks against.

The key is read before the rows: a list is never older than its key (a newer one under an
older key only wakes nobody; the next build under the newer key reads it again). A node's
own list is the shared one without it, except where its key is another node's too (then
it is computed again for that node alone, as node_peers would).

Measured 2026-12-07 (2 shared vCPUs), the tree before this module in the same run:
benchmarks/desired_build.py, one node's build in process: 500 nodes on SQLite 24.0 -> 7.6-8.7
ms CPU, on PostgreSQL 30.1 -> 12.8 ms (client side), 2,000 nodes on SQLite 99 -> 11.4 ms; at
50 nodes a build is ~6.7 ms: what was left of the O(nodes) part was mostly the HA block's
probe-peer query (ha/lease.desired_block, ~2 ms at 500 nodes); its peers now come from the
sorted ring kept here (Fleet.probes_of): 2,000 nodes on SQLite, shared lists, 9.67 -> 6.85
ms a build (0.71x; rebuilt lists 17.8 -> 12.8 ms), same run. benchmarks/desired_fleet.py
(bench fleet, 500 SIMULATED nodes, 10 s phases, one worker, PostgreSQL), with every
long-poll open: after / before 1.52x the beats/s at 0.62x the controller CPU per beat
(before measured first), 1.63x at 0.46x (after first; p99 13.3 s -> 1.5 s; the old
controller's security-group change reached 0 of 50 nodes within the phase, the new 50 of
50, median 2.2 s). A long-poll that times out unchanged answers without a build
(cluster/agents._current), which bench fleet does not exercise (its nodes start at -1).
"""

from __future__ import annotations

import os
import threading
import weakref
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from ...core import overlay_peers, peer_view
from ..db.models import ClusterRevision, Node

KEEPALIVE = overlay_peers.KEEPALIVE
# ATWILL_DESIRED_CACHE=off: every build reads the fleet again and a long-poll that saw no
# change answers the whole state (as before; benchmarks compare the two).
SHARED = os.environ.get("ATWILL_DESIRED_CACHE", "on") != "off"


@dataclass(frozen=True)
class Fleet:
    key: tuple[Any, ...]
    entries: dict[str, dict[str, Any]]  # node id -> its peer entry, every node listed
    kept: list[dict[str, Any]]  # node_peers of every entry, in name order
    keys: Counter[str]  # how many nodes hold each WireGuard key
    raw: list[tuple[str, dict[str, Any]]]  # (id, entry) in name order
    ring: tuple[str, ...] = ()  # every listed node's id, sorted (HA probe ring)

    def peers_of(self, node_id: str, controllers: list[dict[str, Any]],
                 cidr: str) -> list[dict[str, Any]]:
        """node_peers of every other node, as if built for node_id alone."""
        mine = self.entries.get(node_id)
        if mine is None or not any(p is mine for p in self.kept):
            return list(self.kept)  # not listed, or dropped: it changes nobody's fate
        key = mine.get("public_key")
        if key and self.keys[key] > 1:  # it hid a later holder of its key from the others
            return overlay_peers.node_peers([e for i, e in self.raw if i != node_id],
                                            controllers, cidr)
        return [p for p in self.kept if p is not mine]

    def probes_of(self, node_id: str) -> list[dict[str, str]]:
        """The HA peers node_id probes, with their overlay addresses: what
        peer_view.probe_set gives over every node with an overlay address (ha/lease's
        desired block), from the sorted ring kept here instead of a fleet-sized query and
        sort per build."""
        at = bisect_left(self.ring, node_id)
        if at == len(self.ring) or self.ring[at] != node_id or \
                len(self.ring) - 1 <= peer_view.PROBES:
            chosen = peer_view.probe_set(self.ring, node_id)  # not listed, or a small fleet
        else:
            size, half = len(self.ring), max(peer_view.PROBES // 2, 1)
            chosen = sorted({self.ring[(at + step) % size]
                             for d in range(1, half + 1) for step in (d, -d)} - {node_id})
        return [{"id": peer, "address": self.entries[peer]["overlay_ip"]} for peer in chosen]


_lock = threading.Lock()
_kept: weakref.WeakKeyDictionary[Engine, Fleet] = weakref.WeakKeyDictionary()


def clear() -> None:
    """Forget every shared list (benchmarks; tests)."""
    with _lock:
        _kept.clear()


def _key(session: Session, controllers: list[dict[str, Any]], cidr: str) -> tuple[Any, ...]:
    clock = session.get(ClusterRevision, 1)
    count, newest = session.execute(select(func.count(Node.id), func.max(Node.created_at))
                                    .where(Node.overlay_ip.is_not(None))).one()
    fingerprint = tuple((p["public_key"], p["overlay_ip"]) for p in controllers)
    return (clock.everyone_at if clock else 0, count, newest, fingerprint, cidr)


def fleet(session: Session, controllers: list[dict[str, Any]], cidr: str) -> Fleet:
    """The shared list for this session's database, built when its key moved."""
    engine = session.get_bind()
    key = _key(session, controllers, cidr)
    with _lock:
        found = _kept.get(engine)
    if found is not None and found.key == key and SHARED:
        return found
    raw = []
    for node_id, name, public_key, address, host, port in session.execute(
            select(Node.id, Node.name, Node.wireguard_public_key, Node.overlay_ip,
                   Node.endpoint_host, Node.overlay_port)
            .where(Node.overlay_ip.is_not(None)).order_by(Node.name)):
        raw.append((node_id, {"name": name, "public_key": public_key, "overlay_ip": address,
                              "endpoint": f"{host}:{port}" if host else None,
                              "keepalive": KEEPALIVE}))
    made = Fleet(key=key, entries=dict(raw),
                 kept=overlay_peers.node_peers([e for _, e in raw], controllers, cidr),
                 keys=Counter(e["public_key"] for _, e in raw if e["public_key"]), raw=raw,
                 ring=tuple(sorted(i for i, _ in raw)))
    with _lock:
        _kept[engine] = made
    return made
