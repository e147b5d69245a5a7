"""What the aggregate and capability filters need of each host, loaded only when asked.

Most flavors ask neither, so placement reads all of a host's aggregate metadata and its
capabilities only for requests whose flavor has `aggregate_instance_extra_specs:` or
`capabilities:` specs; otherwise only the `filter_tenant_id*` keys that tenant isolation
needs and the `ha_reserved` key that keeps spare nodes for evacuations (an index lookup
that finds nothing on most clouds). The shortlist reads GUARDED with its nodes, so a
placement asks for those keys only of the nodes that have some (on most clouds, none: one
round trip fewer per create on PostgreSQL).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from ...core import ha_policy, scheduler
from ...core.aggregate_filters import (
    AGGREGATE_SCOPE,
    CAPABILITIES_SCOPE,
    TENANT_KEY,
    capabilities_of,
    metadata_values,
)
from ..db.models import AggregateHost, AggregateMetadata, Instance, Node

# The keys the filters that always run read (tenant isolation, HA spares).
ALWAYS_READ = or_(AggregateMetadata.key.startswith(TENANT_KEY, autoescape=True),
                  AggregateMetadata.key == ha_policy.RESERVED_KEY)
# Per node row: whether one of its aggregates has such a key (correlated with nodes).
GUARDED: ColumnElement[bool] = (
    select(AggregateHost.id)
    .join(AggregateMetadata, AggregateMetadata.aggregate_id == AggregateHost.aggregate_id)
    .where(AggregateHost.host == Node.name, ALWAYS_READ)
    .correlate(Node).exists().label("guarded"))


def with_flavor_specs(req: scheduler.Request, inst: Instance) -> scheduler.Request:
    """req carrying the flavor's extra specs (the instance keeps the flavor it was given)."""
    specs = (inst.flavor or {}).get("extra_specs") or {}
    return dataclasses.replace(req, extra_specs=dict(specs)) if specs else req


def enrich(session: Session, hosts: Sequence[scheduler.Host], req: scheduler.Request,
           guarded: Collection[str] | None = None) -> list[scheduler.Host]:
    """hosts with their aggregates' metadata and their capabilities, where req asks.

    guarded: the names of the hosts GUARDED holds for, when the caller read it; the
    always-read keys are then asked of those alone (of none, no query).
    """
    want_meta = scheduler.asks(req, AGGREGATE_SCOPE)
    want_caps = scheduler.asks(req, CAPABILITIES_SCOPE)
    if not hosts:
        return []
    metadata: dict[str, list[tuple[str, str]]] = {}
    names = ([h.name for h in hosts] if want_meta or guarded is None
             else [h.name for h in hosts if h.name in guarded])
    if names:
        query = (select(AggregateHost.host, AggregateMetadata.key, AggregateMetadata.value)
                 .join(AggregateMetadata,
                       AggregateMetadata.aggregate_id == AggregateHost.aggregate_id)
                 .where(AggregateHost.host.in_(names)))
        if not want_meta:  # only what the filters that always run read
            query = query.where(ALWAYS_READ)
        for host, key, value in session.execute(query):
            metadata.setdefault(host, []).append((key, value))
    if not (metadata or want_caps):
        return list(hosts)
    nodes: dict[str, dict] = {}
    if want_caps:
        for node_id, hv_type, hv_version, inventory in session.execute(
                select(Node.id, Node.hypervisor_type, Node.hypervisor_version, Node.inventory)
                .where(Node.id.in_([h.id for h in hosts]))):
            nodes[node_id] = {"hypervisor_type": hv_type, "hypervisor_version": hv_version,
                              "inventory": inventory}
    return [dataclasses.replace(
        h, aggregate_metadata=metadata_values(metadata.get(h.name, ())),
        capabilities=capabilities_of(h, nodes.get(h.id, {})) if want_caps else {})
        for h in hosts]
