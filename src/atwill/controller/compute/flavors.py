"""/flavors: list, detail, show, create, update (2.55) and delete."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, or_, select

from ...core import flavors as rules
from ...core.errors import BadRequest, Conflict
from ...core.microversion import Version
from ...core.policy import Credentials
from ..db.base import new_uuid
from ..db.compute import Flavor
from ..service import authorize, caller, controller, json_body, wrapped
from ..sqlpage import Key
from .common import api_version, query_bool, query_int, require, sql_paginated
from .flavor_shape import get_flavor, to_api, visible

router = APIRouter()
CREATE_KEYS = {"name", "id", "ram", "vcpus", "disk", "OS-FLV-EXT-DATA:ephemeral", "swap",
               "rxtx_factor", "os-flavor-access:is_public"}


@router.get("/v2.1/flavors")
def flavors_get(request: Request, creds: Credentials = Depends(caller),
                version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavors:list")
    return _listing(request, creds, version, detail=False)


@router.get("/v2.1/flavors/detail")
def flavors_detail_get(request: Request, creds: Credentials = Depends(caller),
                       version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavors:list")
    return _listing(request, creds, version, detail=True)


@router.get("/v2.1/flavors/{flavor_id}")
def flavor_get(flavor_id: str, request: Request, creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavors:show")
    with controller(request).db.session() as session:
        return {"flavor": to_api(get_flavor(session, creds, flavor_id), request, version)}


@router.post("/v2.1/flavors")
def flavors_post(request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller),
                 version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:flavors:create")
    data = wrapped(body, "flavor")
    allowed = CREATE_KEYS | ({"description"} if version >= "2.55" else set())
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"Invalid input for flavor: additional properties are not allowed "
                         f"({', '.join(unknown)} were unexpected).")
    values = _parse(rules.parse_create, data)
    values["flavorid"] = values["flavorid"] or new_uuid()
    with controller(request).db.session() as session:
        clash = session.scalar(select(Flavor).where(or_(
            Flavor.name == values["name"], Flavor.flavorid == values["flavorid"])))
        if clash is not None and clash.name == values["name"]:
            raise Conflict(f"Flavor with name {values['name']} already exists.")
        if clash is not None:
            raise Conflict(f"Flavor with ID {values['flavorid']} already exists.")
        flavor = Flavor(**values)
        session.add(flavor)
        session.flush()
        session.refresh(flavor)
        return {"flavor": to_api(flavor, request, version)}


@router.put("/v2.1/flavors/{flavor_id}")
def flavor_put(flavor_id: str, request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller),
               version: Version = Depends(api_version)) -> dict:
    require(version, "2.55")
    authorize(creds, "compute:flavors:update")
    data = wrapped(body, "flavor")
    if set(data) != {"description"}:
        raise BadRequest("Invalid input for flavor: only 'description' may be updated, "
                         "and it is required.")
    description = _parse(rules.description, data["description"])
    with controller(request).db.session() as session:
        flavor = get_flavor(session, creds, flavor_id)
        flavor.description = description
        session.flush()
        return {"flavor": to_api(flavor, request, version)}


@router.delete("/v2.1/flavors/{flavor_id}")
def flavor_delete(flavor_id: str, request: Request,
                  creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "compute:flavors:delete")
    with controller(request).db.session() as session:
        session.delete(get_flavor(session, creds, flavor_id))
    return Response(status_code=202)


def _parse(func, *args):  # noqa: ANN001, ANN202 - turns core validation errors into 400s
    try:
        return func(*args)
    except rules.InvalidFlavor as err:
        raise BadRequest(str(err)) from None


def _listing(request: Request, creds: Credentials, version: Version, detail: bool) -> dict:
    params = request.query_params
    raw_public = params.get("is_public")
    everything = raw_public is not None and raw_public.lower() == "none"
    is_public = None if everything else query_bool(request, "is_public")
    min_ram, min_disk = query_int(request, "minRam"), query_int(request, "minDisk")
    sort_key = params.get("sort_key", "flavorid")
    sort_dir = params.get("sort_dir", "asc")
    if sort_key not in rules.SORT_KEYS or sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort: sort_key must be one of {sorted(rules.SORT_KEYS)} "
                         "and sort_dir asc or desc.")
    with controller(request).db.session() as session:
        query = visible(select(Flavor), creds, is_public, everything)
        if min_ram is not None:
            query = query.where(Flavor.ram >= min_ram)
        if min_disk is not None:
            query = query.where(Flavor.disk >= min_disk)
        column = getattr(Flavor, rules.SORT_KEYS[sort_key])
        # Only description may be NULL: those sort first; the row id breaks ties, as Nova's.
        if column.expression.nullable:
            column = func.coalesce(column, "")
        keys = [Key(column, desc=sort_dir == "desc"), Key(Flavor.id, desc=sort_dir == "desc")]
        chunk, more = sql_paginated(request, session, query, keys, Flavor.flavorid,
                                    "flavors/detail" if detail else "flavors", "flavors_links",
                                    marker_of=lambda f: f.flavorid)
        items = [to_api(f, request, version, detail) for f in chunk]
    return {"flavors": items, **more}
