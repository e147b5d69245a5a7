"""Nova's ways of naming the node a new server goes to.

The availability zone may carry a host and node, ``ZONE:HOST``, ``ZONE:HOST:NODE`` or
``ZONE::NODE`` (an admin's forced host: the scheduler's filters are skipped), and from
2.74 the body may name ``host`` and/or ``hypervisor_hostname`` (the filters still run).
Here a host and its hypervisor share one name, the node's.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import BadRequest


@dataclass(frozen=True)
class Destination:
    zone: str | None
    host: str | None = None  # the node's name
    forced: bool = False  # the zone form: no filters


def parse_zone(value: str | None) -> Destination:
    """Split ZONE[:HOST[:NODE]] / ZONE::NODE; an empty zone means the default zone."""
    if not value or ":" not in value:
        return Destination(value or None)
    parts = value.split(":")
    if len(parts) > 3:
        raise BadRequest("Unable to parse availability_zone")
    zone, host, node = (parts + [""])[:3]
    if host and node and host != node:
        raise BadRequest(f"Compute host {host} could not be found.")
    name = host or node
    return Destination(zone or None, name or None, forced=bool(name))


def requested(zone: Destination, host: str | None, node: str | None) -> Destination:
    """Fold 2.74's host/hypervisor_hostname into the zone's destination."""
    if not (host or node):
        return zone
    if zone.host:
        raise BadRequest("One mechanism with host and/or hypervisor_hostname and another "
                         "mechanism with zone:host:node are mutually exclusive.")
    if host and node and host != node:
        raise BadRequest(f"Compute host {host} could not be found.")
    return Destination(zone.zone, host or node, forced=False)
