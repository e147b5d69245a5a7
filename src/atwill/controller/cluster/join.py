"""/cluster/v1: discovery, the CA certificate, and joining with a token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from ...api.cluster import DesiredState, JoinRequest, JoinResponse
from ...core.nodereports import check_inventory
from ..service import controller
from . import join_aggregates, nodes, tokens
from .desired import desired_state

router = APIRouter()


@router.get("/v1", summary="Version discovery")
def version_get(request: Request) -> dict:
    return {"version": {"id": "v1", "status": "CURRENT",
                        "links": [{"rel": "self", "href": str(request.url)},
                                  {"rel": "describedby", "href": str(request.url).rstrip("/")
                                   + "/openapi.json"}]}}


@router.get("/v1/ca", response_class=PlainTextResponse, summary="The cluster CA (PEM)")
def ca_get(request: Request) -> PlainTextResponse:
    pem = controller(request).settings.path("pki", "ca.pem").read_text()
    return PlainTextResponse(pem, media_type="application/x-pem-file")


@router.post("/v1/join", response_model=JoinResponse, status_code=201,
             summary="Join as a compute node with a join token")
def join_post(request: Request, body: JoinRequest) -> dict:
    ctl = controller(request)
    source = nodes.underlay_source(ctl.settings,
                                   request.client.host if request.client else "")
    check_inventory(body.inventory)
    with ctl.db.session() as session:
        token = tokens.consume(session, body.token)
        # Checked before the node is made; a refusal rolls the token's use back too.
        aggs = join_aggregates.resolve(session, [*token.aggregates, *body.aggregates])
        join_aggregates.check_zones(session, body.name, aggs)
        join_aggregates.add_host(session, body.name, aggs)
        node, cert = nodes.register(session, ctl, body.name, body.csr,
                                    body.wireguard_public_key, body.overlay_port,
                                    body.inventory, source)
        desired = DesiredState(**desired_state(session, ctl, node))
        node_id = node.id
    ca = ctl.settings.path("pki", "ca.pem").read_text()
    return {"node_id": node_id, "name": body.name, "certificate": cert.decode(), "ca": ca,
            "desired": desired}
