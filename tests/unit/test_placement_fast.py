"""Placement on a real database, both engines: the shortlist, the fallback, atomic claims."""

from __future__ import annotations

import threading
import uuid
from types import SimpleNamespace
from typing import Any

from sqlalchemy import func, select

from atwill.controller.db.models import Instance, Node, PciClaim
from atwill.controller.db.session import Database
from atwill.controller.servers import placement
from atwill.core import scheduler
from tests.unit import migrated_copies

template, db = migrated_copies.fixtures()  # tests/unit/migrated_copies.py


SPREAD, PACK = SimpleNamespace(scheduler_weigher="spread"), SimpleNamespace(
    scheduler_weigher="pack")
REQ = scheduler.Request(1, 512, 1)
GPU = {"address": "0000:3b:00.0", "vendor_id": "10de", "product_id": "1028"}



def add_node(db: Database, name: str, **kw: Any) -> str:
    values: dict[str, Any] = dict(name=name, vcpus=8, memory_mb=8192, local_gb=100,
                                  inventory={"arch": "x86_64"})
    values.update(kw)
    with db.session() as s:
        node = Node(**values)
        s.add(node)
        s.flush()
        return node.id


def new_instance(s: Any, req: scheduler.Request) -> Instance:
    inst = Instance(id=str(uuid.uuid4()), name="t", project_id="p", user_id="u",
                    vcpus=req.vcpus, memory_mb=req.memory_mb, disk_gb=req.disk_gb)
    s.add(inst)
    s.flush()
    return inst


def place(db: Database, req: scheduler.Request, settings: Any = SPREAD) -> Instance | str:
    """One server create's transaction: the Instance row, then place and claim."""
    try:
        with db.session() as s:
            inst = new_instance(s, req)
            host = placement.place(s, settings, inst, req)
            assert (host.id, host.name) == (inst.node_id, inst.node_name)
            return inst
    except scheduler.NoValidHost as err:
        return str(err)


def test_shortlist_is_usable_nodes_best_first(db: Database) -> None:
    add_node(db, "a", memory_mb_used=1024)
    add_node(db, "b")
    add_node(db, "c", memory_mb_used=4096)
    add_node(db, "off", enabled=False)
    add_node(db, "down", state="down")
    add_node(db, "forced", forced_down=True)
    with db.session() as s:
        assert [h.name for h in placement.hosts(s, 2)] == ["b", "a"]
        assert [h.name for h in placement.hosts(s, 2, "pack")] == ["c", "a"]
        every = placement.hosts(s)
    assert [h.name for h in every] == ["a", "b", "c", "down", "forced", "off"]
    assert [(h.enabled, h.up) for h in every[3:]] == [(True, False), (True, False),
                                                        (False, True)]


def test_a_node_whose_agent_restarts_takes_nothing_new(db: Database) -> None:
    """Its restart notice holds (health restarting): no one is there to build, and the
    notice may end in a fence; neither the shortlist, the full scan nor a claim takes it."""
    node = add_node(db, "restarting", health="restarting")
    with db.session() as s:
        assert placement.hosts(s, 2) == []
        (host,) = placement.hosts(s)
        assert not host.up
        inst = new_instance(s, REQ)
        assert placement.claim(s, host, inst, REQ) is None
        assert placement.claim(s, host, inst, REQ, forced=True) is None
    assert "restarting" not in str(place(db, REQ))
    with db.session() as s:
        s.get(Node, node).health = "up"
    assert place(db, REQ).node_name == "restarting"


def test_host_fields_ratios_and_free_pci(db: Database) -> None:
    other = dict(GPU, address="0000:3c:00.0")
    node_id = add_node(db, "gpu", availability_zone="edge", vcpus_used=3, local_gb_used=7,
                       inventory={"arch": "aarch64", "accelerator": "kvm",
                                  "cpu_allocation_ratio": 2, "ram_allocation_ratio": "1.0",
                                  "pci_devices": [GPU, other]})
    with db.session() as s:
        s.add(PciClaim(node_id=node_id, address=GPU["address"], instance_id="x"))
    with db.session() as s:
        (host,) = placement.hosts(s, 4)
    assert (host.availability_zone, host.arch, host.accelerator) == ("edge", "aarch64", "kvm")
    assert (host.vcpus_used, host.disk_gb_used) == (3, 7)
    assert (host.cpu_ratio, host.ram_ratio, host.disk_ratio) == (2.0, 1.0, 1.0)
    assert [d.address for d in host.free_pci] == [other["address"]]


