"""Choosing a node and claiming its resources atomically (no overbooking, ever).

A claim is one conditional UPDATE of the node's usage counters: it succeeds only
if the resources are still free when the row is written, so concurrent creates —
in one process or in several controller replicas on PostgreSQL — cannot overbook.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ...config import Settings
from ...core import scheduler
from ..db.models import Instance, Node, PciClaim

CPU_RATIO, RAM_RATIO, DISK_RATIO = 16.0, 1.5, 1.0
SHORTLIST = 16  # nodes considered first; all of them only when none of these fits


def ratios(node: Node) -> tuple[float, float, float]:
    """Per-node allocation ratios (inventory may override the defaults)."""
    inv = node.inventory or {}
    return (float(inv.get("cpu_allocation_ratio", CPU_RATIO)),
            float(inv.get("ram_allocation_ratio", RAM_RATIO)),
            float(inv.get("disk_allocation_ratio", DISK_RATIO)))


def host_of(node: Node, claimed: set[str], instances: frozenset[str]) -> scheduler.Host:
    inv = node.inventory or {}
    pci = tuple(scheduler.PciDevice(d["address"], d["vendor_id"], d["product_id"])
                for d in inv.get("pci_devices", []) if d.get("address") not in claimed)
    cpu, ram, disk = ratios(node)
    return scheduler.Host(
        id=node.id, name=node.name, availability_zone=node.availability_zone,
        enabled=node.enabled, up=node.state == "up" and not node.forced_down,
        vcpus=node.vcpus, vcpus_used=node.vcpus_used, memory_mb=node.memory_mb,
        memory_mb_used=node.memory_mb_used, disk_gb=node.local_gb,
        disk_gb_used=node.local_gb_used, cpu_ratio=cpu, ram_ratio=ram, disk_ratio=disk,
        arch=inv.get("arch", "x86_64"), accelerator=inv.get("accelerator", "tcg"),
        free_pci=pci, instances=instances)


def hosts(session: Session, best_first: int | None = None,
          strategy: str = "spread") -> list[scheduler.Host]:
    """Nodes as the scheduler sees them, in three queries however many nodes there are.

    With best_first, only that many enabled, up nodes come back, those with the most
    free RAM (spread) or the least (pack): the usual answer at a fraction of the cost.
    """
    query = select(Node)
    if best_first is not None:
        free = Node.memory_mb * RAM_RATIO - Node.memory_mb_used
        query = query.where(Node.enabled.is_(True), Node.state == "up",
                            Node.forced_down.is_(False)).order_by(
            free.desc() if strategy == "spread" else free.asc()).limit(best_first)
    nodes = list(session.scalars(query.order_by(Node.name)))
    ids = [n.id for n in nodes]
    claimed: dict[str, set[str]] = {}
    for node_id, address in session.execute(select(PciClaim.node_id, PciClaim.address)
                                            .where(PciClaim.node_id.in_(ids))):
        claimed.setdefault(node_id, set()).add(address)
    placed: dict[str, set[str]] = {}
    for node_id, inst_id in session.execute(select(Instance.node_id, Instance.id).where(
            Instance.node_id.in_(ids), Instance.deleted.is_(False))):
        placed.setdefault(node_id, set()).add(inst_id)
    return [host_of(n, claimed.get(n.id, set()), frozenset(placed.get(n.id, ())))
            for n in nodes]


def claim(session: Session, host: scheduler.Host, inst: Instance,
          req: scheduler.Request) -> list[str] | None:
    """Take the resources on host for inst; the PCI addresses claimed, or None if it lost."""
    vcpus, ram, disk = req.vcpus, req.memory_mb, req.disk_gb
    result = session.execute(
        update(Node).where(
            Node.id == host.id, Node.enabled.is_(True), Node.state == "up",
            Node.vcpus_used + vcpus <= Node.vcpus * host.cpu_ratio,
            Node.memory_mb_used + ram <= Node.memory_mb * host.ram_ratio,
            Node.local_gb_used + disk <= Node.local_gb * host.disk_ratio)
        .values(vcpus_used=Node.vcpus_used + vcpus, memory_mb_used=Node.memory_mb_used + ram,
                local_gb_used=Node.local_gb_used + disk)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        return None
    devices = scheduler.pci_assignment(host, req) or []
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
          req: scheduler.Request) -> Node:
    """Pick and claim a node for inst; NoValidHost says why when none fits."""
    strategy = "pack" if getattr(settings, "scheduler_weigher", "spread") == "pack" else "spread"
    try:
        candidates = scheduler.select(hosts(session, SHORTLIST, strategy), req, strategy)
    except scheduler.NoValidHost:
        # The shortlist is a heuristic: ask every node before saying no (and say why).
        candidates = scheduler.select(hosts(session), req, strategy)
    for host in candidates:
        devices = claim(session, host, inst, req)
        if devices is not None:
            node = session.get(Node, host.id)
            inst.node_id, inst.node_name, inst.pci_devices = node.id, node.name, devices
            return node
    raise scheduler.NoValidHost("No valid host was found. Every candidate was claimed by "
                                "concurrent requests first.")
