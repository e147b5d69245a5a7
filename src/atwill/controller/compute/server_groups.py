"""/os-server-groups: affinity, anti-affinity and their soft variants, with member limits."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import func, select

from ...core.errors import BadRequest, Forbidden, NotFound
from ...core.microversion import Version
from ...core.policy import Credentials
from ...core.text import clean_name
from ..db.models import Instance, ServerGroup, ServerGroupMember
from ..service import authorize, caller, controller, json_body, wrapped
from .common import api_version
from .usage import project_limits

router = APIRouter()
POLICIES = ("affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity")


def _shape(session: Any, group: ServerGroup, version: Version) -> dict[str, Any]:
    members = list(session.scalars(select(ServerGroupMember.instance_id).join(
        Instance, Instance.id == ServerGroupMember.instance_id).where(
        ServerGroupMember.group_id == group.id, Instance.deleted.is_(False))))
    out: dict[str, Any] = {"id": group.id, "name": group.name, "members": members}
    if version >= "2.64":
        out.update(policy=group.policy, rules=group.rules or {})
    else:
        out.update(policies=[group.policy], metadata={})
    if version >= "2.13":
        out.update(project_id=group.project_id, user_id=group.user_id)
    return out


def _parse(data: dict[str, Any], version: Version) -> tuple[str, dict[str, Any]]:
    if version >= "2.64":
        policy, rules = data.get("policy"), data.get("rules") or {}
    else:
        policies = data.get("policies")
        if not isinstance(policies, list) or len(policies) != 1:
            raise BadRequest("Invalid input: 'policies' must hold exactly one policy.")
        policy, rules = policies[0], {}
    if policy not in POLICIES:
        raise BadRequest(f"Invalid input: policy must be one of {', '.join(POLICIES)}.")
    if not isinstance(rules, dict) or set(rules) - {"max_server_per_host"}:
        raise BadRequest("Invalid input: the only rule is max_server_per_host.")
    if rules:
        value = rules["max_server_per_host"]
        if policy != "anti-affinity" or isinstance(value, bool) or not isinstance(
                value, int) or value < 1:
            raise BadRequest("max_server_per_host is a positive integer, for anti-affinity.")
    return policy, rules


@router.post("/v2.1/os-server-groups")
def server_groups_post(request: Request, body: dict = Depends(json_body),
                       creds: Credentials = Depends(caller),
                       version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:server_groups:create", project_id=creds.project_id)
    data = wrapped(body, "server_group")
    name = clean_name(data.get("name"), required=True)
    if not name.strip():
        raise BadRequest("Invalid input for field 'name': 1 to 255 characters.")
    policy, rules = _parse(data, version)
    with controller(request).db.session() as session:
        used = session.scalar(select(func.count(ServerGroup.id)).where(
            ServerGroup.project_id == creds.project_id)) or 0
        limit = project_limits(session, creds.project_id or "")["server_groups"]
        if limit != -1 and used + 1 > limit:
            raise Forbidden(f"Quota exceeded for server_groups: Requested 1, but already "
                            f"used {used} of {limit} server_groups.")
        group = ServerGroup(name=name, policy=policy, rules=rules,
                            project_id=creds.project_id, user_id=creds.user_id)
        session.add(group)
        session.flush()
        return {"server_group": _shape(session, group, version)}


@router.get("/v2.1/os-server-groups")
def server_groups_get(request: Request, creds: Credentials = Depends(caller),
                      version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:server_groups:index")
    query = select(ServerGroup).order_by(ServerGroup.created_at)
    everyone = creds.is_admin and request.query_params.get("all_projects", "").lower() in (
        "true", "1")
    if not everyone:
        query = query.where(ServerGroup.project_id == creds.project_id)
    with controller(request).db.session() as session:
        return {"server_groups": [_shape(session, g, version) for g in session.scalars(query)]}


def _get(session: Any, group_id: str, creds: Credentials) -> ServerGroup:
    group = session.get(ServerGroup, group_id)
    if group is None or (group.project_id != creds.project_id and not creds.is_admin):
        raise NotFound(f"Server group {group_id} could not be found.")
    return group


@router.get("/v2.1/os-server-groups/{group_id}")
def server_group_get(group_id: str, request: Request, creds: Credentials = Depends(caller),
                     version: Version = Depends(api_version)) -> dict:
    authorize(creds, "compute:server_groups:show")
    with controller(request).db.session() as session:
        return {"server_group": _shape(session, _get(session, group_id, creds), version)}


@router.delete("/v2.1/os-server-groups/{group_id}")
def server_group_delete(group_id: str, request: Request,
                        creds: Credentials = Depends(caller)) -> Response:
    authorize(creds, "compute:server_groups:delete")
    with controller(request).db.session() as session:
        session.delete(_get(session, group_id, creds))
    return Response(status_code=204)