def test_instances_are_read_only_when_asked(db: Database) -> None:
    add_node(db, "a")
    req = scheduler.Request(1, 512, 1)
    first, second = place(db, req), place(db, req)
    assert isinstance(first, Instance) and isinstance(second, Instance)
    with db.session() as s:
        s.get(Instance, second.id).deleted = True
    with db.session() as s:
        assert placement.hosts(s)[0].instances == {first.id}
        assert placement.hosts(s, 4, instance_ids=())[0].instances == frozenset()
        assert placement.hosts(s, 4, instance_ids={first.id, "nope"})[0].instances == {
            first.id}


def test_host_hints(db: Database) -> None:
    add_node(db, "a", memory_mb_used=2048)
    add_node(db, "b")
    anchor = place(db, scheduler.Request(1, 512, 1))
    assert isinstance(anchor, Instance) and anchor.node_name == "b"
    near = place(db, scheduler.Request(1, 512, 1, same_host=frozenset({anchor.id})))
    far = place(db, scheduler.Request(1, 512, 1, different_host=frozenset({anchor.id})))
    assert isinstance(near, Instance) and isinstance(far, Instance)
    assert (near.node_name, far.node_name) == ("b", "a")


def test_fallback_to_every_node_and_the_reason(db: Database) -> None:
    for index in range(placement.SHORTLIST + 2):
        add_node(db, f"big-{index:02d}", memory_mb=65536)
    add_node(db, "edge", availability_zone="edge", memory_mb=1024)
    placed = place(db, scheduler.Request(1, 512, 1, availability_zone="edge"))
    assert isinstance(placed, Instance) and placed.node_name == "edge"
    reason = place(db, scheduler.Request(1, 2048, 1, availability_zone="edge"))
    assert reason == ("No valid host was found. AvailabilityZoneFilter eliminated "
                      f"{placement.SHORTLIST + 2} of {placement.SHORTLIST + 3}; "
                      "RamFilter eliminated 1 of 1.")


def test_pack_and_pci_claims(db: Database) -> None:
    add_node(db, "a", memory_mb_used=4096)
    add_node(db, "b", inventory={"pci_devices": [GPU]})
    assert place(db, scheduler.Request(1, 512, 1), PACK).node_name == "a"
    gpu = (scheduler.PciRequest("K20m", "10de", "1028", 1),)
    placed = place(db, scheduler.Request(1, 512, 1, pci=gpu))
    assert isinstance(placed, Instance) and placed.pci_devices == [GPU["address"]]
    assert "PciPassthroughFilter eliminated 2 of 2" in place(
        db, scheduler.Request(1, 512, 1, pci=gpu))


def test_concurrent_creates_never_overbook(db: Database) -> None:
    """Two controllers (two engines on one database) racing for three small nodes."""
    for name in ("a", "b", "c"):
        add_node(db, name, vcpus=5, inventory={"cpu_allocation_ratio": 1.0})
    other = Database(db.url)
    req, results = scheduler.Request(1, 512, 1), []

    def worker(database: Database) -> None:
        for _ in range(5):
            results.append(place(database, req))

    try:
        threads = [threading.Thread(target=worker, args=(d,)) for d in (db, other) * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        other.dispose()
    assert sum(isinstance(r, Instance) for r in results) == 15
    assert all(isinstance(r, Instance) or r.startswith("No valid host") for r in results)
    with db.session() as s:
        used = dict(s.execute(select(Instance.node_id, func.count()).where(
            Instance.node_id.is_not(None)).group_by(Instance.node_id)).all())
        for node in s.scalars(select(Node)):
            assert node.vcpus_used == used[node.id] == 5
