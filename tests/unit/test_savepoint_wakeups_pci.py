"""A create of two servers whose second one's PCI claim loses its savepoint (placement.claim:
the device was claimed meanwhile, an IntegrityError) still wakes the first one's node.

The rollback of that savepoint used to drop every bump the transaction had made: the
first server's node never heard of it until an unrelated change (savepoint_info.py).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from atwill.controller.db.models import PciClaim
from atwill.controller.db.session import Database, immediate, migrate
from atwill.controller.revision import bump, node_revision
from atwill.controller.servers import placement
from atwill.core import scheduler
from tests.unit.test_placement_fast import add_node, new_instance

ADDRESS = "0000:3b:00.0"
GPU = scheduler.Request(1, 512, 1, pci=(scheduler.PciRequest("K20m", "10de", "1028", 1),))


@pytest.fixture
def db(db: Database) -> Database:
    migrate(db.engine)
    return db


def test_a_lost_pci_claim_keeps_the_first_servers_wake_up(
        db: Database, woken: list[set[str] | None]) -> None:
    a = add_node(db, "a")
    b = add_node(db, "b", inventory={"pci_devices": [
        {"address": ADDRESS, "vendor_id": "10de", "product_id": "1028"}]})
    with db.session() as s:  # another server took b's device
        s.add(PciClaim(node_id=b, address=ADDRESS, instance_id=new_instance(s, GPU).id))
    with db.session() as s:
        before = {n: node_revision(s, n) for n in (a, b)}
    woken.clear()
    with immediate(), db.session() as s:
        bump(s, nodes={a})  # server 1 placed on a (lifecycle.schedule)
        second = new_instance(s, GPU)
        host_b = next(h for h in placement.hosts(s) if h.id == b)
        # As read before the other claim committed: the device still listed free.
        stale = replace(host_b, free_pci=(scheduler.PciDevice(ADDRESS, "10de", "1028"),))
        assert placement.claim(s, stale, second, GPU) is None  # its savepoint rolled back
    with db.session() as s:
        after = {n: node_revision(s, n) for n in (a, b)}
    assert after[a] > before[a] and after[b] == before[b]
    assert woken == [{a}]
