"""Each node's HA policy (core/ha_policy), from the aggregates it is in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core import ha_policy
from ..context import Controller
from ..db.models import AggregateHost, AggregateMetadata


def of_nodes(session: Session, ctl: Controller) -> dict[str, str]:
    """Node name → policy, for the nodes some aggregate names a policy for."""
    named: dict[str, list[str]] = {}
    for host, value in session.execute(
            select(AggregateHost.host, AggregateMetadata.value)
            .join(AggregateMetadata, AggregateMetadata.aggregate_id == AggregateHost.aggregate_id)
            .where(AggregateMetadata.key == ha_policy.KEY)):
        named.setdefault(host, []).append(value)
    return {host: ha_policy.of_node(values, ctl.settings.ha_policy)
            for host, values in named.items()}


def of_node(session: Session, ctl: Controller, name: str) -> str:
    """The policy of one node: its aggregates', or the cloud's default."""
    values = session.scalars(
        select(AggregateMetadata.value)
        .join(AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
        .where(AggregateMetadata.key == ha_policy.KEY, AggregateHost.host == name))
    return ha_policy.of_node(values, ctl.settings.ha_policy)
