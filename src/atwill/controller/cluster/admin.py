"""/cluster/v1/tokens and /cluster/v1/nodes for operators (admin Keystone token)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from ...api.cluster import NodeAction, NodeView, TokenCreate, TokenCreated, TokenView
from ...core.policy import Credentials
from ..ha.evacuate import evacuate_node
from ..service import authorize, caller, controller
from . import nodes, tokens
from .join_command import join_details

router = APIRouter()


@router.get("/v1/tokens", response_model=list[TokenView], summary="List join tokens")
def tokens_get(request: Request, creds: Credentials = Depends(caller)) -> list[dict]:
    authorize(creds, "cluster:tokens:list")
    with controller(request).db.session() as session:
        return [tokens.to_view(t) for t in tokens.listing(session)]


@router.post("/v1/tokens", response_model=TokenCreated, status_code=201,
             summary="Create a join token and the join command that uses it")
def tokens_post(request: Request, body: TokenCreate,
                creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:tokens:create")
    ctl = controller(request)
    with ctl.db.session() as session:
        secret, token = tokens.create(session, body.ttl, body.uses, body.description,
                                      body.aggregates)
        view = tokens.to_view(token)
    return {**view, **join_details(ctl.settings, secret)}


@router.delete("/v1/tokens/{token_id}", status_code=204, summary="Revoke a join token")
def token_delete(token_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "cluster:tokens:delete")
    with controller(request).db.session() as session:
        tokens.revoke(session, token_id)
    return Response(status_code=204)


@router.get("/v1/nodes", response_model=list[NodeView], summary="List nodes")
def nodes_get(request: Request, creds: Credentials = Depends(caller)) -> list[dict]:
    authorize(creds, "cluster:nodes:list")
    from sqlalchemy import select

    from ..db.models import Node

    with controller(request).db.session() as session:
        return [nodes.to_view(n) for n in session.scalars(select(Node).order_by(Node.name))]


@router.get("/v1/nodes/{ident}", response_model=NodeView, summary="Show a node")
def node_get(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:show")
    with controller(request).db.session() as session:
        return nodes.to_view(nodes.find(session, ident))


@router.post("/v1/nodes/{ident}/disable", response_model=NodeView,
             summary="Stop scheduling onto a node")
def node_disable(ident: str, request: Request, body: NodeAction,
                 creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:update")
    with controller(request).db.session() as session:
        node = nodes.find(session, ident)
        nodes.set_enabled(session, node, False, body.reason)
        return nodes.to_view(node)


@router.post("/v1/nodes/{ident}/enable", response_model=NodeView,
             summary="Schedule onto a node again")
def node_enable(ident: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:update")
    with controller(request).db.session() as session:
        node = nodes.find(session, ident)
        nodes.set_enabled(session, node, True, None)
        return nodes.to_view(node)


@router.delete("/v1/nodes/{ident}", status_code=204,
               summary="Remove a node: revoke its certificate, withdraw it from its peers")
def node_delete(ident: str, request: Request, force: bool = Query(default=False),
                creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "cluster:nodes:delete")
    with controller(request).db.session() as session:
        nodes.remove(session, nodes.find(session, ident), force)
    return Response(status_code=204)


@router.post("/v1/nodes/{ident}/evacuate", summary="Rebuild every instance of a down, "
             "fenced (or forced down) node on other nodes")
def node_evacuate(ident: str, request: Request, host: str | None = Query(default=None),
                  creds: Credentials = Depends(caller)) -> dict:
    authorize(creds, "cluster:nodes:evacuate")

    ctl = controller(request)
    with ctl.db.session() as session:
        return {"evacuations": evacuate_node(session, ctl, nodes.find(session, ident), host)}
