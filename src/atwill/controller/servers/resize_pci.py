"""PCI passthrough devices through a cold migration or resize (Nova's move claims).

The destination's devices are claimed with its resources when the move starts
(placement.place adds their pci_claims rows for the instance); until the move ends the
instance holds claims on both nodes, and inst.pci_devices names the devices of the node
it is on. It takes the destination's when its disk arrives there (so the destination's
desired state, and its agent's vfio-pci arguments, name them), and the source's again
at revert. Confirm gives the source's up, revert and failure the destination's: what
is left is always the claims of where the instance is, with the devices it uses.
"""

from __future__ import annotations

from sqlalchemy import and_, delete, not_, select
from sqlalchemy.orm import Session

from ..db.models import Instance, PciClaim


def claimed_for_move(session: Session, inst: Instance, node_id: str | None) -> list[str]:
    """The addresses claimed for inst on node_id besides those it uses now (the other
    end of its move; on the same node, the other set)."""
    if node_id is None:
        return []
    using = set(inst.pci_devices or []) if inst.node_id == node_id else set()
    found = session.scalars(select(PciClaim.address).where(
        PciClaim.instance_id == inst.id, PciClaim.node_id == node_id).order_by(PciClaim.id))
    return [a for a in found if a not in using]


def arrive(session: Session, inst: Instance, node_id: str | None) -> None:
    """inst moves to node_id (call before its node changes): its devices are those
    claimed there for the move."""
    inst.pci_devices = claimed_for_move(session, inst, node_id)


def settle(session: Session, inst: Instance) -> None:
    """Keep only the claims of inst's node for the devices it uses; the rest go."""
    session.flush()
    mine = PciClaim.instance_id == inst.id
    if inst.node_id is None:
        session.execute(delete(PciClaim).where(mine))
        return
    kept = and_(PciClaim.node_id == inst.node_id,
                PciClaim.address.in_(list(inst.pci_devices or [])))
    session.execute(delete(PciClaim).where(mine, not_(kept))
                    .execution_options(synchronize_session=False))
