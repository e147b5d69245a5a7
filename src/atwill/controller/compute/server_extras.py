"""Server metadata and /os-interface: the smaller server sub-resources."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response

from ...core.errors import BadRequest, NotFound
from ...core.policy import Credentials
from ..compute.usage import project_limits
from ..revision import bump
from ..servers import builds, ports
from ..service import authorize, caller, controller, json_body
from .server_actions import refuse_locked
from .server_input import metadata

router = APIRouter()
BASE = "/v2.1/servers/{server_id}"


def _meta(body: dict, key: str) -> dict[str, str]:
    return metadata(body.get(key), key)


def _update(request: Request, server_id: str, creds: Credentials, new: dict[str, str],
            replace: bool) -> dict[str, str]:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:update", project_id=inst.project_id)
        refuse_locked(inst, creds)
        meta = dict(new) if replace else {**(inst.meta or {}), **new}
        limit = project_limits(session, inst.project_id)["metadata_items"]
        if limit != -1 and len(meta) > limit:
            raise BadRequest(f"Quota exceeded for metadata_items: {len(meta)} of {limit}.")
        inst.meta = meta
        bump(session, of=inst)
        return meta


@router.get(BASE + "/metadata")
def metadata_get(server_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    with controller(request).db.session() as session:
        return {"metadata": builds.get(session, server_id, creds).meta or {}}


@router.post(BASE + "/metadata")
def metadata_post(server_id: str, request: Request, body: dict = Depends(json_body),
                  creds: Credentials = Depends(caller)) -> dict:
    return {"metadata": _update(request, server_id, creds, _meta(body, "metadata"), False)}


@router.put(BASE + "/metadata")
def metadata_put(server_id: str, request: Request, body: dict = Depends(json_body),
                 creds: Credentials = Depends(caller)) -> dict:
    return {"metadata": _update(request, server_id, creds, _meta(body, "metadata"), True)}


@router.get(BASE + "/metadata/{key}")
def metadata_key_get(server_id: str, key: str, request: Request,
                     creds: Credentials = Depends(caller)) -> dict:
    with controller(request).db.session() as session:
        meta = builds.get(session, server_id, creds).meta or {}
    if key not in meta:
        raise NotFound(f"Metadata item {key} was not found.")
    return {"meta": {key: meta[key]}}


@router.put(BASE + "/metadata/{key}")
def metadata_key_put(server_id: str, key: str, request: Request,
                     body: dict = Depends(json_body),
                     creds: Credentials = Depends(caller)) -> dict:
    item = _meta(body, "meta")
    if list(item) != [key]:
        raise BadRequest("Request body and URI mismatch.")
    _update(request, server_id, creds, item, False)
    return {"meta": item}


@router.delete(BASE + "/metadata/{key}")
def metadata_key_delete(server_id: str, key: str, request: Request,
                        creds: Credentials = Depends(caller)) -> Response:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        authorize(creds, "compute:servers:update", project_id=inst.project_id)
        refuse_locked(inst, creds)
        if key not in (inst.meta or {}):
            raise NotFound(f"Metadata item {key} was not found.")
        inst.meta = {k: v for k, v in inst.meta.items() if k != key}
        bump(session, of=inst)
    return Response(status_code=204)


@router.get(BASE + "/os-interface")
def interfaces_get(server_id: str, request: Request,
                   creds: Credentials = Depends(caller)) -> dict:
    with controller(request).db.session() as session:
        inst = builds.get(session, server_id, creds)
        return {"interfaceAttachments": [
            {"port_id": p.id, "net_id": p.network_id, "mac_addr": p.mac_address,
             "port_state": p.status,
             "fixed_ips": [{"subnet_id": f.subnet_id, "ip_address": f.ip_address}
                           for f in p.fixed_ips]}
            for p in ports.of(session, inst)]}
