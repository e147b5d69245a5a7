"""PostgreSQL: a create that asks only for room is placed in one statement.

Most creates ask the filters for nothing but room (no zone, image properties, aggregate
or capability specs, PCI, server group, host hints, retry: core/scheduler.capacity_only).
For those, the filters that always run and the weighers are plain SQL, so the best node
of the shortlist that fits and that no other claim holds is picked, locked and claimed
in one `UPDATE … RETURNING`: no SELECT of the shortlist, no Python filtering, weighing
or Host objects per create (a round trip and ~0.3 ms of client CPU fewer, see
bench/scheduler.py). placement._place calls it first, for every caller: the API's create
runs it as the bench does.

It picks the node placement's general path would: the same shortlist (the SHORTLIST
usable nodes, with most, or for pack least, free RAM at the default ratio, then by name;
usable: enabled, up, not forced down, not restarting, not fenced nor being fenced), the
same fit (the claim's own conditions, rechecked on the locked current row: nothing is
overbooked; so is "no allocation ratio of its own": a ratio committed after the
statement's snapshot makes it claim nothing), the same order (free RAM, then free vCPUs,
then the name as Python compares it: code points, `COLLATE "C"`), and the general path's
first pass over the nodes no other claim holds (`SKIP LOCKED`). Wherever the answer
could differ it claims nothing and the general path runs as before: a shortlist node in
an aggregate with a key the always-run filters read (tenant isolation, HA spares) or
with its own allocation ratios; every fitting node held by another claim (the general
path then waits); none that fits (every node is then asked, and NoValidHost says why).
An aggregate key committed after the statement's snapshot is not seen (no statement of
one snapshot can: the general path reads the aggregates before its claim, the same window).

A server's first placement (claim_placing: no node nor node name yet, so the ORM's flush
of its node would write no usage event) also gives the instance row its node in the same
statement, and the object's attributes are set as committed: no UPDATE at the next flush
(one round trip and the flush's client CPU fewer per create, see bench/scheduler.py).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Boolean, String, column, inspect, text
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from ...core import ha_policy, scheduler
from ...core.aggregate_filters import TENANT_KEY
from ...core.restart_notice import RESTARTING
from ..db.base import utcnow
from ..db.models import Instance
from . import new_instance, placement

# What the SQL below stands for; a filter added to the ones that always run must be
# written here too (a unit test holds the two together).
COVERS = frozenset({"ComputeFilter", "CoreFilter", "RamFilter", "DiskFilter",
                    "ReservedHostFilter", "AggregateMultiTenancyIsolation"})
_CPU, _RAM, _DISK = placement.CPU_RATIO, placement.RAM_RATIO, placement.DISK_RATIO


def _usable(n: str) -> str:
    return (f"{n}.enabled IS true AND {n}.state = 'up' AND {n}.forced_down IS false "
            f"AND {n}.health <> '{RESTARTING}' AND {placement.unfenced_sql(n)}")


def _plain(n: str) -> str:
    """No allocation ratio of its own (the shortlist's check, again on the locked row)."""
    return " AND ".join(f"({n}.inventory -> '{kind}_allocation_ratio') IS NULL"
                        for kind in ("cpu", "ram", "disk"))


def _fits(n: str) -> str:
    return (f"{n}.vcpus_used + :want_vcpus <= {n}.vcpus * {_CPU!r} "
            f"AND {n}.memory_mb_used + :want_ram <= {n}.memory_mb * {_RAM!r} "
            f"AND {n}.local_gb_used + :want_disk <= {n}.local_gb * {_DISK!r}")


def _statement(direction: str) -> str:
    # The shortlist's ORDER BY is the free-RAM index's expression (db/compute.FREE_RAM).
    free_ram = f"c.memory_mb * {_RAM!r} - c.memory_mb_used"
    free_cpu = f"c.vcpus * {_CPU!r} - c.vcpus_used"
    return f"""
WITH short AS MATERIALIZED (
    SELECT s.id, s.name, s.inventory FROM nodes AS s WHERE {_usable('s')}
    ORDER BY s.memory_mb * {_RAM!r} - s.memory_mb_used {direction}, s.name
    LIMIT {placement.SHORTLIST}
), pick AS (
    SELECT c.id FROM nodes AS c
    WHERE c.id = ANY(ARRAY(SELECT short.id FROM short))  -- 16 primary-key lookups
      AND NOT EXISTS (
        SELECT 1 FROM short
        WHERE NOT ({_plain('short')})
           OR EXISTS (
             SELECT 1 FROM aggregate_hosts AS ah JOIN aggregate_metadata AS am
               ON am.aggregate_id = ah.aggregate_id
             WHERE ah.host = short.name
               AND (starts_with(am.key, :tenant_key) OR am.key = :reserved_key)))
      AND {_usable('c')} AND {_fits('c')}
    ORDER BY {free_ram} {direction}, {free_cpu} {direction}, c.name COLLATE "C"
    LIMIT 1
    FOR UPDATE OF c SKIP LOCKED
)
UPDATE nodes SET vcpus_used = nodes.vcpus_used + :want_vcpus,
    memory_mb_used = nodes.memory_mb_used + :want_ram,
    local_gb_used = nodes.local_gb_used + :want_disk, updated_at = :now
FROM pick WHERE nodes.id = pick.id AND {_usable('nodes')} AND {_fits('nodes')}
    AND {_plain('nodes')}
RETURNING nodes.id AS id, nodes.name AS name, nodes.availability_zone AS zone,
    ARRAY[nodes.vcpus, nodes.vcpus_used, nodes.memory_mb, nodes.memory_mb_used,
    nodes.local_gb, nodes.local_gb_used] AS counters, nodes.inventory AS inventory"""


def _with_instance(claim: str) -> str:
    """The claim, and the server's row given its node in the same statement (what the
    ORM's flush of node_id and node_name would write, with updated_at its onupdate)."""
    head, update = claim.split("\nUPDATE nodes ", 1)
    return f"""{head},
claimed AS (
UPDATE nodes {update}
), placed AS (
    UPDATE instances SET node_id = claimed.id, node_name = claimed.name, updated_at = :now
    FROM claimed WHERE instances.id = :instance_id RETURNING instances.id
)
SELECT claimed.id, claimed.name, claimed.zone, claimed.counters, claimed.inventory,
    EXISTS (SELECT 1 FROM placed) FROM claimed"""


# Typed result columns: the result's metadata is built once per statement, not per row
# from the cursor's description; and few of them (the driver describes each, per row).
_RESULT = (column("id", String), column("name", String), column("zone", String),
           column("counters"), column("inventory", JSON))
_ORDERS = (("spread", "DESC"), ("pack", "ASC"))
_CLAIM = {order: text(_statement(direction)).columns(*_RESULT) for order, direction in _ORDERS}
_CLAIM_PLACED = {order: text(_with_instance(_statement(direction))).columns(
    *_RESULT, column("placed", Boolean)) for order, direction in _ORDERS}


def _params(req: scheduler.Request) -> dict[str, Any]:
    return {"want_vcpus": req.vcpus, "want_ram": req.memory_mb, "want_disk": req.disk_gb,
            "now": utcnow(), "tenant_key": TENANT_KEY,
            "reserved_key": ha_policy.RESERVED_KEY}


def claim_best(session: Session, req: scheduler.Request,
               strategy: str) -> scheduler.Host | None:
    """The host claimed for req (its counters as they were before the claim), or None when
    the general path must decide. Only for PostgreSQL and requests capacity_only admits."""
    row = session.connection().execute(_CLAIM[strategy], _params(req)).first()
    return None if row is None else _host(row, req)


def claim_placing(session: Session, req: scheduler.Request, strategy: str,
                  inst: Instance) -> scheduler.Host | None:
    """claim_best, and inst's row given the node in the same statement: for a server's
    first placement (persistent, flushed, no node nor node name: its flush would write no
    usage event). inst's node_id, node_name and updated_at are then set as committed (no
    UPDATE at the next flush) and node_scope told, as its before_flush would be."""
    params = _params(req)
    row = session.connection().execute(_CLAIM_PLACED[strategy],
                                       params | {"instance_id": inst.id}).first()
    if row is None:
        return None
    host = _host(row, req)
    if not row[-1]:  # no such row (it cannot be, flushed): the ORM writes it as before
        inst.node_id, inst.node_name = host.id, host.name
        return host
    set_committed_value(inst, "node_id", host.id)
    set_committed_value(inst, "node_name", host.name)
    set_committed_value(inst, "updated_at", params["now"])
    # Written in this (sub)transaction as a flush would have: a savepoint rolled back
    # expires it (else a server that existed before the savepoint kept the node in memory
    # while its row and the node's counters went back, and a later release freed counters
    # it never took).
    session._register_altered([inspect(inst)])
    new_instance.track(session, host.id)
    return host


def _host(row: Any, req: scheduler.Request) -> scheduler.Host:
    node_id, name, zone, counters, inventory = row[:5]
    vcpus, vcpus_used, memory_mb, memory_mb_used, local_gb, local_gb_used = counters
    inventory = inventory or {}
    # No PCI device is read: a request capacity_only admits claims none.
    return scheduler.Host(
        id=node_id, name=name, availability_zone=zone, vcpus=vcpus,
        vcpus_used=vcpus_used - req.vcpus, memory_mb=memory_mb,
        memory_mb_used=memory_mb_used - req.memory_mb, disk_gb=local_gb,
        disk_gb_used=local_gb_used - req.disk_gb, cpu_ratio=_CPU, ram_ratio=_RAM,
        disk_ratio=_DISK, arch=inventory.get("arch", "x86_64"),
        accelerator=inventory.get("accelerator", "tcg"))
