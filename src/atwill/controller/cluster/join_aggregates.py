"""Host aggregates named by a join (its --aggregate options and its token's).

A node is put into them in the join's own transaction, so a join refused for an unknown
aggregate or for two availability zones leaves nothing behind: no node, no membership,
and the token's use is not counted.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ...core.aggregates import ZONE_KEY
from ...core.errors import BadRequest, Conflict
from ..db.base import utcnow
from ..db.models import Aggregate, AggregateHost, AggregateMetadata


def resolve(session: Session, names: Iterable[str],
            refused: str = "Join refused") -> list[Aggregate]:
    """The aggregates by name (or Nova id), in order, once each; unknown ones refused."""
    found: dict[int, Aggregate] = {}
    unknown: list[str] = []
    for name in names:
        agg = session.scalar(select(Aggregate).where(Aggregate.name == name))
        if agg is None and name.isdigit() and len(name) < 10:
            agg = session.get(Aggregate, int(name))
        if agg is None:
            unknown.append(name)
        else:
            found.setdefault(agg.id, agg)
    if unknown:
        listed = ", ".join(repr(n) for n in dict.fromkeys(unknown))
        raise BadRequest(f"{refused}: no host aggregate named {listed} (see 'openstack "
                         "aggregate list'); nothing was changed.")
    return list(found.values())


def check_zones(session: Session, host: str | None, aggs: list[Aggregate],
                refused: str = "Join refused") -> None:
    """Nova's rule: a host is in one availability zone, whichever aggregates name one."""
    zones = {a.name: a.availability_zone for a in aggs if a.availability_zone is not None}
    held = [] if host is None else session.execute(
        select(Aggregate.name, AggregateMetadata.value)
        .join(AggregateMetadata, AggregateMetadata.aggregate_id == Aggregate.id)
        .join(AggregateHost, AggregateHost.aggregate_id == Aggregate.id)
        .where(AggregateMetadata.key == ZONE_KEY, AggregateHost.host == host)).all()
    zones.update({name: zone for name, zone in held})
    if len(set(zones.values())) > 1:
        which = ", ".join(f"{name} (zone {zone})" for name, zone in sorted(zones.items()))
        raise Conflict(f"{refused}: a host is in one availability zone only, and "
                       f"{f'node {host}' if host else 'a node'} would be in several through "
                       f"host aggregates {which}; nothing was changed.")


def add_host(session: Session, host: str, aggs: list[Aggregate]) -> None:
    """Make host a member of each aggregate it is not in yet (a rejoin stays in its own)."""
    for agg in aggs:
        if host not in {h.host for h in agg.hosts}:
            agg.hosts.append(AggregateHost(host=host))
            agg.updated_at = utcnow()
    session.flush()
