"""/v1/{project_id}/stacks: create, list, show (302 by name), delete, outputs, template."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from ...core.errors import BadRequest, Conflict, NotFound
from ..db.base import new_uuid
from ..db.orchestration import Stack, StackResource
from ..servers import locks
from ..service import controller, json_body
from . import store, views
from .common import allow, engine
from .prepare import Prepared, check_name, prepare

router = APIRouter()
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@router.post("/v1/{project_id}/stacks", status_code=201)
async def stacks_create(project_id: str, request: Request) -> dict[str, Any]:
    creds = allow(request, project_id, "stacks:create", True)
    body = await json_body(request)
    ctl = controller(request)
    name = check_name(body.get("stack_name"))
    ready = await run_in_threadpool(prepare, ctl, body, new_uuid(), name, project_id,
                                    creds.user_id)
    stack = await run_in_threadpool(_insert, request, ready, body)
    engine(request).launch(stack["id"], engine(request).create)
    return {"stack": stack}


def _insert(request: Request, ready: Prepared, body: dict[str, Any]) -> dict[str, Any]:
    ctl, state = controller(request), ready.state
    # The count and the insert see each other (a nested template makes its children at
    # once): one transaction at a time per project.
    with locks.serialized(ctl.db.engine.dialect.name), ctl.db.session() as session:
        locks.lock_project(session, state.project_id)
        taken = session.scalar(select(Stack.id).where(
            Stack.project_id == state.project_id, Stack.name == state.name))
        if taken:
            raise Conflict(f"The Stack ({state.name}) already exists.")
        held = session.scalar(select(func.count(Stack.id)).where(
            Stack.project_id == state.project_id))
        if held >= ctl.settings.max_stacks_per_project:
            # Heat's max_stacks_per_tenant, nested stacks included: it also bounds a
            # template whose nested stacks nest themselves (review finding).
            raise BadRequest("You have reached the maximum stacks per tenant, "
                             f"{ctl.settings.max_stacks_per_project}. Please delete some "
                             "stacks.")
        tags = body.get("tags") or []
        stack = Stack(id=state.id, name=state.name, project_id=state.project_id,
                      user_id=state.user_id, action="CREATE", status="IN_PROGRESS",
                      status_reason="Stack CREATE started", template=ready.template,
                      files=ready.files, environment=ready.environment,
                      parameters=state.values, disable_rollback=state.disable_rollback,
                      timeout_mins=state.timeout_mins,
                      tags=tags.split(",") if isinstance(tags, str) else list(tags))
        session.add(stack)
        session.flush()
        for name in ready.active:
            session.add(StackResource(stack_id=stack.id, name=name,
                                      type=state.tmpl.resources[name].type))
        store.event(session, stack, stack.name, store.STACK_TYPE, stack.id, "CREATE",
                    "IN_PROGRESS", "Stack CREATE started")
        url = views.stack_url(ctl.base_url, stack)
        return {"id": stack.id, "links": [{"href": url, "rel": "self"}]}


@router.get("/v1/{project_id}/stacks")
def stacks_list(project_id: str, request: Request) -> dict[str, Any]:
    creds = allow(request, project_id, "stacks:index", False)
    ctl, query = controller(request), request.query_params
    with ctl.db.session() as session:
        rows = select(Stack).where(Stack.parent_id.is_(None)).order_by(Stack.created_at.desc())
        if not (creds.is_admin and query.get("global_tenant", "").lower() == "true"):
            rows = rows.where(Stack.project_id == project_id)
        if query.get("name"):
            rows = rows.where(Stack.name.in_(query.getlist("name")))
        stacks = [views.summary(ctl.base_url, s) for s in session.scalars(rows)]
    wanted = query.getlist("status")
    if wanted:
        stacks = [s for s in stacks if s["stack_status"].split("_", 1)[-1] in wanted]
    return {"stacks": stacks}


def split(rest: str) -> tuple[str, str | None, list[str]]:
    """Heat's stack identity in a path: NAME_OR_ID[/ID] then what follows."""
    parts = [p for p in rest.split("/") if p]
    if not parts:
        raise NotFound("The resource could not be found.")
    if len(parts) >= 2 and UUID.fullmatch(parts[1]):
        return parts[0], parts[1], parts[2:]
    return parts[0], None, parts[1:]


@router.get("/v1/{project_id}/stacks/{rest:path}")
def stack_get(project_id: str, rest: str, request: Request) -> Response:
    allow(request, project_id, "stacks:show", False)
    ident, stack_id, tail = split(rest)
    ctl = controller(request)
    with ctl.db.session() as session:
        stack = store.find(session, project_id, ident, stack_id)
        if stack_id is None and not tail:
            return RedirectResponse(views.stack_url(ctl.base_url, stack), status_code=302)
        from .reads import read  # resources, events and outputs live beside the stack

        return JSONResponse(read(request, session, stack, tail))


