"""/cluster/v1/peers: pairing with peer clouds, their mappings (admin), and the two calls
peers make to each other (accept a pairing; vouch for a token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from ...core.errors import BadRequest, Forbidden, NotFound, Unauthorized
from ...core.policy import Credentials
from ...pki import ca_hash
from ..service import caller, controller, field, json_body
from . import registry, trust
from .client import CREDENTIAL_HEADER

router = APIRouter()
DEFAULT_TTL = 3600


def admin(creds: Credentials = Depends(caller)) -> Credentials:
    if not creds.is_admin:
        raise Forbidden("Only a cloud admin manages peer clouds.")
    return creds


@router.get("/v1/peers", summary="List peer clouds", dependencies=[Depends(admin)])
def peers_get(request: Request) -> dict:
    with controller(request).db.session() as session:
        return {"peers": [registry.to_view(p) for p in registry.listing(session)]}


@router.post("/v1/peers", status_code=201, summary="Pair with a peer cloud",
             dependencies=[Depends(admin)])
def peers_post(request: Request, body: dict = Depends(json_body)) -> dict:
    args = [field(body, k, str, required=True) for k in ("name", "url", "ca_hash", "token")]
    ctl = controller(request)
    with ctl.db.session() as session:
        peer = registry.pair(session, ctl.settings, *args)
        return {"peer": registry.to_view(peer)}


@router.post("/v1/peers/tokens", status_code=201, summary="A one-time peer token",
             dependencies=[Depends(admin)])
def peer_tokens_post(request: Request, body: dict = Depends(json_body)) -> dict:
    name = field(body, "name", str, required=True)
    ttl = field(body, "ttl", int, default=DEFAULT_TTL)
    if ttl <= 0:
        raise BadRequest("ttl must be a positive number of seconds.")
    ctl = controller(request)
    with ctl.db.session() as session:
        secret, token = registry.create_token(session, name, ttl, body.get("description", ""))
        return {"peer_token": {**registry.token_view(token),
                               **pairing_details(ctl.settings, secret)}}


def pairing_details(settings: Any, secret: str) -> dict[str, str]:
    pin = ca_hash(settings.path("pki", "ca.pem").read_bytes())
    url = settings.public_url
    return {"token": secret, "url": url, "ca_hash": pin,
            "command": f"atwill peer add NAME {url} --ca-hash {pin} --token {secret}"}


@router.post("/v1/peers/accept", status_code=201, summary="A peer presents a peer token")
def peers_accept_post(request: Request, body: dict = Depends(json_body)) -> dict:
    ctl = controller(request)
    with ctl.db.session() as session:
        return registry.accept(session, ctl.settings, body)


@router.post("/v1/peers/validate", summary="A peer asks whose token this is")
def peers_validate_post(request: Request, body: dict = Depends(json_body)) -> dict:
    token = field(body, "token", str, required=True)
    ctl = controller(request)
    with ctl.db.session() as session:
        peer = registry.by_credential(session, request.headers.get(CREDENTIAL_HEADER, ""))
        if peer is None:
            raise Unauthorized("Only a paired peer cloud may validate tokens here.")
        return trust.vouch(session, ctl, token)


@router.get("/v1/peers/{name}", summary="Show a peer cloud and its mappings",
            dependencies=[Depends(admin)])
def peer_get(name: str, request: Request) -> dict:
    with controller(request).db.session() as session:
        peer = registry.find(session, name)
        return {"peer": {**registry.to_view(peer), "mappings": [
            trust.mapping_view(m) for m in trust.mappings(session, peer)]}}


@router.patch("/v1/peers/{name}", summary="Change a peer's URL (it moved)",
              dependencies=[Depends(admin)])
def peer_patch(name: str, request: Request, body: dict = Depends(json_body)) -> dict:
    url = field(body, "url", str, required=True)
    if not url.startswith("https://"):
        raise BadRequest("A peer's URL must be https://.")
    with controller(request).db.session() as session:
        peer = registry.find(session, name)
        peer.url = url.rstrip("/")
        return {"peer": registry.to_view(peer)}


@router.delete("/v1/peers/{name}", status_code=204, summary="Forget a peer cloud",
               dependencies=[Depends(admin)])
def peer_delete(name: str, request: Request) -> Response:
    with controller(request).db.session() as session:
        session.delete(registry.find(session, name))
    return Response(status_code=204)


@router.post("/v1/peers/{name}/mappings", status_code=201, summary="Map a peer's users",
             dependencies=[Depends(admin)])
def mappings_post(name: str, request: Request, body: dict = Depends(json_body)) -> dict:
    args = [field(body, k, str, required=True)
            for k in ("remote_project", "remote_user", "local_project", "role")]
    domains = [field(body, "remote_domain", str, default="Default"),
               field(body, "remote_user_domain", str, default=None)]
    with controller(request).db.session() as session:
        mapping = trust.add_mapping(session, registry.find(session, name), *args, *domains)
        return {"mapping": trust.mapping_view(mapping)}


@router.delete("/v1/peers/{name}/mappings/{mapping_id}", status_code=204,
               summary="Remove a mapping", dependencies=[Depends(admin)])
def mapping_delete(name: str, mapping_id: str, request: Request) -> Response:
    with controller(request).db.session() as session:
        peer = registry.find(session, name)
        found = [m for m in trust.mappings(session, peer) if m.id == mapping_id]
        if not found:
            raise NotFound(f"Peer {name} has no mapping {mapping_id}.")
        session.delete(found[0])
    return Response(status_code=204)
