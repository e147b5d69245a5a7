"""/os-aggregates: host aggregates, their hosts and metadata; zones come from them.

Every route is the cloud admin's, as in Nova. A node's availability zone is kept in
its row (what the scheduler and every listing read) and rewritten here whenever an
aggregate's hosts or zone change.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ...core import aggregates as rules
from ...core import ha_policy
from ...core.errors import BadRequest, Conflict, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.base import utcnow
from ..db.models import Aggregate, AggregateHost, AggregateMetadata, Instance, Node
from ..revision import bump
from ..service import authorize, caller, controller, json_body, wrapped
from .common import api_version

router = APIRouter()
BASE = "/v2.1/os-aggregates"
ACTIONS = ("add_host", "remove_host", "set_metadata")


@router.get(BASE)
def aggregates_get(request: Request, creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:aggregates:index")
    with controller(request).db.session() as session:
        rows = session.scalars(select(Aggregate).order_by(Aggregate.id))
        return {"aggregates": [shape(a, version) for a in rows]}


@router.post(BASE)
def aggregate_post(request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(caller),
                   version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:aggregates:create")
    data = _fields(wrapped(body, "aggregate"), ("name", "availability_zone"))
    name = _name(data.get("name"), required=True)
    zone = rules.zone_name(data.get("availability_zone"))
    with controller(request).db.session() as session:
        _unique(session, name)
        agg = Aggregate(name=name)
        if zone is not None:
            agg.metadata_items.append(AggregateMetadata(key=rules.ZONE_KEY, value=zone))
        session.add(agg)
        session.flush()
        out = shape(agg, version)
    for key in ("hosts", "metadata"):  # Nova's create answers without them
        del out[key]
    return {"aggregate": out}


@router.get(BASE + "/{aggregate_id}")
def aggregate_get(aggregate_id: str, request: Request, creds: Credentials = Depends(caller),
                  version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:aggregates:show")
    with controller(request).db.session() as session:
        return {"aggregate": shape(_get(session, aggregate_id), version)}


@router.put(BASE + "/{aggregate_id}")
def aggregate_put(aggregate_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller),
                  version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:aggregates:update")
    data = _fields(wrapped(body, "aggregate"), ("name", "availability_zone"))
    if not data:
        raise BadRequest("Invalid input for field/attribute aggregate: it needs name or "
                         "availability_zone.")
    name = _name(data.get("name"), required="name" in data)
    zone = rules.zone_name(data.get("availability_zone"))
    with controller(request).db.session() as session:
        agg = _get(session, aggregate_id)
        if name is not None and name != agg.name:
            _unique(session, name)
            agg.name = name
        if zone is not None:
            _set_metadata(session, agg, {rules.ZONE_KEY: zone}, "update aggregate")
        agg.updated_at = utcnow()
        return {"aggregate": shape(agg, version)}


@router.delete(BASE + "/{aggregate_id}")
def aggregate_delete(aggregate_id: str, request: Request,
                     creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "compute:aggregates:delete")
    with controller(request).db.session() as session:
        agg = _get(session, aggregate_id)
        if agg.hosts:
            raise BadRequest(f"Cannot remove aggregate {agg.id}. Reason: Host aggregate is "
                             "not empty.")
        session.delete(agg)
    return Response(status_code=200)


@router.post(BASE + "/{aggregate_id}/action")
def aggregate_action_post(aggregate_id: str, request: Request, body: dict = Depends(json_body),
                          creds: Credentials = Depends(caller),
                          version: Version = Depends(api_version)) -> dict:
    if len(body) != 1 or next(iter(body)) not in ACTIONS:
        raise BadRequest(f"Invalid input: the body takes exactly one of {', '.join(ACTIONS)}.")
    action = next(iter(body))
    authorize(creds, f"compute:aggregates:{action}")
    data = wrapped(body, action)
    with controller(request).db.session() as session:
        agg = _get(session, aggregate_id)
        if action == "set_metadata":
            changes = rules.metadata_changes(_fields(data, ("metadata",)).get("metadata"))
            _set_metadata(session, agg, changes, "update metadata of aggregate")
        else:
            host = clean_name(_fields(data, ("host",)).get("host"), "host", required=True)
            (_add_host if action == "add_host" else _remove_host)(session, agg, host or "")
        agg.updated_at = utcnow()
        session.flush()
        if ha_policy.KEY in agg.meta or ha_policy.KEY in (data.get("metadata") or {}):
            bump(session)  # the nodes' desired "ha" blocks follow their policy
        return {"aggregate": shape(agg, version)}


def shape(agg: Aggregate, version: Version) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": agg.id, "name": agg.name, "availability_zone": agg.availability_zone,
        "created_at": _time(agg.created_at), "updated_at": _time(agg.updated_at),
        "deleted": False, "deleted_at": None, "hosts": [h.host for h in agg.hosts],
        "metadata": agg.meta}
    if version >= "2.41":
        out["uuid"] = agg.uuid
    return out


def _time(value: Any) -> str | None:
    # Nova shows aggregates' times as Python's isoformat of a naive UTC datetime.
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def _fields(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    extra = sorted(set(data) - set(allowed))
    if extra:
        raise BadRequest(f"Invalid input: additional properties are not allowed "
                         f"({', '.join(repr(k) for k in extra)} were unexpected).")
    return data


def _name(value: Any, required: bool) -> str | None:
    name = clean_name(value, required=required)
    if name is not None and (not name.strip() or name != name.strip()):
        raise BadRequest("Invalid input for field/attribute name: 1 to 255 characters, "
                         "without leading or trailing spaces.")
    return name


def _get(session: Session, aggregate_id: str) -> Aggregate:
    agg = session.get(Aggregate, int(aggregate_id)) if aggregate_id.isdigit() and len(
        aggregate_id) < 10 else None
    if agg is None:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.")
    return agg


def _unique(session: Session, name: str) -> None:
    if session.scalar(select(func.count(Aggregate.id)).where(Aggregate.name == name)):
        raise Conflict(f"Aggregate {name} already exists.")


def _add_host(session: Session, agg: Aggregate, host: str) -> None:
    if session.scalar(select(Node.id).where(Node.name == host)) is None:
        raise NotFound(f"Compute host {host} could not be found.")
    if host in {h.host for h in agg.hosts}:
        raise Conflict(f"Aggregate {agg.id} already has host {host}.")
    if agg.availability_zone is not None:
        _check_zone(session, agg, agg.availability_zone, [host], "add host to aggregate")
    agg.hosts.append(AggregateHost(host=host))
    _sync_zones(session, [host])


def _remove_host(session: Session, agg: Aggregate, host: str) -> None:
    member = next((h for h in agg.hosts if h.host == host), None)
    if member is None:
        if session.scalar(select(Node.id).where(Node.name == host)) is None:
            raise NotFound(f"Compute host {host} could not be found.")
        raise NotFound(f"Aggregate {agg.id} has no host {host}.")
    agg.hosts.remove(member)
    _sync_zones(session, [host])


def _set_metadata(session: Session, agg: Aggregate, changes: dict[str, str | None],
                  action: str) -> None:
    zone = changes.get(rules.ZONE_KEY)
    if rules.ZONE_KEY in changes and zone is None:
        # Nova refuses to unset a zone: the hosts would move to the default one unseen.
        raise BadRequest(f"Cannot {action} {agg.id}. Reason: Aggregate {agg.name} does not "
                         "support empty named availability zone.")
    hosts = [h.host for h in agg.hosts]
    if zone is not None and zone != agg.availability_zone:
        _check_zone(session, agg, zone, hosts, action)
        if hosts and session.scalar(select(func.count(Instance.id)).where(
                Instance.node_name.in_(hosts), Instance.deleted.is_(False))):
            raise BadRequest(f"Cannot {action} {agg.id}. Reason: One or more hosts contain "
                             "instances in this zone.")
    after = rules.merged(agg.meta, changes)
    if len(after) > rules.MAX_METADATA:
        raise BadRequest(f"Invalid input: an aggregate holds at most {rules.MAX_METADATA} "
                         "metadata keys.")
    items = {m.key: m for m in agg.metadata_items}
    for key, value in changes.items():
        if value is None and key in items:
            agg.metadata_items.remove(items[key])
        elif value is not None and key in items:
            items[key].value = value
        elif value is not None:
            agg.metadata_items.append(AggregateMetadata(key=key, value=value))
    _sync_zones(session, hosts)


def _check_zone(session: Session, agg: Aggregate, zone: str, hosts: list[str],
                action: str) -> None:
    """Nova's rule: a host is in one zone, so its other aggregates must name the same."""
    if not hosts:
        return
    others = session.execute(select(AggregateMetadata.aggregate_id, AggregateMetadata.value)
                             .join(AggregateHost, AggregateHost.aggregate_id
                                   == AggregateMetadata.aggregate_id)
                             .where(AggregateMetadata.key == rules.ZONE_KEY,
                                    AggregateHost.host.in_(hosts))).all()
    conflicts = rules.conflicting_zones(zone, [(a, z) for a, z in others], agg.id)
    if conflicts:
        raise BadRequest(f"Cannot {action} {agg.id}. Reason: One or more hosts already in "
                         f"availability zone(s) {sorted(set(conflicts))!r}.")


def _sync_zones(session: Session, hosts: list[str]) -> None:
    """Write each host's zone, from its aggregates as they now are, into its node row."""
    session.flush()
    for host in hosts:
        zones = session.scalars(select(AggregateMetadata.value).join(
            AggregateHost, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id).where(
            AggregateMetadata.key == rules.ZONE_KEY, AggregateHost.host == host))
        session.execute(update(Node).where(Node.name == host).values(
            availability_zone=rules.host_zone(zones)).execution_options(
            synchronize_session=False))
