"""Stack preview (create --dry-run), the actions route (cancel) and abandon, as Heat."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ...core.errors import BadRequest, NotFound
from ...core.hot import graph
from ..db.base import iso, new_uuid, utcnow
from ..db.orchestration import StackResource
from ..service import controller, json_body, read_json
from . import store
from .common import allow, engine
from .prepare import check_name, prepare
from .types.wait import normalised

router = APIRouter()
# Signals one wait condition handle keeps (a count of 1000 is already a large fleet).
MAX_SIGNALS = 1000


class NotSupported(BadRequest):
    heat_type = "NotSupported"


@router.post("/v1/{project_id}/stacks/preview")
async def stacks_preview(project_id: str, request: Request) -> dict[str, Any]:
    creds = allow(request, project_id, "stacks:preview", True)
    body = await json_body(request)
    ctl = controller(request)
    name = check_name(body.get("stack_name"))
    ready = await run_in_threadpool(prepare, ctl, body, new_uuid(), name, project_id,
                                    creds.user_id)
    return {"stack": preview_body(ctl.base_url, project_id, ready, body)}


def preview_body(base: str, project_id: str, ready: Any, body: dict[str, Any]) -> dict[str, Any]:
    """What would be made: the stack without a status, and each resource as INIT_COMPLETE."""
    state, now = ready.state, iso(utcnow())
    url = f"{base}/orchestration/v1/{project_id}/stacks/{state.name}/None"
    needs = graph.reverse(graph.dependencies(state.tmpl, set(ready.active)))
    resources = [{
        "resource_name": name, "logical_resource_id": name, "physical_resource_id": "",
        "resource_type": state.tmpl.resources[name].type, "resource_action": "INIT",
        "resource_status": "COMPLETE", "resource_status_reason": "", "description": "",
        "required_by": sorted(needs.get(name, ())), "metadata": {},
        "properties": state.tmpl.resources[name].properties or {},
        "stack_name": state.name, "stack_identity": {"stack_name": state.name,
                                                      "stack_id": "None",
                                                      "tenant": project_id, "path": ""},
        "creation_time": now, "updated_time": now,
    } for name in ready.active]
    return {"id": "None", "stack_name": state.name, "description":
            state.tmpl.description, "template_description": state.tmpl.description,
            "parameters": {k: str(v) for k, v in state.values.items()},
            "timeout_mins": state.timeout_mins, "disable_rollback": state.disable_rollback,
            "capabilities": [], "notification_topics": [], "parent": None,
            "stack_owner": None, "creation_time": now, "updated_time": None,
            "tags": body.get("tags") or None,
            "links": [{"href": url, "rel": "self"}], "resources": resources}


@router.post("/v1/{project_id}/stacks/{rest:path}")
async def stack_post(project_id: str, rest: str, request: Request) -> Response:
    from .stacks import split  # the stack identity in a path is read one way everywhere

    ident, stack_id, tail = split(rest)
    if len(tail) == 3 and tail[0] == "resources" and tail[2] == "signal":
        return await resource_signal(project_id, ident, stack_id, tail[1], request)
    allow(request, project_id, "stacks:action", True)
    if tail != ["actions"]:
        raise NotFound("The resource could not be found.")
    body, ctl = await json_body(request), controller(request)
    if len(body) != 1:
        raise BadRequest("Multiple actions specified" if body else "No action specified")
    action = next(iter(body))
    if action not in ("cancel_update", "cancel_without_rollback"):
        raise NotSupported(f"Stack action {action} is not supported.")

    def current() -> tuple[str, str, str]:
        with ctl.db.session() as session:
            stack = store.find(session, project_id, ident, stack_id)
            return stack.id, stack.action, stack.status

    found, kind, status = await run_in_threadpool(current)
    allowed = ("UPDATE",) if action == "cancel_update" else ("UPDATE", "CREATE")
    if status != "IN_PROGRESS" or kind not in allowed:
        raise NotSupported(f"Cancelling update when stack is {kind}_{status} is not "
                           "supported.")
    engine(request).cancel(found, rollback=action == "cancel_update")
    return Response(status_code=200)


async def resource_signal(project_id: str, ident: str, stack_id: str | None, name: str,
                          request: Request) -> Response:
    """A signal to a wait condition handle: its own token, or a member's Keystone token."""
    ctl = controller(request)
    body = await read_json(request) if await request.body() else {}
    token = request.headers.get("x-auth-token", "")

    def record() -> None:
        with ctl.db.session() as session:
            try:
                stack = store.find(session, project_id, ident, stack_id)
            except NotFound:
                # An outsider learns nothing of another project's stack names.
                allow(request, project_id, "resource:signal", True)
                raise
            row = session.scalar(select(StackResource).where(
                StackResource.stack_id == stack.id, StackResource.name == name))
            data = dict(row.data or {}) if row is not None else {}
            if not (data.get("token") and hmac.compare_digest(
                    data["token"].encode(), token.encode())):
                allow(request, project_id, "resource:signal", True)
            if row is None:
                raise NotFound(f"The Resource ({name}) could not be found in Stack "
                               f"{stack.name}.")
            if row.type != "OS::Heat::WaitConditionHandle":
                raise NotSupported(f"Signal resource during {row.action} is not supported.")
            signals = list(data.get("signals") or [])
            if len(signals) >= MAX_SIGNALS:
                raise BadRequest(f"The handle {name} holds {MAX_SIGNALS} signals already.")
            try:
                signals.append(normalised(body, len(signals)))
            except ValueError as err:
                raise BadRequest(str(err)) from None
            row.data = {**data, "signals": signals}

    await run_in_threadpool(record)
    return Response(status_code=200)
