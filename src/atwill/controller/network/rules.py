"""/v2.0/security-group-rules: validated rules, duplicates refused with 409."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from ...core import netrules
from ...core.errors import BadRequest, Conflict
from ...core.policy import Credentials
from ..db.network import SecurityGroup, SecurityGroupRule
from ..service import caller, controller, json_body, wrapped
from . import access, quota, views
from .common import fault, one, owner, text, transaction, writable
from .sgdefault import ensure_default
from .sql_listing import sql_listing

router = APIRouter()
CREATE = {"security_group_id", "direction", "ethertype", "protocol", "port_range_min",
          "port_range_max", "remote_ip_prefix", "remote_group_id", "remote_address_group_id",
          "description", "project_id", "tenant_id"}


@router.get("/v2.0/security-group-rules")
def rules_get(request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_security_group_rule", None)

    def work(session: Session) -> dict[str, Any]:
        ensure_default(session, creds.project_id)
        return sql_listing(request, session, "security_group_rules",
                           access.query(creds, SecurityGroupRule), SecurityGroupRule,
                           lambda s, rows: [views.security_group_rule(r) for r in rows])
    return transaction(request, work, changes=False)


@router.get("/v2.0/security-group-rules/{rule_id}")
def rule_get(rule_id: str, request: Request, creds: Credentials = Depends(caller)) -> dict:
    access.check(creds, "network:get_security_group_rule", None)
    with controller(request).db.session() as session:
        rule = access.find(session, creds, SecurityGroupRule, rule_id)
        return one(request, "security_group_rule", views.security_group_rule(rule))


@router.post("/v2.0/security-group-rules")
def rules_post(request: Request, body: dict = Depends(json_body),
               creds: Credentials = Depends(caller)) -> JSONResponse:
    data = writable(wrapped(body, "security_group_rule"), CREATE, "security_group_rule")
    if data.get("remote_address_group_id") is not None:
        raise BadRequest("Remote address groups are not supported.")
    try:
        attrs = netrules.check_rule(data)
    except netrules.InvalidRule as err:
        raise BadRequest(f"Invalid input for operation: {err}") from None
    group_id = data.get("security_group_id")
    if not isinstance(group_id, str):
        raise BadRequest("Invalid input: 'security_group_id' is required.")

    def work(session: Session) -> dict[str, Any]:
        group = access.find(session, creds, SecurityGroup, group_id, lock=True)
        project = owner(data, group.project_id)
        access.check(creds, "network:create_security_group_rule", project)
        if attrs["remote_group_id"] is not None:
            access.find(session, creds, SecurityGroup, attrs["remote_group_id"])
        for rule in group.rules:
            if netrules.same_rule(attrs, views.security_group_rule(rule)):
                raise fault(Conflict, "SecurityGroupRuleExists", f"Security group rule "
                            f"already exists. Rule id is {rule.id}.")
        quota.enforce(session, project, "security_group_rule")
        rule = SecurityGroupRule(security_group_id=group.id, project_id=project,
                                 description=text(data, "description"), **attrs)
        group.rules.append(rule)
        group.touch()
        session.flush()
        return views.security_group_rule(rule)
    return JSONResponse({"security_group_rule": transaction(request, work)}, status_code=201)


@router.delete("/v2.0/security-group-rules/{rule_id}")
def rule_delete(rule_id: str, request: Request,
                creds: Credentials = Depends(caller)) -> Response:
    def work(session: Session) -> None:
        rule = access.find(session, creds, SecurityGroupRule, rule_id, lock=True)
        group = session.get(SecurityGroup, rule.security_group_id)
        access.check(creds, "network:delete_security_group_rule",
                     group.project_id if group else rule.project_id)
        if group is not None:
            group.rules.remove(rule)
            group.touch()
        session.delete(rule)
    transaction(request, work)
    return Response(status_code=204)
