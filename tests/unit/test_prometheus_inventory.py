"""/metrics' node and instance families and the placement counter, on a real database."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from atwill.config import Settings
from atwill.controller.db.models import Instance, Node
from atwill.controller.db.session import Database, migrate
from atwill.controller.metrics_inventory import Inventory
from atwill.controller.metrics_placements import PLACEMENTS
from atwill.controller.metrics_relay import CounterRelay
from atwill.controller.servers import placement
from atwill.core import scheduler

MIB, GIB = 2 ** 20, 2 ** 30


@pytest.fixture
def db(db: Database) -> Database:
    migrate(db.engine)
    return db


def exposition(registry: CollectorRegistry) -> dict[tuple[str, frozenset], float]:
    text = generate_latest(registry).decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def add(db: Database, *rows: Any) -> None:
    with db.session() as session:
        session.add_all(rows)


def instance(node: Node | None, state: str = "active", **kw: Any) -> Instance:
    return Instance(id=str(uuid.uuid4()), name="t", project_id="proj", user_id="u",
                    vcpus=2, memory_mb=512, disk_gb=10, vm_state=state,
                    node_id=node.id if node else None, node_name=node.name if node else None,
                    **kw)


def test_nodes_and_instances_with_their_relayed_counters(db: Database) -> None:
    up = Node(id=str(uuid.uuid4()), name="n-up", vcpus=8, vcpus_used=2, memory_mb=4096,
              memory_mb_used=512, local_gb=100, local_gb_used=10, running_vms=1)
    down = Node(id=str(uuid.uuid4()), name="n-down", state="down", health="down",
                enabled=False, vcpus=4, memory_mb=1024, local_gb=20)
    # Its agent restarts, its notice holds (core/restart_notice).
    back = Node(id=str(uuid.uuid4()), name="n-back", health="restarting", vcpus=4,
                memory_mb=1024, local_gb=20)
    running, queued = instance(up), instance(None, "building")
    add(db, up, down, back, running, queued, instance(up, "deleted", deleted=True))
    relay = CounterRelay()
    relay.record(up.id, {running.id: {"metrics": {"cpu_seconds": 3.5, "net_tx_bytes": 9,
                                                  "memory_rss_bytes": 300 * MIB}},
                         "someone-elses": {"metrics": {"cpu_seconds": 1}}})
    relay.record("a-removed-node", {"x": {"metrics": {"cpu_seconds": 1}}})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Inventory(SimpleNamespace(db=db, settings=Settings()), relay))  # type: ignore[arg-type]
    found = exposition(registry)

    def value(name: str, **labels: str) -> float:
        return found[(name, frozenset(labels.items()))]

    assert value("atwill_node_up", node="n-up") == 1 and value("atwill_node_up", node="n-down") == 0
    assert value("atwill_node_enabled", node="n-down") == 0
    assert value("atwill_node_health", node="n-down", health="down") == 1
    assert value("atwill_node_health", node="n-down", health="up") == 0
    assert value("atwill_node_health", node="n-down", health="restarting") == 0
    assert value("atwill_node_health", node="n-back", health="restarting") == 1
    assert value("atwill_node_health", node="n-back", health="up") == 0
    assert value("atwill_node_vcpus_used", node="n-up") == 2
    assert value("atwill_node_memory_bytes", node="n-up") == 4096 * MIB
    assert value("atwill_node_disk_used_bytes", node="n-up") == 10 * GIB
    assert value("atwill_node_instances", node="n-up") == 1  # the deleted one is not
    assert value("atwill_node_instances", node="n-down") == 0
    mine = {"instance_id": running.id, "project_id": "proj", "node": "n-up"}
    assert value("atwill_instance_state", **mine, state="active") == 1
    assert value("atwill_instance_memory_bytes", **mine) == 512 * MIB
    assert value("atwill_instance_cpu_seconds_total", **mine) == 3.5
    assert value("atwill_instance_network_transmit_bytes_total", **mine) == 9
    assert value("atwill_instance_memory_resident_bytes", **mine) == 300 * MIB
    assert value("atwill_instance_state", instance_id=queued.id, project_id="proj", node="",
                 state="building") == 1
    # Counters of instances the database does not place there are not shown at all.
    assert sum(1 for name, _ in found if name == "atwill_instance_cpu_seconds_total") == 1
    assert relay.of("a-removed-node") == {}


def test_every_placement_is_counted_by_result(db: Database) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PLACEMENTS)
    key = "atwill_scheduler_placements_total"
    before = exposition(registry)
    req = scheduler.Request(vcpus=1, memory_mb=64, disk_gb=1)
    settings = SimpleNamespace(scheduler_weigher="spread")
    with db.session() as session:
        inst = instance(None, "building")
        session.add(inst)
        with pytest.raises(scheduler.NoValidHost):
            placement.place(session, settings, inst, req)  # type: ignore[arg-type]
        session.add(Node(name="roomy", vcpus=8, memory_mb=8192, local_gb=100,
                         inventory={"arch": "x86_64"}))
        session.flush()
        placement.place(session, settings, inst, req)  # type: ignore[arg-type]
    after = exposition(registry)
    for result in ("placed", "no_valid_host"):
        label = frozenset({("result", result)})
        assert after[(key, label)] == before[(key, label)] + 1
