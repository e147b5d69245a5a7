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


def ratios(node: Node) -> tuple[float, float, float]:
    """Per-node allocation ratios (inventory may override the defaults)."""
    inv = node.inventory or {}
    return (float(inv.get("cpu_allocation_ratio", CPU_RATIO)),
            float(inv.get("ram_allocation_ratio", RAM_RATIO)),
            float(inv.get("disk_allocation_ratio", DISK_RATIO)))


def host_of(session: Session, node: Node) -> scheduler.Host:
    claimed = set(session.scalars(select(PciClaim.address).where(PciClaim.node_id == node.id)))
    inv = node.inventory or {}
    pci = tuple(scheduler.PciDevice(d["address"], d["vendor_id"], d["product_id"])
                for d in inv.get("pci_devices", []) if d.get("address") not in claimed)
    instances = frozenset(session.scalars(select(Instance.id).where(
        Instance.node_id == node.id, Instance.deleted.is_(False))))
    cpu, ram, disk = ratios(node)
    return scheduler.Host(
        id=node.id, name=node.name, availability_zone=node.availability_zone,
        enabled=node.enabled, up=node.state == "up" and not node.forced_down,
        vcpus=node.vcpus, vcpus_used=node.vcpus_used, memory_mb=node.memory_mb,
        memory_mb_used=node.memory_mb_used, disk_gb=node.local_gb,
        disk_gb_used=node.local_gb_used, cpu_ratio=cpu, ram_ratio=ram, disk_ratio=disk,
        arch=inv.get("arch", "x86_64"), accelerator=inv.get("accelerator", "tcg"),
        free_pci=pci, instances=instances)


def hosts(session: Session) -> list[scheduler.Host]:
    return [host_of(session, n) for n in session.scalars(select(Node).order_by(Node.name))]


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
    candidates = scheduler.select(hosts(session), req, strategy)
    for host in candidates:
        devices = claim(session, host, inst, req)
        if devices is not None:
            node = session.get(Node, host.id)
            inst.node_id, inst.node_name, inst.pci_devices = node.id, node.name, devices
            return node
    raise scheduler.NoValidHost("No valid host was found. Every candidate was claimed by "
                                "concurrent requests first.")