@router.delete("/v1/{project_id}/stacks/{rest:path}", status_code=204)
async def stack_delete(project_id: str, rest: str, request: Request) -> Response:
    allow(request, project_id, "stacks:delete", True)
    ident, stack_id, tail = split(rest)
    if tail == ["abandon"]:
        # Heat answers abandon only with enable_stack_abandon, which is off by default.
        from .actions import NotSupported

        raise NotSupported("Stack Abandon is not supported.")
    if tail:
        raise NotFound("The resource could not be found.")
    ctl = controller(request)

    def mark() -> str:
        with ctl.db.session() as session:
            stack = store.find(session, project_id, ident, stack_id)
            stack.action, stack.status = "DELETE", "IN_PROGRESS"
            stack.status_reason = "Stack DELETE started"
            store.event(session, stack, stack.name, store.STACK_TYPE, stack.id, "DELETE",
                        "IN_PROGRESS", "Stack DELETE started")
            return stack.id

    found = await run_in_threadpool(mark)
    engine(request).launch(found, engine(request).delete)
    return Response(status_code=204)


@router.put("/v1/{project_id}/stacks/{rest:path}", status_code=202)
@router.patch("/v1/{project_id}/stacks/{rest:path}", status_code=202)
async def stack_update(project_id: str, rest: str, request: Request) -> Response:
    creds = allow(request, project_id, "stacks:update", True)
    ident, stack_id, tail = split(rest)
    if tail:
        raise NotFound("The resource could not be found.")
    body, ctl = await json_body(request), controller(request)
    existing = request.method == "PATCH"

    def begin() -> tuple[str, dict[str, Any]]:
        with ctl.db.session() as session:
            stack = store.find(session, project_id, ident, stack_id)
            if stack.status == "IN_PROGRESS":
                raise Conflict(f"Stack {stack.name} is {stack.action}_IN_PROGRESS: an update "
                               "waits for it to finish.")
            # Without disable_rollback (the CLI's --rollback keep) the stack's value stays.
            merged = _merged(stack, body) if existing else {
                **body, "disable_rollback": body.get("disable_rollback",
                                                     stack.disable_rollback)}
            ready = prepare(ctl, merged, stack.id, stack.name, project_id, creds.user_id)
            # What a rollback goes back to.
            old = {"template": dict(stack.template), "environment": dict(
                stack.environment or {}), "files": dict(stack.files),
                "parameters": dict(stack.parameters)}
            _apply(session, stack, ready, merged)
            return stack.id, old

    found, old = await run_in_threadpool(begin)
    eng = engine(request)
    from . import updates  # the update walk builds on the engine's create and delete

    eng.launch(found, lambda sid: updates.run(eng, sid, old))
    return Response(status_code=202)


def _merged(stack: Stack, body: dict[str, Any]) -> dict[str, Any]:
    """PATCH (--existing): the stack's template, parameters and files unless replaced."""
    env = dict(stack.environment or {})
    new_env = body.get("environment") or {}
    if isinstance(new_env, dict):
        for key, value in new_env.items():
            env[key] = {**env.get(key, {}), **value} if isinstance(value, dict) else value
    return {**body, "template": body.get("template") or stack.template,
            "files": {**stack.files, **(body.get("files") or {})}, "environment": env,
            "parameters": {**stack.parameters, **(body.get("parameters") or {})},
            "disable_rollback": body.get("disable_rollback", stack.disable_rollback)}


def _apply(session: Any, stack: Stack, ready: Prepared, body: dict[str, Any]) -> None:
    # The engine acts as the stack's user: after an update that is the caller, so a member
    # cannot have the new template made with the rights of whoever created the stack.
    stack.user_id = ready.state.user_id
    stack.template, stack.files, stack.environment = ready.template, ready.files, (
        ready.environment)
    stack.parameters = ready.state.values
    stack.disable_rollback = ready.state.disable_rollback
    if "timeout_mins" in body:
        stack.timeout_mins = ready.state.timeout_mins
    stack.action, stack.status = "UPDATE", "IN_PROGRESS"
    stack.status_reason = "Stack UPDATE started"
    have = set(session.scalars(select(StackResource.name).where(
        StackResource.stack_id == stack.id)))
    for name in ready.active:
        if name not in have:
            session.add(StackResource(stack_id=stack.id, name=name,
                                      type=ready.state.tmpl.resources[name].type))
    store.event(session, stack, stack.name, store.STACK_TYPE, stack.id, "UPDATE",
                "IN_PROGRESS", "Stack UPDATE started")
