"""/v2.0/security-groups: per-project groups, with `default` made on first use."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from ...core import netrules
from ...core.errors import Conflict
from ...core.policy import Credentials
from ..db.network import PortSecurityGroup, SecurityGroup
from ..service import caller, json_body, wrapped
from . import access, quota, views
from .common import fault, flag, one, owner, params, text, transaction, writable
from .sgdefault import add_rules, ensure_default, is_default
from .sql_listing import sql_listing

router = APIRouter()
UPDATE = {"name", "description", "stateful"}
CREATE = UPDATE | {"project_id", "tenant_id", "tags"}


@router.get("/v2.0/security-groups")
def groups_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_security_group", None)
    query = params(request)
    stmt = access.query(creds, SecurityGroup)
    if "name" in query and not {"project_id", "tenant_id"} & set(query):
        # Clients look groups up by name: `default` must be the caller's own only.
        stmt = stmt.where(access.own(creds, SecurityGroup))

    def work(session: Session) -> dict[str, Any]:
        ensure_default(session, creds.project_id)
        return sql_listing(request, session, "security_groups", stmt, SecurityGroup,
                           lambda s, rows: [views.security_group(g) for g in rows])
    return transaction(request, work, changes=False)


@router.get("/v2.0/security-groups/{group_id}")
def group_get(group_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_security_group", None)

    def work(session: Session) -> dict[str, Any]:
        ensure_default(session, creds.project_id)
        return views.security_group(access.find(session, creds, SecurityGroup, group_id))
    return one(request, "security_group", transaction(request, work, changes=False))


@router.post("/v2.0/security-groups")
def groups_post(request: Request, body: dict = Depends(json_body),
                creds: Credentials = Depends(caller)) -> JSONResponse:
    data = writable(wrapped(body, "security_group"), CREATE, "security_group")
    project = owner(data, creds.project_id)
    access.check(creds, "network:create_security_group", project)
    name = text(data, "name")
    if name == "default":
        raise fault(Conflict, "SecurityGroupDefaultAlreadyExists", "Default security group "
                    "already exists.")

    def work(session: Session) -> dict[str, Any]:
        ensure_default(session, project)
        quota.enforce(session, project, "security_group")
        group = SecurityGroup(project_id=project, name=name,
                              description=text(data, "description"),
                              stateful=flag(data, "stateful", True))
        session.add(group)
        session.flush()
        add_rules(group, [r for r in netrules.default_rules(group.id)
                          if r["direction"] == "egress"])
        session.flush()
        return views.security_group(group)
    return JSONResponse({"security_group": transaction(request, work)}, status_code=201)


@router.put("/v2.0/security-groups/{group_id}")
def group_put(group_id: str, request: Request, body: dict = Depends(json_body),
              creds: Credentials = Depends(caller)) -> dict:
    data = writable(wrapped(body, "security_group"), UPDATE, "security_group")

    def work(session: Session) -> dict[str, Any]:
        group = access.find(session, creds, SecurityGroup, group_id, lock=True)
        access.may_write(creds, "network:update_security_group", group)
        renamed = "name" in data and text(data, "name") != group.name
        if renamed and is_default(session, group):
            raise fault(Conflict, "SecurityGroupCannotUpdateDefault", "Updating default "
                        "security group not allowed.")
        if renamed and data["name"] == "default":
            # A second `default` would shadow the real one for clients that look groups up
            # by name (Nova's boot does); Neutron's name validator refuses it on update too.
            raise fault(Conflict, "SecurityGroupDefaultAlreadyExists", "Default security "
                        "group already exists.")
        for key in ("name", "description"):
            if key in data:
                setattr(group, key, text(data, key))
        if "stateful" in data:
            group.stateful = flag(data, "stateful", True)
        group.touch()
        return views.security_group(group)
    return {"security_group": transaction(request, work)}


@router.delete("/v2.0/security-groups/{group_id}")
def group_delete(group_id: str, request: Request,
                 creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        group = access.find(session, creds, SecurityGroup, group_id, lock=True)
        access.may_write(creds, "network:delete_security_group", group)
        if is_default(session, group) and not creds.is_admin:
            raise fault(Conflict, "SecurityGroupCannotRemoveDefault", "Insufficient rights "
                        "for removing default security group.")
        if session.scalar(select(exists().where(
                PortSecurityGroup.security_group_id == group.id))):
            raise fault(Conflict, "SecurityGroupInUse", f"Security Group {group_id} in use.")
        session.delete(group)
    transaction(request, work)
    return Response(status_code=204)
