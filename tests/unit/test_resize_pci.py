"""PCI claims through a cold migration or resize (servers/resize_pci.py), on a real
database: the move's claim made as resize._claim makes it, then arrive/settle as
received, confirm, revert and failure call them; between two nodes and on one."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from atwill.controller.db.models import Instance, Node, PciClaim
from atwill.controller.db.session import Database
from atwill.controller.servers import placement, resize_pci
from atwill.core import scheduler
from tests.unit import migrated_copies
from tests.unit.test_placement_fast import SPREAD, add_node, new_instance

GPU = (scheduler.PciRequest("K20m", "10de", "1028", 1),)
REQ = scheduler.Request(1, 512, 1, pci=GPU)


def gpu(address: str) -> dict[str, str]:
    return {"address": address, "vendor_id": "10de", "product_id": "1028"}


template, db = migrated_copies.fixtures()  # tests/unit/migrated_copies.py


def claims(s: Any, inst: Instance) -> set[tuple[str, str]]:
    return {(n, a) for n, a in s.execute(select(PciClaim.node_id, PciClaim.address).where(
        PciClaim.instance_id == inst.id))}


def move_claim(s: Any, inst: Instance, ignore: frozenset[str] = frozenset()) -> str:
    """What resize._claim does: place again, the instance left where it was."""
    saved = (inst.node_id, inst.node_name, inst.pci_devices)
    req = scheduler.Request(1, 512, 1, pci=GPU, ignore_hosts=ignore)
    host = placement.place(s, SPREAD, inst, req)
    inst.node_id, inst.node_name, inst.pci_devices = saved
    return host.id


def test_between_two_nodes_confirm_keeps_only_the_destination(db: Database) -> None:
    a = add_node(db, "a", inventory={"pci_devices": [gpu("0000:3b:00.0")]})
    b = add_node(db, "b", inventory={"pci_devices": [gpu("0000:3b:00.0")]})
    with db.session() as s:
        inst = new_instance(s, REQ)
        placement.place(s, SPREAD, inst, REQ)
        src = inst.node_id
        assert inst.pci_devices == ["0000:3b:00.0"] and src in (a, b)
        dest = move_claim(s, inst, frozenset({src}))
        assert dest != src and claims(s, inst) == {(src, "0000:3b:00.0"),
                                                   (dest, "0000:3b:00.0")}
        assert resize_pci.claimed_for_move(s, inst, src) == []
        resize_pci.arrive(s, inst, dest)  # received: the same address, the other node
        inst.node_id = dest
        assert inst.pci_devices == ["0000:3b:00.0"]
        resize_pci.settle(s, inst)  # confirmed
        assert claims(s, inst) == {(dest, "0000:3b:00.0")}


def test_on_one_node_revert_gives_back_the_old_device(db: Database) -> None:
    node = add_node(db, "one", inventory={"pci_devices": [gpu("0000:3b:00.0"),
                                                          gpu("0000:3c:00.0")]})
    with db.session() as s:
        inst = new_instance(s, REQ)
        placement.place(s, SPREAD, inst, REQ)
        (old,) = inst.pci_devices
        assert move_claim(s, inst) == node
        (new,) = resize_pci.claimed_for_move(s, inst, node)
        assert new != old
        resize_pci.arrive(s, inst, node)
        assert inst.pci_devices == [new]
        resize_pci.arrive(s, inst, node)  # revert: the other set again
        assert inst.pci_devices == [old]
        resize_pci.settle(s, inst)
        assert claims(s, inst) == {(node, old)}
        # The freed device is free for the next server.
        other = new_instance(s, REQ)
        placement.place(s, SPREAD, other, REQ)
        assert other.pci_devices == [new]


def test_failure_and_no_device_elsewhere(db: Database) -> None:
    a = add_node(db, "a", inventory={"pci_devices": [gpu("0000:3b:00.0")]})
    b = add_node(db, "b", inventory={"pci_devices": [gpu("0000:3b:00.0")]})
    with db.session() as s:
        inst = new_instance(s, REQ)
        placement.place(s, SPREAD, inst, REQ)
        src = inst.node_id
        dest = move_claim(s, inst, frozenset({src}))
        placement.release_counters(s, dest, 1, 512, 1)  # failed: as resize_agents does
        resize_pci.settle(s, inst)  # the instance stays, the destination's devices go
        assert inst.node_id == src and claims(s, inst) == {(src, "0000:3b:00.0")}
        assert {a, b} == {src, dest}
        # With the other node's device taken, the move finds no host and claims nothing.
        taker = new_instance(s, REQ)
        placement.place(s, SPREAD, taker, REQ)
        assert taker.node_id == dest
        with pytest.raises(scheduler.NoValidHost, match="PciPassthroughFilter"):
            move_claim(s, inst, frozenset({src}))
        assert claims(s, inst) == {(src, "0000:3b:00.0")}
        assert s.get(Node, dest).vcpus_used == 1  # the taker's only
