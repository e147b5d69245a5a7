"""Choosing a node and claiming its resources atomically (no overbooking, ever).

A claim is one conditional UPDATE of the node's usage counters: it succeeds only
if the resources are still free when the row is written, so concurrent creates —
in one process or in several controller replicas on PostgreSQL — cannot overbook.

This runs on every server create, so the statements are built once and read only
the columns the scheduler needs (Core rows, not ORM objects). On PostgreSQL a create
that asks only for room is first placed in one statement (placement_one: the same
node, picked, locked and claimed in SQL); whatever it cannot judge comes here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import (
    Float,
    Integer,
    Select,
    bindparam,
    inspect,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...config import Settings
from ...core import scheduler
from ...core.restart_notice import RESTARTING
from .. import metrics_placements
from ..db.compute import DEFAULT_RAM_RATIO, FREE_RAM  # FREE_RAM matches the nodes' indexes
from ..db.models import Instance, Node, PciClaim
from . import host_facts

CPU_RATIO, RAM_RATIO, DISK_RATIO = 16.0, float(DEFAULT_RAM_RATIO), 1.0
SHORTLIST = 16  # nodes considered first; all of them only when none of these fits

# The id first and the inventory last: hosts() reads them by position.
_COLUMNS = (Node.id, Node.name, Node.availability_zone, Node.enabled, Node.state,
            Node.forced_down, Node.health, Node.fence_state, Node.vcpus, Node.vcpus_used,
            Node.memory_mb, Node.memory_mb_used, Node.local_gb, Node.local_gb_used,
            Node.inventory)
_INVENTORY = len(_COLUMNS) - 1
# A node whose agent restarts (its restart notice holds) takes nothing new: nobody is
# there to build it, and its notice may end in a fence (core/restart_notice).
# Constants are written into the SQL, not bound: psycopg prepares a statement run five
# times, and PostgreSQL's generic plan for `health <> $1` (every node has the same health)
# guesses that no node is left, so it sorted every node rather than read the free-RAM
# index (0.8 ms instead of 0.05 ms at 1,000 nodes); the LIMIT likewise.
_ANSWERS = Node.health != literal_column(f"'{RESTARTING}'")
_UP = Node.state == literal_column("'up'")
# A node fenced (known off, or rebooted by its fence: its next full heartbeat clears the
# mark, ha/monitor.returned) or being fenced takes nothing new. A failed attempt leaves a
# node that still runs as it was ('failed' stays on an up node until it goes down).
FENCED = ("ok", "pending")


def unfenced_sql(n: str) -> str:
    listed = ", ".join(f"'{state}'" for state in FENCED)
    return f"({n}.fence_state IS NULL OR {n}.fence_state NOT IN ({listed}))"


_UNFENCED = or_(Node.fence_state.is_(None),
                Node.fence_state.not_in([literal_column(f"'{s}'") for s in FENCED]))
# The shortlist also says which of its nodes have the aggregate keys the filters that
# always run read (host_facts.GUARDED), instead of a second query for them.
_USABLE = select(*_COLUMNS, host_facts.GUARDED).where(Node.enabled.is_(True), _UP,
                                                      Node.forced_down.is_(False), _ANSWERS,
                                                      _UNFENCED)
_BEST_FIRST = bindparam("best_first", type_=Integer, literal_execute=True)
_QUERIES: dict[str, Select[Any]] = {
    "all": select(*_COLUMNS).order_by(Node.name),
    "spread": _USABLE.order_by(FREE_RAM.desc(), Node.name).limit(_BEST_FIRST),
    "pack": _USABLE.order_by(FREE_RAM.asc(), Node.name).limit(_BEST_FIRST),
}
# Bind names must differ from the columns' own: those are reserved for the SET clause.
_WANT_CPU, _WANT_RAM, _WANT_DISK = (bindparam("want_vcpus"), bindparam("want_ram"),
                                    bindparam("want_disk"))
_FITS = (
    Node.vcpus_used + _WANT_CPU <= Node.vcpus * bindparam("cpu_ratio", type_=Float),
    Node.memory_mb_used + _WANT_RAM <= Node.memory_mb * bindparam("ram_ratio", type_=Float),
    Node.local_gb_used + _WANT_DISK <= Node.local_gb * bindparam("disk_ratio", type_=Float),
)
_TAKE = {"vcpus_used": Node.vcpus_used + _WANT_CPU,
         "memory_mb_used": Node.memory_mb_used + _WANT_RAM,
         "local_gb_used": Node.local_gb_used + _WANT_DISK}
_CLAIM = update(Node).where(Node.id == bindparam("node_id"), Node.enabled.is_(True),
                            _UP, _ANSWERS, _UNFENCED, *_FITS).values(_TAKE)
# An admin's forced host may be a disabled node (Nova's way to use one kept out of
# scheduling); it must still be up and have room.
_CLAIM_FORCED = update(Node).where(Node.id == bindparam("node_id"), _UP,
                                   _ANSWERS, _UNFENCED, *_FITS).values(_TAKE)
# PostgreSQL, first pass: a node whose row another transaction holds (its claim is not
# committed yet) is passed over at once instead of waited for. Controllers racing read
# the same shortlist and would all queue on its best node; each now takes the next one
# free. The fit is still judged on the locked, current row: no overbooking either way.
_FREE = Node.__table__.alias("free_node")
_CLAIM_UNLOCKED = update(Node).where(
    Node.id == select(_FREE.c.id).where(_FREE.c.id == bindparam("node_id"))
    .with_for_update(skip_locked=True).scalar_subquery(),
    Node.enabled.is_(True), _UP, _ANSWERS, _UNFENCED, *_FITS).values(_TAKE)


def ratios(node: Node) -> tuple[float, float, float]:
    """Per-node allocation ratios (inventory may override the defaults)."""
    return inventory_ratios(node.inventory)


def inventory_ratios(inv: dict[str, Any] | None) -> tuple[float, float, float]:
    inv = inv or {}
    return (float(inv.get("cpu_allocation_ratio", CPU_RATIO)),
            float(inv.get("ram_allocation_ratio", RAM_RATIO)),
            float(inv.get("disk_allocation_ratio", DISK_RATIO)))


def host_of(row: Sequence[Any], claimed: Collection[str],
            instances: frozenset[str]) -> scheduler.Host:
    """A row of _COLUMNS as the scheduler sees it (unpacked: a row's attributes are slow)."""
    (node_id, name, zone, enabled, state, forced_down, health, fence_state, vcpus, vcpus_used,
     memory_mb, memory_mb_used, local_gb, local_gb_used, inv) = row[:_INVENTORY + 1]
    inv = inv or {}
    pci = tuple(scheduler.PciDevice(d["address"], d["vendor_id"], d["product_id"])
                for d in inv.get("pci_devices", ()) if d.get("address") not in claimed)
    cpu, ram, disk = inventory_ratios(inv)
    return scheduler.Host(
        id=node_id, name=name, availability_zone=zone, enabled=enabled,
        up=(state == "up" and not forced_down and health != RESTARTING
            and fence_state not in FENCED),
        vcpus=vcpus, vcpus_used=vcpus_used,
        memory_mb=memory_mb, memory_mb_used=memory_mb_used, disk_gb=local_gb,
        disk_gb_used=local_gb_used, cpu_ratio=cpu, ram_ratio=ram, disk_ratio=disk,
        arch=inv.get("arch", "x86_64"), accelerator=inv.get("accelerator", "tcg"),
        free_pci=pci, instances=instances)


def hosts(session: Session, best_first: int | None = None, strategy: str = "spread",
          instance_ids: Collection[str] | None = None) -> list[scheduler.Host]:
    """Nodes as the scheduler sees them, in at most three queries however many nodes there are.

    With best_first, only that many enabled, up nodes come back, those with the most
    free RAM (spread) or the least (pack): the usual answer at a fraction of the cost.
    Each host's instances are all the live ones on it, or, with instance_ids, only
    those of them (what same_host/different_host ask about; none asks no query).
    """
    return _hosts(session, best_first, strategy, instance_ids)[0]


def _hosts(session: Session, best_first: int | None, strategy: str,
           instance_ids: Collection[str] | None
           ) -> tuple[list[scheduler.Host], frozenset[str] | None]:
    """hosts(), and with best_first the names of those host_facts.GUARDED holds for
    (None without: the full list does not read it, host_facts.enrich asks every host)."""
    session.flush()  # what autoflush would do; the Core statements below skip the ORM
    conn = session.connection()
    guarded: frozenset[str] | None = None
    if best_first is None:
        rows = conn.execute(_QUERIES["all"]).all()
    else:
        rows = conn.execute(_QUERIES["pack" if strategy == "pack" else "spread"],
                            {"best_first": best_first}).all()
        guarded = frozenset(r[1] for r in rows if r[-1])
    claimed: dict[str, set[str]] = {}
    with_pci = [r[0] for r in rows if r[_INVENTORY] and r[_INVENTORY].get("pci_devices")]
    if with_pci:  # claims can only hide devices a node still lists
        for node_id, address in conn.execute(select(PciClaim.node_id, PciClaim.address)
                                             .where(PciClaim.node_id.in_(with_pci))):
            claimed.setdefault(node_id, set()).add(address)
    placed: dict[str, set[str]] = {}
    if instance_ids is None or instance_ids:
        wanted = (Instance.node_id.in_([r[0] for r in rows]) if instance_ids is None
                  else Instance.id.in_(list(instance_ids)))
        for node_id, inst_id in conn.execute(select(Instance.node_id, Instance.id).where(
                wanted, Instance.deleted.is_(False))):
            placed.setdefault(node_id, set()).add(inst_id)
    return ([host_of(r, claimed.get(r[0], ()), frozenset(placed.get(r[0], ()))) for r in rows],
            guarded)


def claim(session: Session, host: scheduler.Host, inst: Instance,
          req: scheduler.Request, forced: bool = False,
          unlocked_only: bool = False) -> list[str] | None:
    """Take the resources on host for inst; the PCI addresses claimed, or None if it lost
    (with unlocked_only, also when another transaction holds the node's row: PostgreSQL)."""
    vcpus, ram, disk = req.vcpus, req.memory_mb, req.disk_gb
    statement = _CLAIM_UNLOCKED if unlocked_only else _CLAIM_FORCED if forced else _CLAIM
    result = session.connection().execute(statement, {
        "node_id": host.id, "want_vcpus": vcpus, "want_ram": ram, "want_disk": disk,
        "cpu_ratio": host.cpu_ratio, "ram_ratio": host.ram_ratio,
        "disk_ratio": host.disk_ratio})
    if result.rowcount != 1:
        return None
    devices = scheduler.pci_assignment(host, req) or []
    if not devices:
        return devices
    try:
        with session.begin_nested():
            for address in devices:
                session.add(PciClaim(node_id=host.id, address=address, instance_id=inst.id))
    except IntegrityError:
        release_counters(session, host.id, vcpus, ram, disk)
        return None
    return devices


def release_counters(session: Session, node_id: str, vcpus: int, ram: int, disk: int) -> None:
    session.execute(update(Node).where(Node.id == node_id).values(
        vcpus_used=Node.vcpus_used - vcpus, memory_mb_used=Node.memory_mb_used - ram,
        local_gb_used=Node.local_gb_used - disk).execution_options(synchronize_session=False))


def release(session: Session, inst: Instance) -> None:
    """Give back what inst held on its node (idempotent: it forgets the node)."""
    if inst.node_id is None:
        return
    release_counters(session, inst.node_id, inst.vcpus, inst.memory_mb, inst.disk_gb)
    session.execute(PciClaim.__table__.delete().where(PciClaim.instance_id == inst.id))
    inst.node_id = None
    inst.pci_devices = []


def place(session: Session, settings: Settings, inst: Instance,
          req: scheduler.Request) -> scheduler.Host:
    """Pick and claim a node for inst (the host as chosen); NoValidHost says why when none fits."""
    try:
        host = _place(session, settings, inst, req)
    except scheduler.NoValidHost:
        metrics_placements.counted("no_valid_host")
        raise
    metrics_placements.counted("placed")
    return host


def _place(session: Session, settings: Settings, inst: Instance,
           req: scheduler.Request) -> scheduler.Host:
    strategy = "pack" if getattr(settings, "scheduler_weigher", "spread") == "pack" else "spread"
    wanted = req.same_host | req.different_host
    req = dataclasses.replace(host_facts.with_flavor_specs(req, inst),
                              project_id=inst.project_id)
    if (inst.requested_host is None and scheduler.capacity_only(req)
            and session.connection().dialect.name == "postgresql"):
        from . import placement_one  # noqa: PLC0415 - it reads this module's statements

        session.flush()  # what autoflush would do; the statement skips the ORM
        if (inst.node_id is None and inst.node_name is None and not inst.pci_devices
                and inspect(inst).persistent):  # a first placement: no usage event
            chosen = placement_one.claim_placing(session, req, strategy, inst)
        else:
            chosen = placement_one.claim_best(session, req, strategy)
            if chosen is not None:
                _assign(inst, chosen, [])
        if chosen is not None:
            return chosen
    if inst.requested_host is not None:
        candidates = _requested(session, inst, req, strategy, wanted)
    elif req.evacuation:  # rare, and the spares it prefers may be anywhere in the list
        candidates = scheduler.select(host_facts.enrich(
            session, hosts(session, None, strategy, wanted), req), req, strategy)
    else:
        try:
            shortlist, guarded = _hosts(session, SHORTLIST, strategy, wanted)
            candidates = scheduler.select(host_facts.enrich(session, shortlist, req, guarded),
                                          req, strategy)
        except scheduler.NoValidHost:
            # The shortlist is a heuristic: ask every node before saying no (and say why).
            candidates = scheduler.select(host_facts.enrich(
                session, hosts(session, None, strategy, wanted), req), req, strategy)
    # Where rows can be skipped (PostgreSQL) and there is a choice, the nodes another
    # claim holds are passed over first; only if none was free, they are waited for.
    skip = (len(candidates) > 1 and not inst.force_host
            and session.connection().dialect.name == "postgresql")
    for unlocked_only in (True, False) if skip else (False,):
        for host in candidates:
            devices = claim(session, host, inst, req, forced=inst.force_host,
                            unlocked_only=unlocked_only)
            if devices is not None:
                _assign(inst, host, devices)
                return host
    raise scheduler.NoValidHost("No valid host was found. Every candidate was claimed by "
                                "concurrent requests first.")


def _assign(inst: Instance, host: scheduler.Host, devices: list[str]) -> None:
    inst.node_id, inst.node_name = host.id, host.name
    if devices or inst.pci_devices:  # a new [] would rewrite the JSON column
        inst.pci_devices = devices


def _requested(session: Session, inst: Instance, req: scheduler.Request, strategy: str,
               wanted: Collection[str]) -> list[scheduler.Host]:
    """The one node the create named: forced (no filters, as Nova's force_hosts) or
    requested (2.74: the filters still judge it). A node that failed it is not retried."""
    found = [h for h in hosts(session, None, strategy, wanted)
             if h.name == inst.requested_host and h.id not in req.ignore_hosts]
    if not found:  # gone, or it failed this server's build already
        raise scheduler.NoValidHost(f"No valid host was found. Host {inst.requested_host} "
                                    "is not available.")
    if not inst.force_host:
        return scheduler.select(host_facts.enrich(session, found, req), req, strategy)
    if not [h for h in found if h.up]:
        raise scheduler.NoValidHost(f"No valid host was found. The forced host "
                                    f"{inst.requested_host} is not up.")
    return found
