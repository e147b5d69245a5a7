"""/v2.0/subnetpools: address space that subnets are allocated from, shared or not."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core import subnetpools as sp
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import Subnet, SubnetPool
from ..service import caller, controller, json_body, wrapped
from . import access, tags, views
from .common import fault, flag, listing, one, owner, text, transaction, writable

router = APIRouter()
BOUNDS = {"default_prefixlen", "min_prefixlen", "max_prefixlen"}
UPDATE = {"name", "description", "prefixes", "default_quota", "is_default",
          "address_scope_id"} | BOUNDS
CREATE = UPDATE | {"shared", "project_id", "tenant_id", "tags"}


def view(pool: SubnetPool) -> dict[str, Any]:
    return {**views.standard(pool), "name": pool.name, "ip_version": pool.ip_version,
            "prefixes": list(pool.prefixes), "default_prefixlen": pool.default_prefixlen,
            "min_prefixlen": pool.min_prefixlen, "max_prefixlen": pool.max_prefixlen,
            "default_quota": pool.default_quota, "shared": pool.shared,
            "is_default": pool.is_default, "address_scope_id": None}


@router.get("/v2.0/subnetpools")
def subnetpools_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_subnetpool", None)
    with controller(request).db.session() as session:
        items = [view(p) for p in session.scalars(access.query(creds, SubnetPool))]
    return listing(request, "subnetpools", items)


@router.get("/v2.0/subnetpools/{pool_id}")
def subnetpool_get(pool_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_subnetpool", None)
    with controller(request).db.session() as session:
        return one(request, "subnetpool", view(access.find(session, creds, SubnetPool,
                                                           pool_id)))


@router.post("/v2.0/subnetpools")
def subnetpools_post(request: Request, body: dict = Depends(json_body),
                     creds: Credentials = Depends(caller)) -> JSONResponse:
    data = writable(wrapped(body, "subnetpool"), CREATE, "subnetpool")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_subnetpool", project)
    prefixes = _invalid(sp.parse_prefixes, data.get("prefixes"))
    version = prefixes[0].version
    shared, default = flag(data, "shared", False), flag(data, "is_default", False)
    if shared:
        access.check(creds, "network:create_subnetpool:shared", None)
    if default:
        access.check(creds, "network:create_subnetpool:is_default", None)
    attrs = {**_invalid(sp.bounds, data, version), **_plain(data)}

    def work(session: Session) -> dict[str, Any]:
        if default:
            _only_default(session, version)
        pool = SubnetPool(project_id=project, name=text(data, "name"), ip_version=version,
                          prefixes=sp.as_text(prefixes), shared=shared, is_default=default,
                          tags=tags.tag_list(data.get("tags") or []), **attrs)
        session.add(pool)
        session.flush()
        return view(pool)
    return JSONResponse({"subnetpool": transaction(request, work)}, status_code=201)


@router.put("/v2.0/subnetpools/{pool_id}")
def subnetpool_put(pool_id: str, request: Request, body: dict = Depends(json_body),
                   creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "subnetpool"), UPDATE, "subnetpool")
    attrs = _plain(data)
    if "is_default" in data:
        access.check(creds, "network:update_subnetpool:is_default", None)

    def work(session: Session) -> dict[str, Any]:
        pool = access.find(session, creds, SubnetPool, pool_id, lock=True)
        access.may_write(creds, "network:update_subnetpool", pool)
        current = {k: getattr(pool, k) for k in BOUNDS}
        attrs.update(_invalid(sp.bounds, data, pool.ip_version, current))
        if "prefixes" in data:
            attrs["prefixes"] = sp.as_text(_grown(pool, data["prefixes"]))
        if flag(data, "is_default", pool.is_default) and not pool.is_default:
            _only_default(session, pool.ip_version)
            attrs["is_default"] = True
        elif "is_default" in data:
            attrs["is_default"] = flag(data, "is_default", False)
        for key, value in attrs.items():
            setattr(pool, key, value)
        if "name" in data:
            pool.name = text(data, "name")
        pool.touch()
        return view(pool)
    return {"subnetpool": transaction(request, work)}


@router.put("/v2.0/subnetpools/{pool_id}/add_prefixes")
def subnetpool_add_prefixes(pool_id: str, request: Request, body: dict = Depends(json_body),
                            creds: Credentials = Depends(caller)) -> dict:
    return _change_prefixes(request, creds, pool_id, body, "add_prefixes")


@router.put("/v2.0/subnetpools/{pool_id}/remove_prefixes")
def subnetpool_remove_prefixes(pool_id: str, request: Request,
                               body: dict = Depends(json_body),
                               creds: Credentials = Depends(caller)) -> dict:
    return _change_prefixes(request, creds, pool_id, body, "remove_prefixes")


def _change_prefixes(request: Request, creds: Credentials, pool_id: str, body: dict,
                     action: str) -> dict:
    """Neutron's prefix actions: answer the pool's prefixes after the change."""
    given = writable(body, {"prefixes"}, action)

    def work(session: Session) -> dict[str, Any]:
        pool = access.find(session, creds, SubnetPool, pool_id, lock=True)
        access.may_write(creds, "network:update_subnetpool", pool)
        asked = _invalid(sp.parse_prefixes, given.get("prefixes"), pool.ip_version)
        have = sp.from_text(pool.prefixes)
        if action == "add_prefixes":
            pool.prefixes = sp.as_text(sp.merged(have + asked))
        else:
            _invalid(sp.removable, asked, allocated(session, pool.id))
            left = sp.without(have, asked)
            if not left:
                raise BadRequest("Illegal update to prefixes: a subnet pool needs at least "
                                 "one prefix.")
            pool.prefixes = sp.as_text(left)
        pool.touch()
        return {"prefixes": list(pool.prefixes)}
    return transaction(request, work)


@router.delete("/v2.0/subnetpools/{pool_id}")
def subnetpool_delete(pool_id: str, request: Request,
                      creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        pool = access.find(session, creds, SubnetPool, pool_id, lock=True)
        access.may_write(creds, "network:delete_subnetpool", pool)
        if session.scalar(select(exists().where(Subnet.subnetpool_id == pool.id))):
            raise fault(Conflict, "SubnetPoolInUse", f"Unable to complete operation on subnet "
                        f"pool {pool_id}. Subnets are still allocated from it.")
        session.delete(pool)
    transaction(request, work)
    return Response(status_code=204)


def allocated(session: Session, pool_id: str) -> list[sp.Net]:
    """Every subnet CIDR already handed out from the pool, on any network."""
    return sp.from_text(session.scalars(select(Subnet.cidr).where(
        Subnet.subnetpool_id == pool_id)))


def _invalid(func: Any, *args: Any) -> Any:
    """Call pure pool logic, turning its refusals into Neutron's 400."""
    try:
        return func(*args)
    except sp.InvalidPool as err:
        raise BadRequest(str(err)) from None


def _plain(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if data.get("address_scope_id") is not None:
        raise BadRequest("Address scopes are not supported: address_scope_id must be null.")
    if "description" in data:
        out["description"] = text(data, "description")
    if "default_quota" in data:
        quota = data["default_quota"]
        if quota is not None and (isinstance(quota, bool) or not isinstance(quota, int)
                                  or quota < 0):
            raise BadRequest(f"Invalid input for default_quota. Reason: '{quota}' is not a "
                             "non-negative integer.")
        out["default_quota"] = quota
    return out


def _grown(pool: SubnetPool, raw: Any) -> list[sp.Net]:
    """A full prefix list on update may add space but must keep all the pool had."""
    new = _invalid(sp.parse_prefixes, raw, pool.ip_version)
    if not all(sp.within(old, new) for old in sp.from_text(pool.prefixes)):
        raise BadRequest("Illegal update to prefixes: existing prefixes must be a subset of "
                         "the new prefixes.")
    return new


def _only_default(session: Session, version: int) -> None:
    if session.scalar(select(exists().where(SubnetPool.is_default,
                                            SubnetPool.ip_version == version))):
        raise BadRequest(f"Invalid input for operation: A default subnetpool for IPv{version} "
                         "has already been set. Only one default may exist per IP family.")
